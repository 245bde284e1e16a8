//! How a protected column reads back as plaintext in SQL: an open function over the sealed
//! value, as the column's original type without its domains, with the row context of a
//! column bound to its rows; what the views select and `unprotect` rewrites the column with.

use pgrx::pg_sys;

use crate::errors::{raise, Error};
use crate::pg::sql::{ident, type_sql, Table};
use crate::tables::registry::{self, Mode, ProtectedColumn};

/// The plaintext of column `p` as its original type, for `prefix` (`t.` in a view, empty
/// in ALTER ... USING): an open function over the sealed value, or while it migrates the
/// plaintext column where no sealed value is yet.
pub fn read_expression(table: &Table, p: &ProtectedColumn, prefix: &str) -> String {
    let context = context_expression(table, p, prefix);
    let col = format!("{prefix}{}", ident(&p.col));
    let opened = match p.mode {
        Mode::Jsonb => format!("akko_crypt.open_pii({col}, {context})"),
        Mode::Bytea | Mode::Text => {
            let col = match p.mode {
                Mode::Text => format!("akko_crypt.envelope_from_text({col})"),
                _ => col,
            };
            let (read_as, typmod) = opened_type(table, p);
            let opened = format!(
                "akko_crypt.open_value({col}, {context}, NULL::{})",
                type_sql(read_as, -1)
            );
            // A modifier is applied by a cast, which names no value if it fails.
            if typmod >= 0 {
                format!("{opened}::{}", type_sql(read_as, typmod))
            } else {
                opened
            }
        }
    };
    match &p.plain_col {
        Some(plain) => format!("COALESCE({opened}, {prefix}{})", ident(plain)),
        None => opened,
    }
}

/// The type, and modifier, a scalar-mode column `p` reads back as: its original type
/// without domains (see `sql::reader_type`). A composite type given a domain attribute
/// after protect has none.
pub fn opened_type(table: &Table, p: &ProtectedColumn) -> (pg_sys::Oid, i32) {
    crate::pg::sql::reader_type(p.original_type, p.original_typmod).unwrap_or_else(|| {
        raise(Error::UnreadableType {
            column: &ident(&p.col),
            table: &table.sql,
            type_name: &crate::pg::sql::type_display(p.original_type, p.original_typmod),
        })
    })
}

/// The expression that binds a value of column `p` to its row: NULL, or row_context over
/// the primary key columns in key order.
fn context_expression(table: &Table, p: &ProtectedColumn, prefix: &str) -> String {
    if !p.bind_row {
        return "NULL::pg_catalog.bytea".into();
    }
    bound_context(table.oid, p, prefix)
}

/// The context that binds a value of `p`, a column bound to its rows, to its row.
fn bound_context(tbl: pg_sys::Oid, p: &ProtectedColumn, prefix: &str) -> String {
    let key: Vec<String> = crate::pg::sql::primary_key(tbl)
        .into_iter()
        .map(|(_, name)| format!("{prefix}{}", ident(&name)))
        .collect();
    format!(
        "akko_crypt.row_context('\\x{}'::pg_catalog.bytea, {})",
        hex(&p.binding_id),
        key.join(", ")
    )
}

/// For reencrypt: the expression that gives each row's context, if `tbl`.`col` is a
/// protected column bound to its rows.
pub fn row_binding(tbl: pg_sys::Oid, col: &str) -> Option<String> {
    registry::column(tbl, col)
        .filter(|p| p.bind_row)
        .map(|p| bound_context(tbl, &p, ""))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
