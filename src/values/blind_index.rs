//! Blind indexes: a protected column's companion `<column>_bidx` holds HMAC-SHA256 of the
//! value's normalised text under a key of its own, so that equality lookups and UNIQUE
//! constraints work on sealed values. The key is derived per column (from its binding id)
//! from a data key of the built-in class `blind_index`, never from the class that seals the
//! values: rotating that class leaves the index valid.

use akko_crypt_core::column::{BindingId, BlindIndexKey, Normalization, BLIND_INDEX_LEN};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{raise, Error};
use crate::keys::{classes, custody, keyring};

v1_function_info!(pg_finfo_blind_index_key_version_wrapper);

/// A column's blind index, as its table's protection gives it.
pub struct BlindIndex {
    /// Index of the `<column>_bidx` column in the row.
    pub column: usize,
    pub key_version: u32,
    pub normalization: Normalization,
}

/// The 16-byte blind index of `text` for the column bound to `binding`; the column's key
/// is derived on first use in the session and cached with the session's other keys.
pub fn compute(binding: &BindingId, bidx: &BlindIndex, text: &str) -> [u8; BLIND_INDEX_LEN] {
    let generation = crate::extension::generation();
    let cached_as = (bidx.key_version, *binding);
    let digest = |key: &mut BlindIndexKey| key.compute(bidx.normalization, text);
    match custody::with_cached(generation, &cached_as, digest) {
        Ok(digest) => digest,
        Err(digest) => {
            let mut key =
                keyring::with_material(classes::blind_index(), bidx.key_version, |material| {
                    material.blind_index_key(binding)
                });
            let result = digest(&mut key);
            custody::remember(generation, cached_as, key);
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
    raise(Error::RemovedFunction {
        name: "akko_crypt.blind_index_key_version()",
    })
}
