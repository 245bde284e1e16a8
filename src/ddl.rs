//! Building and running the SQL that protect, migrate and the views issue. Every name in it
//! comes from the catalog and is quoted here, every type is rendered from its OID, and each
//! statement is parsed first to make sure it is one statement. It runs with the caller's
//! privileges (the table's owner, who may change the table) and with search_path pinned to
//! pg_catalog, pg_temp, so nothing the caller planted on their path is used.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors;
use crate::keyring::read_row;
use crate::local_settings::with_settings;

/// `name` as an SQL identifier, quoted when it needs to be.
pub fn ident(name: &str) -> String {
    let c = CString::new(name).unwrap_or_else(|_| errors::name_has_nul());
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// `text` as an SQL string literal.
pub fn literal(text: &str) -> String {
    let c = CString::new(text).unwrap_or_else(|_| errors::name_has_nul());
    unsafe { CStr::from_ptr(pg_sys::quote_literal_cstr(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// A type as SQL, from its OID and modifier, always schema-qualified.
pub fn type_sql(type_oid: pg_sys::Oid, typmod: i32) -> String {
    unsafe {
        CStr::from_ptr(pg_sys::format_type_extended(
            type_oid,
            typmod,
            (pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN | pg_sys::FORMAT_TYPE_FORCE_QUALIFY) as u16,
        ))
    }
    .to_string_lossy()
    .into_owned()
}

/// A type as a message shows it: qualified only where the search path would not find it.
pub fn type_display(type_oid: pg_sys::Oid, typmod: i32) -> String {
    unsafe { CStr::from_ptr(pg_sys::format_type_with_typemod(type_oid, typmod)) }
        .to_string_lossy()
        .into_owned()
}

/// Runs `f` with search_path pinned, as the old PL/pgSQL functions' SET clause did.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&[(c"search_path", c"pg_catalog, pg_temp")], f)
}

/// Runs one statement that the code here built, as the caller; returns how many rows it
/// processed. Anything that would parse as more than one statement is refused.
pub fn run(statement: &str) -> i64 {
    let c = CString::new(statement).unwrap_or_else(|_| errors::name_has_nul());
    let count = unsafe {
        let parsed = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if parsed.is_null() {
            0
        } else {
            (*parsed).length
        }
    };
    if count != 1 {
        errors::generated_sql_not_one_statement();
    }
    Spi::connect_mut(|client| {
        client
            .update(statement, None, &[])
            .map(|done| done.len() as i64)
    })
    .unwrap_or_else(|e| errors::ddl_failed(e))
}

/// A table a caller may protect: an ordinary, permanent table whose owner the caller is
/// (or is a member of).
pub struct Table {
    pub oid: pg_sys::Oid,
    /// `schema.table`, quoted.
    pub sql: String,
    pub schema: String,
    pub name: String,
}

impl Table {
    /// Raises 22004 for NULL, 42P01 if it does not exist, 0A000 for a partitioned or
    /// temporary table, 42809 for anything but a table, 42501 unless the caller owns it.
    pub fn owned(tbl: pg_sys::Oid) -> Table {
        let found = read_row(
            "look up the table",
            "SELECT c.relkind::text, c.relpersistence::text, pg_has_role(c.relowner, 'USAGE'), \
                    n.nspname::text, c.relname::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[tbl.into()],
            |row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<bool>(3)?.unwrap_or(false),
                    row.get::<String>(4)?.unwrap_or_default(),
                    row.get::<String>(5)?.unwrap_or_default(),
                ))
            },
        );
        let Some((relkind, persistence, owned, schema, name)) = found else {
            errors::no_such_table(tbl.to_u32())
        };
        let sql = format!("{}.{}", ident(&schema), ident(&name));
        match relkind.as_str() {
            "r" => {}
            "p" => errors::partitioned_table(&sql),
            _ => errors::not_a_table(&sql),
        }
        if persistence == "t" {
            errors::temporary_table(&sql);
        }
        if !owned {
            errors::not_table_owner(&sql);
        }
        Table {
            oid: tbl,
            sql,
            schema,
            name,
        }
    }

    /// The table's size in blocks.
    pub fn blocks(&self) -> i64 {
        read_row(
            "read the table's size",
            "SELECT pg_relation_size($1) / current_setting('block_size')::bigint",
            &[self.oid.into()],
            |row| row.get_one::<i64>(),
        )
        .flatten()
        .unwrap_or(0)
    }
}

/// The table's primary key columns in key order, as (attnum, name): the order row contexts
/// bind to, for the trigger and the views alike.
pub fn primary_key(tbl: pg_sys::Oid) -> Vec<(i16, String)> {
    Spi::connect(|client| {
        client
            .select(
                "SELECT a.attnum, a.attname::text \
                 FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n), pg_attribute a \
                 WHERE i.indrelid = $1 AND i.indisprimary AND a.attrelid = $1 AND a.attnum = k.attnum \
                 ORDER BY k.n",
                None,
                &[tbl.into()],
            )?
            .map(|row| Ok((row.get::<i16>(1)?.unwrap_or(0), row.get::<String>(2)?.unwrap_or_default())))
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| errors::catalog_query_failed("read the primary key", e))
}
