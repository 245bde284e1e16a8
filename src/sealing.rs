//! `seal_pii(jsonb, class, context) -> bytea` and `open_pii(bytea, context) -> jsonb`.
//!
//! These are the hot path, so they are plain V1 C functions over raw datums: jsonb goes to
//! text with the server's own `JsonbToCString` and back with `jsonb_in`, with no serde
//! round trip, and the sealed bytes are written straight into the result varlena.

use std::cell::RefCell;

use akko_crypt_core::envelope::{seal_into, sealed_len, SealRequest, NONCE_LEN};
use akko_crypt_core::{Envelope, NoncePool};
use pgrx::fcinfo::{
    direct_function_call_as_datum, pg_arg_is_null, pg_getarg, pg_getarg_datum_raw, pg_return_null,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroize;

use crate::{classes, custody, errors};

extension_sql!(
    r#"
CREATE FUNCTION seal_pii(data jsonb, class text DEFAULT 'identity', context bytea DEFAULT NULL)
    RETURNS bytea LANGUAGE c VOLATILE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'akko_seal_pii';
COMMENT ON FUNCTION seal_pii(jsonb, text, bytea) IS
    'Seals a jsonb document with AES-256-GCM under the session key of the data class; a context, if given, must be given again to open it';

CREATE FUNCTION open_pii(sealed bytea, context bytea DEFAULT NULL)
    RETURNS jsonb LANGUAGE c STABLE PARALLEL RESTRICTED
    AS 'MODULE_PATHNAME', 'akko_open_pii';
COMMENT ON FUNCTION open_pii(bytea, bytea) IS
    'Opens a value sealed by seal_pii; fails unless this session holds the key and the same context is given';
"#,
    name = "sealing",
    requires = ["bootstrap"]
);

/// PostgreSQL's MaxAllocSize: the largest value one palloc, and so one datum, can hold.
const MAX_ALLOC_SIZE: usize = 0x3fff_ffff;

/// A nonce pool belongs to one process: a pool copied by fork() would hand the same nonces
/// to two backends, so it is rebuilt whenever the process id changes.
struct ProcessNonces {
    pid: i32,
    pool: NoncePool,
}

thread_local! {
    static NONCES: RefCell<Option<ProcessNonces>> = const { RefCell::new(None) };
}

fn fresh_nonce() -> [u8; NONCE_LEN] {
    let pid = unsafe { pg_sys::MyProcPid };
    NONCES
        .with(|n| {
            let mut n = n.borrow_mut();
            let nonces = match n.as_mut() {
                Some(nonces) if nonces.pid == pid => nonces,
                _ => n.insert(ProcessNonces {
                    pid,
                    pool: NoncePool::default(),
                }),
            };
            nonces.pool.take()
        })
        .unwrap_or_else(|_| errors::randomness_unavailable())
}

/// Postgres looks this up to learn that `akko_seal_pii` uses the V1 calling convention.
#[no_mangle]
pub extern "C" fn pg_finfo_akko_seal_pii() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

#[no_mangle]
pub extern "C" fn pg_finfo_akko_open_pii() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

unsafe fn bytes_mut<'a>(ptr: *mut std::ffi::c_char, len: usize) -> &'a mut [u8] {
    std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len)
}

/// Zeroes and frees a server-encoding buffer and, if encoding conversion made one, its copy.
unsafe fn wipe_and_free(
    original: *mut std::ffi::c_char,
    converted: *mut std::ffi::c_char,
    len: usize,
) {
    if converted != original {
        let converted_len = std::ffi::CStr::from_ptr(converted).to_bytes().len();
        bytes_mut(converted, converted_len).zeroize();
        pg_sys::pfree(converted.cast());
    }
    bytes_mut(original, len).zeroize();
    pg_sys::pfree(original.cast());
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_seal_pii(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    if pg_arg_is_null(fcinfo, 0) {
        return pg_return_null(fcinfo);
    }
    let class_name: &str = pg_getarg(fcinfo, 1).unwrap_or_else(|| errors::null_argument("class"));
    let class = classes::registered(class_name);
    let context: Option<&[u8]> = pg_getarg(fcinfo, 2);

    let jsonb = pg_sys::pg_detoast_datum(pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr())
        .cast::<pg_sys::Jsonb>();
    let text = pg_sys::makeStringInfo();
    pg_sys::JsonbToCString(
        text,
        &raw mut (*jsonb).root,
        pgrx::varlena::varsize_any(jsonb.cast()) as i32,
    );
    let text_len = (*text).len as usize;
    // Plaintext is UTF-8 JSON whatever the database encoding; a no-op in UTF-8 databases.
    let utf8 = pg_sys::pg_server_to_any((*text).data, (*text).len, pg_sys::pg_enc::PG_UTF8 as i32);
    let utf8_len = if utf8 == (*text).data {
        text_len
    } else {
        std::ffi::CStr::from_ptr(utf8).to_bytes().len()
    };

    let body_len = sealed_len(class, utf8_len);
    let total = body_len + pg_sys::VARHDRSZ;
    if total > MAX_ALLOC_SIZE {
        errors::value_too_large(total);
    }
    let request = SealRequest {
        class,
        key_version: custody::KEY_VERSION,
        context,
        nonce: fresh_nonce(),
    };
    let sealed = custody::with_class_key(class, request.key_version, |key| {
        let varlena = pg_sys::palloc(total).cast::<pg_sys::varlena>();
        pgrx::varlena::set_varsize_4b(varlena, total as i32);
        let body =
            std::slice::from_raw_parts_mut(varlena.cast::<u8>().add(pg_sys::VARHDRSZ), body_len);
        seal_into(
            key,
            &request,
            std::slice::from_raw_parts(utf8.cast::<u8>(), utf8_len),
            body,
        );
        varlena
    });
    wipe_and_free((*text).data, utf8, text_len);
    pg_sys::Datum::from(sealed)
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_pii(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let Some(sealed) = pg_getarg::<&[u8]>(fcinfo, 0) else {
        return pg_return_null(fcinfo);
    };
    let context: Option<&[u8]> = pg_getarg(fcinfo, 1);
    let envelope = Envelope::parse(sealed).unwrap_or_else(|e| errors::bad_envelope(e));
    envelope
        .check_context(context)
        .unwrap_or_else(|e| errors::open_failed(e));

    let len = envelope.plaintext_len();
    let plaintext = pg_sys::palloc(len + 1).cast::<std::ffi::c_char>();
    custody::with_class_key(envelope.class, envelope.key_version, |key| {
        envelope.open_into(key, context, bytes_mut(plaintext, len))
    })
    .unwrap_or_else(|e| errors::open_failed(e));
    *plaintext.add(len) = 0;

    // Verifies the UTF-8 (and converts it for non-UTF-8 databases) before jsonb_in parses it.
    let server_text =
        pg_sys::pg_any_to_server(plaintext, len as i32, pg_sys::pg_enc::PG_UTF8 as i32);
    let jsonb =
        direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(server_text))])
            .expect("jsonb_in never returns NULL for a non-NULL input");
    wipe_and_free(plaintext, server_text, len);
    jsonb
}
