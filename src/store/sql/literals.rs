//! Values written into SQL text rather than bound: integers formatted by Rust, ids and
//! strings as hexadecimal literals, so no input can change the statement, and there is no
//! prepared statement per batch size for the server to parse and cache.

use std::fmt::Write as _;
use uuid::Uuid;

use super::Dialect;
use super::rows::CHUNK;

/// Appends `id` as a 16-byte binary literal.
pub(super) fn push_id(sql: &mut String, id: &Uuid) {
    let _ = write!(sql, "X'{}'", id.simple());
}

/// Appends a comma-separated list of binary id literals.
pub(super) fn push_ids(sql: &mut String, ids: &[Uuid]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        push_id(sql, id);
    }
}

/// Appends `bytes` as a binary literal (the dialect's `text_literal` wraps it as text).
pub(super) fn push_hex(sql: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    sql.reserve(bytes.len() * 2 + 3);
    sql.push_str("X'");
    for b in bytes {
        sql.push(HEX[usize::from(b >> 4)] as char);
        sql.push(HEX[usize::from(b & 15)] as char);
    }
    sql.push('\'');
}

/// Appends an integer, or NULL.
pub(super) fn push_opt_int(sql: &mut String, value: Option<i64>) {
    match value {
        Some(v) => {
            let _ = write!(sql, "{v}");
        }
        None => sql.push_str("NULL"),
    }
}

/// Appends a text literal, or NULL.
pub(super) fn push_opt_text<D: Dialect>(sql: &mut String, value: Option<&str>) {
    match value {
        Some(v) => D::text_literal(sql, v),
        None => sql.push_str("NULL"),
    }
}

/// Appends `UPDATE … SET delivered = 0` statements for `ids` (nothing when empty).
pub(super) fn push_undelivered(sql: &mut String, ids: &[Uuid]) {
    for chunk in ids.chunks(CHUNK) {
        sql.push_str("UPDATE messages SET delivered = 0 WHERE id IN (");
        push_ids(sql, chunk);
        sql.push_str(");");
    }
}
