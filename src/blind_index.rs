//! Blind indexes: a protected column's companion `<column>_bidx` holds HMAC-SHA256 of the
//! value's normalised text under a key of its own, so that equality lookups and UNIQUE
//! constraints work on sealed values. The key is derived per column (from its binding id)
//! from a data key of the built-in class `blind_index`, never from the class that seals the
//! values: rotating that class leaves the index valid.

use akko_crypt_core::column::{BindingId, BlindIndexKey, BLIND_INDEX_LEN};
use akko_crypt_core::ClassName;
use pgrx::fcinfo::pg_getarg_datum_raw;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::datum::{arg_bytes, bytea_datum};
use crate::protect_trigger::{self, BlindIndex};
use crate::{custody, errors, keyring};

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
    pg_finfo_akko_migrating_blind_index,
    pg_finfo_blind_index_key_version_wrapper
);

/// The data class whose keys blind index keys (and subject lookup keys) are derived from.
/// Nothing is ever sealed or opened under it.
pub const CLASS: &str = "blind_index";

pub fn class() -> ClassName<'static> {
    ClassName::parse(CLASS).expect("a valid class name")
}

/// The 16-byte blind index of `text` for the column bound to `binding`; the column's key
/// is derived on first use in the session and cached with the session's other keys.
pub fn compute(binding: &BindingId, bidx: &BlindIndex, text: &str) -> [u8; BLIND_INDEX_LEN] {
    let generation = keyring::generation();
    let digest = |key: &BlindIndexKey| key.compute(bidx.normalization, text);
    match custody::with_cached_blind_index_key(bidx.key_version, binding, generation, digest) {
        Ok(digest) => digest,
        Err(digest) => {
            let key = keyring::with_material(class(), bidx.key_version, |material| {
                material.blind_index_key(binding)
            });
            let result = digest(&key);
            custody::remember_blind_index_key(bidx.key_version, binding, generation, key);
            result
        }
    }
}

/// What releases before 0.3.0 declared as `akko_crypt.blind_index_key_version()`, EXECUTE to
/// PUBLIC, which created the keyring's first key under the caller's root. Their install
/// scripts still name the symbol; the function itself is gone.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn blind_index_key_version_wrapper(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    errors::removed_function("akko_crypt.blind_index_key_version()")
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_blind_index(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let value = arg_bytes(fcinfo, 0).unwrap_or_default();
    let table = pg_sys::Oid::from_datum(pg_getarg_datum_raw(fcinfo, 1), false)
        .unwrap_or_else(|| errors::null_argument("tbl"));
    let column = pg_getarg_datum_raw(fcinfo, 2).cast_mut_ptr::<pg_sys::NameData>();
    let column = std::ffi::CStr::from_ptr((*column).data.as_ptr()).to_string_lossy();
    // The value arrives in the server encoding; blind indexes are computed over UTF-8.
    let utf8 = crate::sealing::text_as_utf8(value, None);
    let digest = protect_trigger::blind_index_of(table, &column, &utf8);
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
        .unwrap_or_else(|| errors::null_argument("tbl"));
    let column = pg_getarg_datum_raw(fcinfo, 1).cast_mut_ptr::<pg_sys::NameData>();
    let column = std::ffi::CStr::from_ptr((*column).data.as_ptr()).to_string_lossy();
    let value_type = pg_sys::get_fn_expr_argtype((*fcinfo).flinfo, 2);
    let digest = protect_trigger::migrating_blind_index_of(
        table,
        &column,
        pg_getarg_datum_raw(fcinfo, 2),
        value_type,
    );
    bytea_datum(&digest)
}
