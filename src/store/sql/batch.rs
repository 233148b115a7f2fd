// The batching writer's transaction, included next to queries.rs in each backend module
// (which also defines `text_literal`, the dialect's UTF-8 string literal).
//
// One batch is one transaction in two round trips: (1) BEGIN, the undelivered marks, and the
// block and membership lookups, as one multi-statement request; (2) the multi-row INSERT and
// COMMIT. A third, rare one looks up earlier copies of repeated client_msg_ids.
//
// Values are written into the SQL text rather than bound: integers formatted by Rust, ids
// and strings as hexadecimal literals, so no input can change the statement, and there is
// no prepared statement per batch size for the server to parse and cache.

/// Largest SQL text of one request, well under MySQL's default `max_allowed_packet` (16 MiB).
const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Appends `UPDATE … SET delivered = 0` statements for `ids` (nothing when empty).
fn push_undelivered(sql: &mut String, ids: &[Uuid]) {
    for chunk in ids.chunks(CHUNK) {
        sql.push_str("UPDATE messages SET delivered = 0 WHERE id IN (");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            push_id(sql, id);
        }
        sql.push_str(");");
    }
}

fn push_id(sql: &mut String, id: &Uuid) {
    let _ = write!(sql, "X'{}'", id.simple());
}

fn push_hex(sql: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    sql.reserve(bytes.len() * 2 + 3);
    sql.push_str("X'");
    for b in bytes {
        sql.push(HEX[usize::from(b >> 4)] as char);
        sql.push(HEX[usize::from(b & 15)] as char);
    }
    sql.push('\'');
}

fn push_opt_int(sql: &mut String, value: Option<i64>) {
    match value {
        Some(v) => {
            let _ = write!(sql, "{v}");
        }
        None => sql.push_str("NULL"),
    }
}

fn push_opt_text(sql: &mut String, value: Option<&str>) {
    match value {
        Some(v) => text_literal(sql, v),
        None => sql.push_str("NULL"),
    }
}

/// One message as a row of the INSERT.
fn push_row(sql: &mut String, m: &Message) {
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
    push_opt_text(sql, group);
    sql.push(',');
    push_opt_int(sql, lo);
    sql.push(',');
    push_opt_int(sql, hi);
    sql.push(',');
    text_literal(sql, &m.content);
    sql.push(',');
    push_opt_text(sql, m.client_msg_id.as_deref());
    // Stored as delivered (most are); `mark_undelivered` corrects the others.
    let _ = write!(sql, ",{},1)", m.ts);
}

/// The lookups of round trip 1: blocks of the private messages' recipients (rows tagged
/// `b`) and memberships of the group messages' senders (rows tagged `m`).
fn push_lookups(sql: &mut String, batch: &[Message]) {
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
            text_literal(sql, group);
            let _ = write!(sql, " AND user_id = {user})");
        }
        sql.push(';');
    }
}

impl SqlStore {
    /// One attempt of `insert_messages`.
    async fn insert_batch(
        &self,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, StoreError> {
        let mut held = self.writer.lock().await;
        let conn = match held.as_mut() {
            Some(conn) => conn,
            None => held.insert(self.pool.acquire().await?),
        };
        match Self::write_batch(conn, batch, undelivered).await {
            Ok(outcomes) => Ok(outcomes),
            Err(e) => {
                // The transaction was opened by hand: end it before the connection goes
                // back to the pool, or drop the connection if even that fails.
                if let Some(mut conn) = held.take()
                    && sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err()
                {
                    let _ = conn.close().await;
                }
                Err(e.into())
            }
        }
    }

    async fn write_batch(
        conn: &mut <Db as sqlx::Database>::Connection,
        batch: &[Message],
        undelivered: &[Uuid],
    ) -> Result<Vec<InsertOutcome>, sqlx::Error> {
        // Round trip 1: open, mark, look up.
        let mut sql = String::with_capacity(256 + undelivered.len() * 40 + batch.len() * 24);
        sql.push_str(BEGIN_WRITE);
        sql.push(';');
        push_undelivered(&mut sql, undelivered);
        push_lookups(&mut sql, batch);
        let mut blocked: HashSet<(UserId, UserId)> = HashSet::new();
        let mut members: HashSet<(String, UserId)> = HashSet::new();
        for row in sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await? {
            let tag: String = row.try_get(0)?;
            if tag == "b" {
                blocked.insert((row.try_get(1)?, row.try_get(2)?));
            } else {
                members.insert((row.try_get(1)?, row.try_get(2)?));
            }
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        for m in batch {
            let outcome = match &m.target {
                Target::User(r) if blocked.contains(&(*r, m.sender_id)) => InsertOutcome::Blocked,
                Target::Group(g) if !members.contains(&(g.to_string(), m.sender_id)) => {
                    InsertOutcome::NotMember
                }
                _ => {
                    accepted.push(m);
                    InsertOutcome::Stored
                }
            };
            outcomes.push(outcome);
        }

        // Round trip 2 (more only for very large batches): insert, commit.
        let mut inserted = 0;
        let mut sql = String::new();
        let mut rows_in_statement = 0;
        for m in &accepted {
            if rows_in_statement == 0 {
                sql.push_str(INSERT_IGNORE);
                sql.push_str(
                    " INTO messages (id, sender_id, recipient_id, group_id, peer_lo, peer_hi, content, client_msg_id, ts, delivered) VALUES ",
                );
            } else {
                sql.push(',');
            }
            push_row(&mut sql, m);
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
                let request = std::mem::take(&mut sql);
                inserted += sqlx::raw_sql(sqlx::AssertSqlSafe(request))
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            }
        }
        if rows_in_statement > 0 {
            sql.push(';');
        }
        if COMMIT_WITH_INSERT {
            sql.push_str("COMMIT;");
        }
        if !sql.is_empty() {
            inserted += sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        if !COMMIT_WITH_INSERT {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        }

        // A repeated (sender, client_msg_id) names the first message, whatever else would
        // refuse it now: rows ignored by the insert (only a repeat can cause that), and
        // refused messages that were stored before the block or the removal.
        let ignored = inserted < accepted.len() as u64;
        let keys: Vec<(UserId, &str)> = batch
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| ignored || **o != InsertOutcome::Stored)
            .filter_map(|(m, _)| m.client_msg_id.as_deref().map(|c| (m.sender_id, c)))
            .collect();
        if !keys.is_empty() {
            let first = Self::first_by_client_id(&mut *conn, &keys).await?;
            for (m, outcome) in batch.iter().zip(outcomes.iter_mut()) {
                let Some(client_id) = &m.client_msg_id else { continue };
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
        }
        Ok(outcomes)
    }
}
