//! Building and running the SQL that protect, migrate and the views issue. Every name in it
//! comes from the catalog and is quoted here, every type is rendered from its OID, and each
//! statement is parsed first to make sure it is one statement. It runs with search_path
//! pinned to pg_catalog, pg_temp, so nothing planted on a search path is used.
//!
//! Statements on a table run as the table's owner, in a security-restricted operation, as
//! PostgreSQL runs VACUUM or REINDEX: the owner's triggers, index expressions and domain
//! checks that they set off then run with the owner's rights, never a superuser's who
//! called protect. The views are created as the caller, who owns them.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::pg::majors::tuple_desc_attributes;
use crate::pg::settings::{as_role_restricted, with_settings};
use crate::pg::spi::read_row;

/// `name` as an SQL identifier, quoted when it needs to be.
pub fn ident(name: &str) -> String {
    let c = CString::new(name).unwrap_or_else(|_| raise(Error::NameHasNul));
    // SAFETY: quote_identifier reads the NUL-terminated copy made above and returns either it
    // or a palloc'd quoted copy, which lives while this function copies it into a String.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// `text` as an SQL string literal.
pub fn literal(text: &str) -> String {
    let c = CString::new(text).unwrap_or_else(|_| raise(Error::NameHasNul));
    // SAFETY: quote_literal_cstr reads the NUL-terminated copy made above and returns a
    // palloc'd string, copied into a String at once.
    unsafe { CStr::from_ptr(pg_sys::quote_literal_cstr(c.as_ptr())) }
        .to_string_lossy()
        .into_owned()
}

/// A type as SQL, from its OID and modifier, always schema-qualified.
pub fn type_sql(type_oid: pg_sys::Oid, typmod: i32) -> String {
    // SAFETY: format_type_extended looks the OID up in the syscache (raising through the
    // caller's pgrx guard if it is gone) and returns a palloc'd NUL-terminated string.
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
    // SAFETY: as for type_sql: a palloc'd NUL-terminated string, copied at once.
    unsafe { CStr::from_ptr(pg_sys::format_type_with_typemod(type_oid, typmod)) }
        .to_string_lossy()
        .into_owned()
}

/// The type a value of type `oid` (with modifier `typmod`) is opened as for whoever reads
/// it: the type without its domains, so that no domain's CHECK, code of whoever made the
/// domain, runs for the reader (a superuser too); it ran when the value was written, and the
/// text is the same. A domain reads as its base type with the modifier that applies, an
/// array of a domain as the array of its base. None where a domain sits deeper, in a range,
/// a multirange or a composite type, or is over an array itself (an array of those writes
/// its elements as quoted arrays, which no array type reads), none of which has a twin
/// without it.
pub fn reader_type(oid: pg_sys::Oid, typmod: i32) -> Option<(pg_sys::Oid, i32)> {
    // SAFETY: getBaseTypeAndTypmod, get_element_type and get_array_type only read the syscache;
    // typmod is a local they write through.
    unsafe {
        let mut typmod = typmod;
        let base = pg_sys::getBaseTypeAndTypmod(oid, &mut typmod);
        if !has_domain(base) {
            return Some((base, typmod));
        }
        let element = pg_sys::get_element_type(base);
        if element == pg_sys::InvalidOid {
            return None;
        }
        // An array's modifier is its elements'; a domain element carries its own.
        let mut element_typmod = typmod;
        let element_base = pg_sys::getBaseTypeAndTypmod(element, &mut element_typmod);
        let array = pg_sys::get_array_type(element_base);
        (!has_domain(element_base) && array != pg_sys::InvalidOid)
            .then_some((array, element_typmod))
    }
}

/// Whether reading a value of type `oid` runs a domain's input: it is a domain, or holds
/// one as an element, a range's subtype or a composite's attribute, however deep.
pub fn has_domain(oid: pg_sys::Oid) -> bool {
    any_part(oid, &|typtype| typtype == pg_sys::TYPTYPE_DOMAIN)
}

/// Whether `oid` is or holds a composite type, whose attributes ALTER TYPE changes under a
/// running query: what `has_domain` says of it holds only until then.
pub fn has_composite(oid: pg_sys::Oid) -> bool {
    any_part(oid, &|typtype| typtype == pg_sys::TYPTYPE_COMPOSITE)
}

/// Whether `oid`, or a type it is made of (a domain's base, an array's element, a range's
/// subtype, a composite's attributes), however deep, has a `typtype` that `is` picks.
fn any_part(oid: pg_sys::Oid, is: &impl Fn(u8) -> bool) -> bool {
    // SAFETY: syscache and typcache reads of a type OID, and a lock on a composite type's
    // relation, which the transaction releases; the tuple descriptor copied from the
    // typcache is freed by the same code that made it, and an error (a type dropped
    // meanwhile) leaves it to its memory context.
    unsafe {
        // Composite types nest without a bound PostgreSQL keeps for us.
        pg_sys::check_stack_depth();
        let typtype = pg_sys::get_typtype(oid) as u8;
        if is(typtype) {
            return true;
        }
        match typtype {
            pg_sys::TYPTYPE_DOMAIN => any_part(pg_sys::getBaseType(oid), is),
            pg_sys::TYPTYPE_RANGE => any_part(pg_sys::get_range_subtype(oid), is),
            pg_sys::TYPTYPE_MULTIRANGE => any_part(pg_sys::get_multirange_range(oid), is),
            pg_sys::TYPTYPE_COMPOSITE => {
                // Held to the transaction's end: ALTER TYPE cannot give the type a domain
                // attribute while this transaction reads values of it (an input function that
                // takes a lock part-way through a value would see the new attributes).
                let relid = pg_sys::get_typ_typrelid(oid);
                if relid != pg_sys::InvalidOid {
                    pg_sys::LockRelationOid(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
                }
                let tupdesc = pg_sys::lookup_rowtype_tupdesc_copy(oid, -1);
                let found = tuple_desc_attributes(tupdesc)
                    .iter()
                    .any(|a| !a.attisdropped && any_part(a.atttypid, is));
                pg_sys::FreeTupleDesc(tupdesc);
                found
            }
            _ => {
                let element = pg_sys::get_element_type(oid);
                element != pg_sys::InvalidOid && any_part(element, is)
            }
        }
    }
}

/// Runs `f` with search_path pinned, as the old PL/pgSQL functions' SET clause did.
pub fn pinned<R>(f: impl FnOnce() -> R) -> R {
    with_settings(&[(c"search_path", c"pg_catalog, pg_temp")], f)
}

/// Runs `f` as `owner`, a table's owner, in a security-restricted operation with row
/// security off (so that a policy can only stop a statement, never hide rows from it), and
/// with every setting the owner's code changes undone afterwards. Every privilege checked
/// inside is the owner's: the values a migration seals need the owner's `seal`, and nothing
/// is opened for the owner that it may not open itself.
pub fn as_table_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    as_role_restricted(owner, &[(c"row_security", c"off")], false, f)
}

/// Whether `expression` is one SQL expression and nothing more: `SELECT (expression)` parses
/// as one statement with one target and no other clause, so it cannot close its
/// parenthesis and go on into a FROM, another target or another statement.
pub fn is_one_expression(expression: &str) -> bool {
    let Ok(c) = CString::new(format!("SELECT ({expression})")) else {
        return false;
    };
    // SAFETY: raw_parser takes the NUL-terminated copy above and returns a palloc'd List of
    // RawStmt or raises (through the caller's guard); the list is only read, with its length
    // checked before each element.
    unsafe {
        let parsed = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if parsed.is_null() || (*parsed).length != 1 {
            return false;
        }
        let raw = (*(*parsed).elements).ptr_value.cast::<pg_sys::RawStmt>();
        let node = (*raw).stmt;
        if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_SelectStmt {
            return false;
        }
        let select = &*node.cast::<pg_sys::SelectStmt>();
        let length = |list: *mut pg_sys::List| if list.is_null() { 0 } else { (*list).length };
        length(select.targetList) == 1
            && [
                select.distinctClause,
                select.fromClause,
                select.groupClause,
                select.windowClause,
                select.valuesLists,
                select.sortClause,
                select.lockingClause,
            ]
            .into_iter()
            .all(|list| length(list) == 0)
            && select.intoClause.is_null()
            && select.whereClause.is_null()
            && select.havingClause.is_null()
            && select.limitOffset.is_null()
            && select.limitCount.is_null()
            && select.withClause.is_null()
            && select.op == pg_sys::SetOperation::SETOP_NONE
    }
}

/// Runs one statement that the code here built, as the caller; returns how many rows it
/// processed. Anything that would parse as more than one statement is refused.
pub fn run(statement: &str) -> i64 {
    let c = CString::new(statement).unwrap_or_else(|_| raise(Error::NameHasNul));
    // SAFETY: the same parse as in is_one_expression: a NUL-terminated copy in, a List only
    // read after its NULL and length are checked.
    let count = unsafe {
        let parsed = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
        if parsed.is_null() {
            0
        } else {
            (*parsed).length
        }
    };
    if count != 1 {
        raise(Error::GeneratedSqlNotOneStatement);
    }
    Spi::connect_mut(|client| {
        client
            .update(statement, None, &[])
            .map(|done| done.len() as i64)
    })
    .unwrap_or_else(|e| errors::catalog_query_failed("run a statement it built", e))
}

/// A relation's name, or its OID when it has none any more, for messages.
pub fn relation_name(oid: pg_sys::Oid) -> String {
    // SAFETY: get_rel_name returns NULL or a palloc'd copy of the name; it does not raise for a
    // missing relation.
    let name = unsafe { pg_sys::get_rel_name(oid) };
    if name.is_null() {
        oid.to_u32().to_string()
    } else {
        // SAFETY: name is not NULL (checked above) and NUL-terminated, a palloc'd copy that
        // lives for this call.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}

/// An error that a subtransaction was rolled back for.
pub struct Failure {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
}

impl Failure {
    /// Raises the error again without its DETAIL, which can show the plaintext the failed
    /// statement wrote (a CHECK constraint's "Failing row contains ...").
    pub fn raise_without_detail(&self) -> ! {
        raise(Error::FailedOverPlaintext {
            sqlstate: errors::sqlstate_of(self.code),
            message: &self.message,
        })
    }
}

/// Runs `f` in a subtransaction, as a PL/pgSQL block with an EXCEPTION clause does: when it
/// raises an error, what it did is rolled back and the error comes back instead.
pub fn in_subtransaction<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
    unsafe fn back_to(context: pg_sys::MemoryContext, owner: pg_sys::ResourceOwner) {
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
    }
    // SAFETY: the subtransaction is begun and then released or rolled back on every path out of
    // f (a Rust panic or a PostgreSQL error both reach catch_others), and the caller's memory
    // context and resource owner, which both calls change, are put back after each, as
    // PL/pgSQL's exception blocks do.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
            let result = f();
            pg_sys::ReleaseCurrentSubTransaction();
            back_to(context, owner);
            Ok(result)
        }))
        .catch_others(|error| {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            back_to(context, owner);
            let failure = match &error {
                pg_sys::panic::CaughtError::PostgresError(report)
                | pg_sys::panic::CaughtError::ErrorReport(report) => Failure {
                    code: report.sql_error_code(),
                    message: report.message().to_owned(),
                    detail: report.detail().map(str::to_owned),
                },
                _ => error.rethrow(),
            };
            // A cancel or a shutdown ends the statement, as PL/pgSQL's WHEN OTHERS lets it.
            if matches!(
                failure.code,
                PgSqlErrorCode::ERRCODE_QUERY_CANCELED | PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN
            ) {
                error.rethrow()
            }
            Err(failure)
        })
        .execute()
    }
}

/// A table a caller may protect: an ordinary, permanent table whose owner the caller is
/// (or is a member of).
pub struct Table {
    pub oid: pg_sys::Oid,
    pub owner: pg_sys::Oid,
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
                    n.nspname::text, c.relname::text, c.relowner \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            &[tbl.into()],
            |row| {
                Ok((
                    row.get::<String>(1)?.unwrap_or_default(),
                    row.get::<String>(2)?.unwrap_or_default(),
                    row.get::<bool>(3)?.unwrap_or(false),
                    row.get::<String>(4)?.unwrap_or_default(),
                    row.get::<String>(5)?.unwrap_or_default(),
                    row.get::<pg_sys::Oid>(6)?.unwrap_or_default(),
                ))
            },
        );
        let Some((relkind, persistence, owned, schema, name, owner)) = found else {
            raise(Error::NoSuchTable { oid: tbl.to_u32() })
        };
        let sql = format!("{}.{}", ident(&schema), ident(&name));
        match relkind.as_str() {
            "r" => {}
            "p" => raise(Error::PartitionedTable { table: &sql }),
            _ => raise(Error::NotATable { table: &sql }),
        }
        if persistence == "t" {
            raise(Error::TemporaryTable { table: &sql });
        }
        if !owned {
            raise(Error::NotTableOwner { table: &sql });
        }
        Table {
            oid: tbl,
            owner,
            sql,
            schema,
            name,
        }
    }

    /// Runs one statement on the table as its owner (see `as_owner`); returns how many rows
    /// it processed.
    pub fn run(&self, statement: &str) -> i64 {
        self.as_owner(|| run(statement))
    }

    /// Runs one statement on the table as `run` does, in a subtransaction: if it fails, what
    /// it did is rolled back and its error comes back, for the caller to raise as it must.
    pub fn try_run(&self, statement: &str) -> Result<i64, Failure> {
        in_subtransaction(|| self.run(statement))
    }

    /// Runs a statement that writes the table's values back in clear, as `run` does; if it
    /// fails, its error is raised again without its DETAIL, which can hold the row's values
    /// (a CHECK constraint's "Failing row contains ...").
    pub fn run_over_plaintext(&self, statement: &str) -> i64 {
        PgTryBuilder::new(std::panic::AssertUnwindSafe(|| self.run(statement)))
            .catch_others(|error| match error {
                pg_sys::panic::CaughtError::PostgresError(report)
                | pg_sys::panic::CaughtError::ErrorReport(report) => {
                    raise(Error::FailedOverPlaintext {
                        sqlstate: errors::sqlstate_of(report.sql_error_code()),
                        message: report.message(),
                    })
                }
                other => other.rethrow(),
            })
            .execute()
    }

    /// Runs `f` as the table's owner (see `as_table_owner`).
    pub fn as_owner<R>(&self, f: impl FnOnce() -> R) -> R {
        as_table_owner(self.owner, f)
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
    pinned(|| Spi::connect(|client| {
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
    }))
    .unwrap_or_else(|e| errors::catalog_query_failed("read the primary key", e))
}
