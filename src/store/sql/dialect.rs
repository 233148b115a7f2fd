//! `Dialect`: what one SQL backend supplies to the generic store, and the sqlx capabilities
//! the generic code relies on.

use sqlx::{Database, Decode, Encode, Type};
use std::future::Future;

use super::SqlStore;
use crate::settings::StorageSettings;
use crate::store::StoreError;

/// One SQL backend: a sqlx database plus the few statements and literals in which its SQL
/// differs. Implemented for `sqlx::MySql` (mysql.rs) and `sqlx::Sqlite` (sqlite.rs); all
/// other SQL text is shared and uses `?` placeholders.
///
/// Rust does not carry a trait's where-clauses over to its users, so each generic impl block
/// of the store repeats the same clause (it names what sqlx must provide; see `Value`):
///
/// ```text
/// where
///     for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
///     D::Arguments: IntoArguments<D>,
///     usize: ColumnIndex<D::Row>,
///     i64: Value<D>,
///     String: Value<D>,
///     Uuid: Value<D>,
///     for<'a> &'a str: Encode<'a, D> + Type<D>,
/// ```
pub trait Dialect: Database + Sized {
    /// The start of an INSERT that skips rows whose key exists already.
    const INSERT_IGNORE: &'static str;
    /// The statement that opens a transaction which will write.
    const BEGIN_WRITE: &'static str;
    /// Inserts a group unless its id is taken (binds: id, name, description, icon, owner,
    /// created_at).
    const INSERT_GROUP: &'static str;
    /// What ends a `SELECT` that locks the rows it reads until the transaction ends
    /// (MySQL `FOR UPDATE`; nothing on SQLite, whose write transactions are exclusive).
    const FOR_UPDATE: &'static str;
    /// Inserts a follow unless it exists (binds: follower, followee, created_at).
    const INSERT_FOLLOW: &'static str;
    /// Inserts a block unless it exists (binds: blocker, blocked, created_at).
    const INSERT_BLOCK: &'static str;
    /// What ends an `INSERT INTO conversations (…) VALUES …` (or `group_activity`) so that
    /// an existing row takes the inserted message when it is newer: the upsert clause.
    const NEWEST_WINS: &'static str;

    /// Appends a UTF-8 string literal that stores and compares as text, whatever bytes it
    /// holds (written as hexadecimal, so no input can change the statement).
    fn text_literal(sql: &mut String, s: &str);
    /// How many rows a statement changed (sqlx has no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// Connects to `settings.url`, migrating first if `settings.migrate`, and starts any
    /// background task the backend needs. (No `Send` bound: the MySQL migrator's future
    /// trips a rustc limit on higher-ranked lifetimes; callers await it where they are.)
    fn connect(
        settings: &StorageSettings,
    ) -> impl Future<Output = Result<SqlStore<Self>, StoreError>>;
}

/// A Rust type the store binds and decodes as it is on database `DB`.
pub trait Value<DB: Database>:
    Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Send
{
}

impl<DB: Database, T> Value<DB> for T where
    T: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Send
{
}
