//! The tables a caller may protect, change or give a decrypting view: with the privilege to
//! protect, owned by the caller, and with a protection its registry rows and trigger agree on;
//! and the check that such a table's owner, whom its statements run as, may seal a class.

use pgrx::pg_sys;

use crate::errors::{raise, Error};
use crate::pg::sql::Table;
use crate::privileges::{self, Privilege};

/// A table the caller may protect and change: the privilege to protect, and ownership. Its
/// registry rows and its trigger must agree: a table restored without its registry rows
/// would otherwise get a trigger made from the registry alone, and its restored columns
/// would no longer be sealed (see `restore_protection`).
pub fn protectable(tbl: pg_sys::Oid) -> Table {
    let table = owned_protectable(tbl);
    match crate::tables::spec::disagreements(tbl) {
        Some(columns) if !columns.is_empty() => raise(Error::ProtectionIncomplete {
            table: &table.name,
            columns: &columns,
        }),
        _ => table,
    }
}

pub fn owned_protectable(tbl: pg_sys::Oid) -> Table {
    privileges::require(Privilege::Protect, None);
    Table::owned(tbl)
}

/// The migration seals the table's values as its owner (see `sql::as_table_owner`), so the
/// owner needs `seal` on the class; said before anything changes.
pub(super) fn require_owner_seals(table: &Table, class: akko_crypt_core::ClassName<'_>) {
    if !privileges::held_by(table.owner, Privilege::Seal, Some(class)) {
        raise(Error::OwnerMayNotSeal {
            table: &table.sql,
            class: class.as_str(),
        });
    }
}
