//! The batching writer's transaction.
//!
//! One batch is one transaction in two round trips: (1) BEGIN, the undelivered marks, and the
//! block, membership and earlier-copy lookups, as one multi-statement request; (2) the
//! multi-row INSERT, the conversation list's upserts and COMMIT (the inserted rows counted
//! from the INSERTs' own results). A third, rare one names the first copies of
//! client_msg_ids repeated within the batch or stored meanwhile by another node. Values are
//! written into the SQL text (see literals.rs).

use futures_util::TryStreamExt;
use sqlx::{ColumnIndex, Either, Encode, Executor, IntoArguments, Row, Type};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use uuid::Uuid;

use super::dialect::Value;
use super::literals::{push_id, push_opt_int, push_opt_text, push_undelivered};
use super::messages::{FirstCopies, first_copy, push_first_copies};
use super::push::{Outboxing, push_outbox_rows};
use super::rows::{CHUNK, pair};
use super::{Dialect, SqlStore};
use crate::ids::UserId;
use crate::message::{Message, Target};
use crate::store::{InsertOutcome, StoreError};

/// Largest SQL text of one request, well under MySQL's default `max_allowed_packet` (16 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// What round trip 1 found: (blocker, blocked) pairs, (group, member) pairs, and the
/// messages already stored under the batch's (sender, client_msg_id) keys.
#[derive(Default)]
struct Refusals {
    blocked: HashSet<(UserId, UserId)>,
    members: HashSet<(String, UserId)>,
    copies: FirstCopies,
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    D::Arguments: IntoArguments<D>,
    usize: ColumnIndex<D::Row>,
    i64: Value<D>,
    String: Value<D>,
    Uuid: Value<D>,
    for<'a> &'a str: Encode<'a, D> + Type<D>,
{
    /// One attempt of `insert_messages`, on the writer's own connection.
    ///
    /// The connection is kept between batches, so it may have died meanwhile (the database
    /// restarted, a proxy dropped it): the first batch after that fails on its first round
    /// trip. Such a batch is written once more, on a fresh connection from the pool, before
    /// anyone is told 5000, but only when it is certain that nothing of it was committed:
    /// the connection failed before the request carrying COMMIT was sent, and a server rolls
    /// back the open transaction of a connection it loses. The retry is the whole
    /// transaction again (lookups included), so it decides on what is there now.
    ///
    /// Even if that certainty were wrong, a retry could not store a message twice: it
    /// carries the same message ids (the primary key), and a message with a
    /// `client_msg_id` also has its unique (sender, client_msg_id) key; a row already there
    /// is skipped by the INSERT. A failure after COMMIT was sent is not retried here: the
    /// senders get 5000 and retry with their client_msg_id, which those keys make safe.
    pub(super) async fn insert_batch(
        &self,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut held = self.writer.lock().await;
        // Whether the connection comes from an earlier batch (and may have died since); a
        // connection fresh from the pool was just opened or checked (after a lost
        // connection, the pool pings every connection idle since before it: pool.rs).
        let mut kept = held.is_some();
        let outboxing = self.push.get();
        loop {
            let conn = match held.as_mut() {
                Some(conn) => conn,
                None => held.insert(self.pool.acquire().await?),
            };
            let mut committing = false;
            let written = Self::write_batch(conn, batch, undelivered, outboxing, &mut committing);
            let error = match written.await {
                Ok(outcomes) => return Ok(outcomes),
                Err(e) => e,
            };
            let lost = super::pool::note(&error);
            // The transaction was opened by hand: end it before the connection goes back to
            // the pool, or drop the connection if even that fails (or it is gone).
            if let Some(mut conn) = held.take()
                && (lost || sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err())
            {
                let _ = conn.close().await;
            }
            if !(kept && lost && !committing) {
                return Err(error.into());
            }
            tracing::info!(
                %error,
                batch = batch.len(),
                "the writer's connection was lost before COMMIT: writing the batch again on a fresh one"
            );
            kept = false;
        }
    }

    /// The transaction: open and look up, decide, insert and commit, name duplicates.
    /// `committing` turns true once the request carrying COMMIT is about to be sent.
    async fn write_batch(
        conn: &mut D::Connection,
        batch: &[Message],
        undelivered: &[Uuid],
        outboxing: Outboxing,
        committing: &mut bool,
    ) -> Result<Vec<InsertOutcome>, sqlx::Error> {
        let refusals = Self::open_and_look_up(conn, batch, undelivered).await?;
        let (mut outcomes, accepted) = decide(batch, &refusals);
        let inserted = Self::insert_and_commit(conn, &accepted, outboxing, committing).await?;
        // A repeated (sender, client_msg_id) names the first message, whatever else would
        // refuse it now: rows ignored by the insert (only a repeat can cause that), and
        // refused messages that were stored before the block or the removal.
        let ignored = inserted < accepted.len() as u64;
        if ignored {
            tracing::debug!(
                accepted = accepted.len(),
                inserted,
                "rows ignored by the insert: a client_msg_id repeated within the batch, or stored by another node meanwhile"
            );
        }
        Self::name_duplicates(conn, batch, &mut outcomes, ignored).await?;
        Ok(outcomes)
    }

    /// Round trip 1: open, mark undelivered, look up blocks and memberships.
    async fn open_and_look_up(
        conn: &mut D::Connection,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Refusals, sqlx::Error> {
        let mut sql = String::with_capacity(256 + undelivered.len() * 40 + batch.len() * 24);
        sql.push_str(D::BEGIN_WRITE);
        sql.push(';');
        push_undelivered(&mut sql, undelivered);
        push_lookups::<D>(&mut sql, batch);
        let mut found = Refusals::default();
        for row in sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut *conn)
            .await?
        {
            let tag: String = row.try_get(0)?;
            match tag.as_str() {
                "b" => {
                    found.blocked.insert((row.try_get(1)?, row.try_get(2)?));
                }
                "m" => {
                    found.members.insert((row.try_get(1)?, row.try_get(2)?));
                }
                _ => {
                    let (key, copy) = first_copy(&row)?;
                    found.copies.insert(key, copy);
                }
            }
        }
        Ok(found)
    }

    /// Round trip 2 (more only for very large batches): insert, the push outbox rows when
    /// push is on (src/store/sql/push.rs), update the conversation list, commit. Messages
    /// inserted: the rows the INSERT statements report (an ignored row is a repeated
    /// client_msg_id), read from their own results rather than counted by a statement of
    /// their own. `committing` turns true just before the request carrying COMMIT is sent.
    async fn insert_and_commit(
        conn: &mut D::Connection,
        accepted: &[&Message],
        outboxing: Outboxing,
        committing: &mut bool,
    ) -> Result<u64, sqlx::Error> {
        if accepted.is_empty() {
            *committing = true;
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            return Ok(0);
        }
        let mut inserted = 0;
        let mut sql = String::new();
        let mut rows_in_statement = 0;
        // INSERT statements in `sql`, the request being written: its first results.
        let mut inserts = 0;
        for m in accepted {
            if rows_in_statement == 0 {
                sql.push_str(D::INSERT_IGNORE);
                sql.push_str(
                    " INTO messages (id, sender_id, recipient_id, group_id, peer_lo, peer_hi, content, client_msg_id, ts, delivered) VALUES ",
                );
                inserts += 1;
            } else {
                sql.push(',');
            }
            push_row::<D>(&mut sql, m);
            rows_in_statement += 1;
            if rows_in_statement == CHUNK {
                sql.push(';');
                rows_in_statement = 0;
            }
            if sql.len() >= MAX_REQUEST_BYTES {
                if rows_in_statement > 0 {
                    sql.push(';');
                    rows_in_statement = 0;
                }
                // Only INSERTs of messages: the rows affected, summed over them.
                let request = std::mem::take(&mut sql);
                let done = sqlx::raw_sql(sqlx::AssertSqlSafe(request))
                    .execute(&mut *conn)
                    .await?;
                inserted += D::rows_affected(&done);
                inserts = 0;
            }
        }
        if rows_in_statement > 0 {
            sql.push(';');
        }
        push_outbox_rows::<D>(&mut sql, accepted, outboxing);
        push_activity::<D>(&mut sql, accepted);
        sql.push_str("COMMIT;");
        *committing = true;
        let mut results = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *conn);
        let mut seen = 0;
        while let Some(result) = results.try_next().await? {
            if let Either::Left(done) = result
                && seen < inserts
            {
                inserted += D::rows_affected(&done);
                seen += 1;
            }
        }
        Ok(inserted)
    }

    /// Round trip 3 (rare): when the insert ignored rows (a client_msg_id repeated within the
    /// batch, or stored by another node since round trip 1), turns the stored outcomes of
    /// repeats into `Duplicate` naming the first copy. Refused messages were looked up in
    /// round trip 1 already.
    async fn name_duplicates(
        conn: &mut D::Connection,
        batch: &[Message],
        outcomes: &mut [InsertOutcome],
        ignored: bool,
    ) -> Result<(), sqlx::Error> {
        if !ignored {
            return Ok(());
        }
        let keys: Vec<(UserId, &str)> = batch
            .iter()
            .zip(outcomes.iter())
            .filter(|(_, o)| **o == InsertOutcome::Stored)
            .filter_map(|(m, _)| m.client_msg_id.as_deref().map(|c| (m.sender_id, c)))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let first = Self::first_by_client_id(&mut *conn, &keys).await?;
        for (m, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            let Some(client_id) = &m.client_msg_id else {
                continue;
            };
            if let Some((id, ts, delivered)) = first.get(&(m.sender_id, client_id.clone()))
                && *id != m.id
            {
                *outcome = InsertOutcome::Duplicate {
                    id: *id,
                    ts: *ts,
                    delivered: *delivered,
                };
            }
        }
        Ok(())
    }
}

/// Each message's outcome before inserting (a repeat of a stored message, blocked, not a
/// member, or to be stored), and the messages to store.
fn decide<'m>(batch: &'m [Message], found: &Refusals) -> (Vec<InsertOutcome>, Vec<&'m Message>) {
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut accepted = Vec::with_capacity(batch.len());
    for m in batch {
        // A repeated (sender, client_msg_id) names the first message, whatever else would
        // refuse it now.
        let first = m
            .client_msg_id
            .as_ref()
            .filter(|_| !found.copies.is_empty())
            .and_then(|c| found.copies.get(&(m.sender_id, c.clone())))
            .filter(|(id, _, _)| *id != m.id);
        if let Some(&(id, ts, delivered)) = first {
            outcomes.push(InsertOutcome::Duplicate { id, ts, delivered });
            continue;
        }
        let outcome = match &m.target {
            Target::User(r) if found.blocked.contains(&(*r, m.sender_id)) => InsertOutcome::Blocked,
            Target::Group(g) if !found.members.contains(&(g.to_string(), m.sender_id)) => {
                InsertOutcome::NotMember
            }
            _ => {
                accepted.push(m);
                InsertOutcome::Stored
            }
        };
        outcomes.push(outcome);
    }
    (outcomes, accepted)
}

/// The conversation list's upserts for the accepted messages: both users' rows of each
/// private conversation, and each group's row, each taking its newest message of the batch
/// (and keeping a newer one already there).
///
/// The rows are written as values rather than selected back from `messages` (which cost
/// the database a third of a batch's time at a few messages per batch). A message the
/// insert ignores must not reach the list: copies stored before the batch were refused by
/// `decide`, and a key repeated within the batch counts once, as the insert keeps its first
/// row. Only two nodes storing the same (sender, client_msg_id) at the same moment can get
/// past both: the row may then carry the id of the copy that was not kept, a message of the
/// same sender and content that sorts and pages as the kept one.
///
/// Rows go in key order, one statement per table: two nodes' writers commit batches that
/// touch the same conversation from either side (A to B on one node, B's reply on the
/// other), and rows locked in the key's order cannot deadlock, where one statement per side
/// (the recipients' rows, then the senders') did, failing one of the batches with 5000.
fn push_activity<D: Dialect>(sql: &mut String, accepted: &[&Message]) {
    let mut seen = HashSet::new();
    // Ordered maps: the rows come out in key order.
    let mut private: BTreeMap<(UserId, UserId), &Message> = BTreeMap::new();
    let mut groups: BTreeMap<&str, &Message> = BTreeMap::new();
    for &m in accepted {
        if let Some(c) = &m.client_msg_id
            && !seen.insert((m.sender_id, c.as_str()))
        {
            continue;
        }
        match &m.target {
            Target::User(r) => {
                for key in [(*r, m.sender_id), (m.sender_id, *r)] {
                    let slot = private.entry(key).or_insert(m);
                    if m.id > slot.id {
                        *slot = m;
                    }
                }
            }
            Target::Group(g) => {
                let slot = groups.entry(&**g).or_insert(m);
                if m.id > slot.id {
                    *slot = m;
                }
            }
        }
    }
    let private: Vec<_> = private.into_iter().collect();
    push_upserts::<D, _>(
        sql,
        "conversations (user_id, peer_id, last_id, last_sender, last_preview, last_ts)",
        &private,
        |sql, ((user, peer), m)| {
            let _ = write!(sql, "({user},{peer},");
            push_activity_values::<D>(sql, m);
        },
    );
    let groups: Vec<_> = groups.into_iter().collect();
    push_upserts::<D, _>(
        sql,
        "group_activity (group_id, last_id, last_sender, last_preview, last_ts)",
        &groups,
        |sql, (group, m)| {
            sql.push('(');
            D::text_literal(sql, group);
            sql.push(',');
            push_activity_values::<D>(sql, m);
        },
    );
}

/// Appends `INSERT INTO {table} VALUES …` + the newest-wins clause for `rows`, `CHUNK` rows
/// a statement, each written by `push_row`.
fn push_upserts<D: Dialect, T>(
    sql: &mut String,
    table: &str,
    rows: &[T],
    push_row: impl Fn(&mut String, &T),
) {
    for chunk in rows.chunks(CHUNK) {
        let _ = write!(sql, "INSERT INTO {table} VALUES ");
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            push_row(sql, row);
        }
        sql.push_str(D::NEWEST_WINS);
        sql.push(';');
    }
}

/// The last message's columns of a conversation-list row, and the closing parenthesis.
fn push_activity_values<D: Dialect>(sql: &mut String, m: &Message) {
    push_id(sql, &m.id);
    let _ = write!(sql, ",{},", m.sender_id);
    D::text_literal(sql, preview(&m.content));
    let _ = write!(sql, ",{})", m.ts);
}

/// The list's preview of `content`: its first `PREVIEW_CHARS` characters (code points, as
/// the databases count them).
pub(super) fn preview(content: &str) -> &str {
    match content.char_indices().nth(PREVIEW_CHARS) {
        Some((end, _)) => &content[..end],
        None => content,
    }
}

/// Characters of a message kept in the conversation list (`last_preview VARCHAR(100)`).
const PREVIEW_CHARS: usize = 100;

/// One message as a row of the INSERT.
fn push_row<D: Dialect>(sql: &mut String, m: &Message) {
    let (recipient, group, lo, hi) = match &m.target {
        Target::User(r) => {
            let (lo, hi) = pair(m.sender_id, *r);
            (Some(*r), None, Some(lo), Some(hi))
        }
        Target::Group(g) => (None, Some(&**g), None, None),
    };
    sql.push('(');
    push_id(sql, &m.id);
    let _ = write!(sql, ",{},", m.sender_id);
    push_opt_int(sql, recipient);
    sql.push(',');
    push_opt_text::<D>(sql, group);
    sql.push(',');
    push_opt_int(sql, lo);
    sql.push(',');
    push_opt_int(sql, hi);
    sql.push(',');
    D::text_literal(sql, &m.content);
    sql.push(',');
    push_opt_text::<D>(sql, m.client_msg_id.as_deref());
    // Stored as delivered (most are); `mark_undelivered` corrects the others.
    let _ = write!(sql, ",{},1)", m.ts);
}

/// The lookups of round trip 1: blocks of the private messages' recipients (rows tagged
/// `b`) and memberships of the group messages' senders (rows tagged `m`).
fn push_lookups<D: Dialect>(sql: &mut String, batch: &[Message]) {
    let mut blockers: Vec<UserId> = batch
        .iter()
        .filter_map(|m| match m.target {
            Target::User(r) => Some(r),
            Target::Group(_) => None,
        })
        .collect();
    blockers.sort_unstable();
    blockers.dedup();
    for chunk in blockers.chunks(CHUNK) {
        // Blocks are few: one IN list on the key's first column, pairs picked out in Rust.
        sql.push_str("SELECT 'b', blocker_id, blocked_id FROM blocks WHERE blocker_id IN (");
        for (i, blocker) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            let _ = write!(sql, "{blocker}");
        }
        sql.push_str(");");
    }
    let mut members: Vec<(&str, UserId)> = batch
        .iter()
        .filter_map(|m| match &m.target {
            Target::Group(g) => Some((&**g, m.sender_id)),
            Target::User(_) => None,
        })
        .collect();
    members.sort_unstable();
    members.dedup();
    for chunk in members.chunks(CHUNK) {
        sql.push_str("SELECT 'm', group_id, user_id FROM group_members WHERE ");
        for (i, (group, user)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str("(group_id = ");
            D::text_literal(sql, group);
            let _ = write!(sql, " AND user_id = {user})");
        }
        sql.push(';');
    }
    // Earlier copies (rows tagged `d`).
    let mut keys: Vec<(UserId, &str)> = batch
        .iter()
        .filter_map(|m| m.client_msg_id.as_deref().map(|c| (m.sender_id, c)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    push_first_copies::<D>(sql, &keys);
}
