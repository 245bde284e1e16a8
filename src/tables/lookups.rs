//! `blind_index()` and `migrating_blind_index()`: a value's blind index for a protected
//! column, computed as the trigger computes it when it writes the value, for the lookups
//! and the unique index of a column that migrates online.

use std::cell::RefCell;
use std::rc::Rc;

use akko_crypt_core::column::{Normalization, BLIND_INDEX_LEN};
use pgrx::fcinfo::pg_getarg_datum_raw;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{raise, Error};
use crate::pg::datum::{bytea_datum, Args};
use crate::pg::sql;
use crate::privileges::{self, Privilege};
use crate::tables::registry;
use crate::tables::spec::{relation_name, table_spec, ColumnMode};
use crate::tables::type_io::{Lookup, OriginalType};
use crate::values::blind_index::{self, BlindIndex};
use crate::values::sealing::{text_as_utf8, value_class};

extension_sql!(
    r#"
-- PARALLEL UNSAFE: it reads the table's protection, which checks the registry in a
-- subtransaction (to see what the statement wrote), and no query in parallel mode, leader
-- or worker, may start one. A lookup computes it once, for its constant.
CREATE FUNCTION blind_index(value text, tbl regclass, col name)
    RETURNS bytea LANGUAGE c STABLE STRICT PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_blind_index';
COMMENT ON FUNCTION blind_index(text, regclass, name) IS
    'The blind index of a value for a protected column: WHERE <col>_bidx = akko_crypt.blind_index(value, table, column) finds equal values by index';
REVOKE ALL ON FUNCTION blind_index(text, regclass, name) FROM PUBLIC;

CREATE FUNCTION migrating_blind_index(tbl regclass, col name, plaintext anyelement)
    RETURNS bytea LANGUAGE c IMMUTABLE STRICT PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_migrating_blind_index';
COMMENT ON FUNCTION migrating_blind_index(regclass, name, anyelement) IS
    'The blind index of a value still in the plaintext column of a column that migrates online: what its unique index compares with the sealed rows'' <col>_bidx';
REVOKE ALL ON FUNCTION migrating_blind_index(regclass, name, anyelement) FROM PUBLIC;
"#,
    name = "blind_index",
    requires = ["sealing", "protect_trigger"]
);

v1_function_info!(
    pg_finfo_akko_blind_index,
    pg_finfo_akko_migrating_blind_index
);

pub fn init() {
    // SAFETY: registered once, from _PG_init; the callback has the C ABI PostgreSQL calls
    // it with and only drops a cached registry row.
    unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(forget_table), pg_sys::Datum::from(0)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_table(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    MIGRATING.with(|m| {
        let mut m = m.borrow_mut();
        if relid == pg_sys::InvalidOid || m.as_ref().is_some_and(|p| p.tbl == relid) {
            *m = None;
        }
    });
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_blind_index(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = Args::new(fcinfo);
    let value = args.bytes(0).unwrap_or_default();
    let table = pg_sys::Oid::from_datum(pg_getarg_datum_raw(fcinfo, 1), false)
        .unwrap_or_else(|| raise(Error::NullArgument { name: "tbl" }));
    let column = pg_getarg_datum_raw(fcinfo, 2).cast_mut_ptr::<pg_sys::NameData>();
    let column = std::ffi::CStr::from_ptr((*column).data.as_ptr()).to_string_lossy();
    // The value arrives in the server encoding; blind indexes are computed over UTF-8.
    let utf8 = text_as_utf8(value, None);
    let digest = blind_index_of(table, &column, &utf8);
    bytea_datum(&digest)
}

/// `migrating_blind_index(tbl, col, plaintext)`: while `col` migrates online, its unique
/// blind index covers the rows not sealed yet through
/// `COALESCE(<col>_bidx, migrating_blind_index(tbl, col, <col>_akko_plain))`, so a duplicate
/// of a value not migrated yet is refused as one of a sealed value is.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_migrating_blind_index(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let table = pg_sys::Oid::from_datum(pg_getarg_datum_raw(fcinfo, 0), false)
        .unwrap_or_else(|| raise(Error::NullArgument { name: "tbl" }));
    let column = pg_getarg_datum_raw(fcinfo, 1).cast_mut_ptr::<pg_sys::NameData>();
    let column = std::ffi::CStr::from_ptr((*column).data.as_ptr()).to_string_lossy();
    let value_type = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, 2);
    let digest =
        migrating_blind_index_of(table, &column, pg_getarg_datum_raw(fcinfo, 2), value_type);
    bytea_datum(&digest)
}

/// The blind index of a value written as `utf8` to `table`.`column`, as the trigger
/// computes it. Testing a value against stored blind indexes is a partial opening, so it
/// needs the right to open the column's class.
pub fn blind_index_of(table: pg_sys::Oid, column: &str, utf8: &str) -> [u8; BLIND_INDEX_LEN] {
    // SAFETY: the relation is opened (or found missing) and closed within this block under
    // AccessShareLock; table_spec reads it while it is open and keeps no pointer into it.
    unsafe {
        let relation = pg_sys::try_relation_open(table, pg_sys::AccessShareLock as i32);
        if relation.is_null() {
            raise(Error::NoSuchTable {
                oid: table.to_u32(),
            });
        }
        let spec = table_spec(relation);
        let table_name = relation_name(relation);
        pg_sys::relation_close(relation, pg_sys::AccessShareLock as i32);
        let found = spec.columns.iter().find(|c| c.name == column);
        let Some((spec, bidx)) = found.and_then(|c| c.blind_index.as_ref().map(|b| (c, b))) else {
            raise(Error::NoBlindIndex {
                table: &table_name,
                column,
            })
        };
        privileges::require(Privilege::Open, Some(value_class(&spec.class)));
        let ColumnMode::Scalar(original, _) = &spec.mode else {
            raise(Error::NoBlindIndex {
                table: &table_name,
                column,
            })
        };
        // The canonical text of the type without domains is the same, and no domain's
        // CHECK (its owner's code) runs for whoever looks a value up.
        let reader = original.without_domains(&sql::ident(column), &table_name);
        let text = reader
            .as_ref()
            .unwrap_or(original)
            .canonical_text(&spec.name, utf8);
        blind_index::compute(&spec.binding, bidx, &text)
    }
}

thread_local! {
    /// The registry row `migrating_blind_index` last used, until the table's next relcache
    /// invalidation: an index build calls it for every row not migrated yet.
    static MIGRATING: RefCell<Option<Rc<registry::ProtectedColumn>>> = const { RefCell::new(None) };
}

/// The blind index of `value`, still in the plaintext column of `table`.`column` while it
/// migrates online: what its second unique index compares with the sealed rows' blind
/// index. Read from the registry, not the trigger (a restore builds indexes before it makes
/// triggers); for a role that may seal the class and write the table, which tests a guess
/// by writing it anyway.
pub fn migrating_blind_index_of(
    table: pg_sys::Oid,
    column: &str,
    value: pg_sys::Datum,
    value_type: pg_sys::Oid,
) -> [u8; BLIND_INDEX_LEN] {
    let cached = MIGRATING.with(|m| {
        m.borrow()
            .clone()
            .filter(|p| p.tbl == table && p.col == column)
    });
    let p = cached.unwrap_or_else(|| {
        let p = Rc::new(registry::column(table, column).unwrap_or_else(|| {
            raise(Error::ColumnNotMigrating {
                table: &sql::relation_name(table),
                column,
            })
        }));
        MIGRATING.with(|m| m.replace(Some(p.clone())));
        p
    });
    let (Some(_), Some(key_version)) = (&p.plain_col, p.bidx_key_version) else {
        raise(Error::ColumnNotMigrating {
            table: &sql::relation_name(table),
            column,
        })
    };
    if value_type != p.original_type {
        raise(Error::MigratingValueOfOtherType {
            table: &sql::relation_name(table),
            column,
        });
    }
    privileges::require(Privilege::Seal, Some(value_class(&p.class)));
    // SAFETY: an ACL check of a relation OID for the current user; a relation that is gone
    // raises 42P01 through pgrx's guard.
    let writes = unsafe {
        pg_sys::pg_class_aclmask(
            table,
            crate::pg::unguarded::user_id(),
            (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE) as pg_sys::AclMode,
            pg_sys::AclMaskHow::ACLMASK_ANY,
        )
    };
    if writes == 0 {
        raise(Error::MayNotWriteTable {
            table: &sql::relation_name(table),
        });
    }
    let bidx = BlindIndex {
        column: 0,
        key_version: key_version as u32,
        normalization: p
            .bidx_normalize
            .as_deref()
            .and_then(Normalization::parse)
            .unwrap_or(Normalization::None),
    };
    // SAFETY: value is of the column's original type (value_type, checked above), as the
    // SQL function's anyelement argument passed it; the type's functions come from its
    // catalog row.
    let text = unsafe {
        OriginalType::of(p.original_type, p.original_typmod, || Lookup::PerCall).text_of(value)
    };
    blind_index::compute(&p.binding_id, &bidx, &text)
}
