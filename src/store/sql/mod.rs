//! The SQL stores: one implementation (`queries.rs`) compiled for MySQL/MariaDB and for
//! SQLite, which differ only in connecting, migrating and insert-unless-duplicate syntax.

mod mysql;
mod sqlite;

pub use mysql::SqlStore as MySqlStore;
pub use sqlite::SqlStore as SqliteStore;

/// Either SQL store, for code that names "the SQL store" without choosing.
pub type SqlStore = SqliteStore;
