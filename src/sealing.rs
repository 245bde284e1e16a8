//! `seal_pii(jsonb, class, context) -> bytea` and `open_pii(bytea, context) -> jsonb`.
//!
//! These are the hot path, so they are plain V1 C functions over raw datums: jsonb goes to
//! text with the server's own `JsonbToCString` and back with `jsonb_in`, with no serde
//! round trip, and the sealed bytes are written straight into the result varlena.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicU8, Ordering};

use akko_crypt_core::envelope::{seal, seal_into, SealRequest, SubjectId, NONCE_LEN};
use akko_crypt_core::{ClassName, ClassNameError, Envelope, NoncePool, OpenError};
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::varlena::{
    set_varsize_4b, varatt_is_1b_e, varatt_is_4b_c, varatt_is_4b_u, varlena_to_byte_slice,
    varsize_any,
};
use zeroize::{Zeroize, Zeroizing};

use crate::{classes, errors, keyring};

// COST 100 (the default C function cost is 1): each call converts a whole document and
// encrypts or decrypts it. Costed at 1, the planner keeps large scans serial and evaluates
// seal/open before cheaper conditions of the same WHERE clause.
extension_sql!(
    r#"
CREATE FUNCTION seal_pii(data jsonb, class text DEFAULT 'identity', context bytea DEFAULT NULL,
                         subject text DEFAULT NULL)
    RETURNS bytea LANGUAGE c VOLATILE PARALLEL SAFE COST 100
    AS 'MODULE_PATHNAME', 'akko_seal_pii';
COMMENT ON FUNCTION seal_pii(jsonb, text, bytea, text) IS
    'Seals a jsonb document with AES-256-GCM under the active key of the data class (or the subject''s key, if one is named); a context, if given, must be given again to open it';

CREATE FUNCTION open_pii(sealed bytea, context bytea DEFAULT NULL)
    RETURNS jsonb LANGUAGE c STABLE PARALLEL SAFE COST 100
    AS 'MODULE_PATHNAME', 'akko_open_pii';
COMMENT ON FUNCTION open_pii(bytea, bytea) IS
    'Opens a value sealed by seal_pii; fails unless this session holds the key and the same context is given';

REVOKE ALL ON FUNCTION seal_pii(jsonb, text, bytea, text), open_pii(bytea, bytea) FROM PUBLIC;
"#,
    name = "sealing",
    requires = ["keyring"]
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

v1_function_info!(pg_finfo_akko_seal_pii, pg_finfo_akko_open_pii);

extern "C-unwind" {
    // The server's own symbol: pgrx's `pg_sys::jsonb_in` is a Rust wrapper, which
    // DirectFunctionCall cannot take.
    #[link_name = "jsonb_in"]
    pub fn server_jsonb_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// A backend's database, and so its encoding, never changes; read once per backend (a
/// thread-local would cost a TLS lookup on every value). Only functions called in a
/// connected backend read it, never the postmaster, so no forked child inherits a value.
/// 0: not read yet, 1: UTF-8, 2: other.
static DATABASE_IS_UTF8: AtomicU8 = AtomicU8::new(0);

pub fn database_is_utf8() -> bool {
    match DATABASE_IS_UTF8.load(Ordering::Relaxed) {
        0 => {
            let utf8 = unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 };
            DATABASE_IS_UTF8.store(if utf8 { 1 } else { 2 }, Ordering::Relaxed);
            utf8
        }
        known => known == 1,
    }
}

// Every pg_sys call pays for pgrx's error barrier, so the argument readers below read
// plain inline values (by far the common case) in place and call the detoaster only for
// compressed or out-of-line ones.

/// The bytes of a text or bytea argument, or None for NULL.
pub unsafe fn arg_bytes<'a>(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<&'a [u8]> {
    if pg_arg_is_null(fcinfo, n) {
        return None;
    }
    Some(datum_bytes(pg_getarg_datum_raw(fcinfo, n)))
}

/// The bytes of a text or bytea datum.
pub unsafe fn datum_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    let mut value = datum.cast_mut_ptr::<pg_sys::varlena>();
    if varatt_is_1b_e(value) || varatt_is_4b_c(value) {
        value = pg_sys::pg_detoast_datum_packed(value);
    }
    varlena_to_byte_slice(value)
}

/// A jsonb argument as the 4-byte-header, uncompressed value that jsonb code expects.
pub unsafe fn arg_jsonb(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> *mut pg_sys::Jsonb {
    let mut value = pg_getarg_datum_raw(fcinfo, n).cast_mut_ptr::<pg_sys::varlena>();
    if !varatt_is_4b_u(value) {
        value = pg_sys::pg_detoast_datum(value);
    }
    value.cast()
}

pub unsafe fn c_bytes_mut<'a>(ptr: *mut c_char) -> &'a mut [u8] {
    let len = CStr::from_ptr(ptr).to_bytes().len();
    std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len)
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_seal_pii(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    if pg_arg_is_null(fcinfo, 0) {
        return pg_return_null(fcinfo);
    }
    let class_name = arg_bytes(fcinfo, 1).unwrap_or_else(|| errors::null_argument("class"));
    let class_name = std::str::from_utf8(class_name)
        .unwrap_or_else(|_| errors::invalid_class_name(ClassNameError::BadCharacter));
    let class = classes::parse(class_name);
    let context = arg_bytes(fcinfo, 2);
    let subject = arg_bytes(fcinfo, 3).map(keyring::subject_id);
    let key_version = keyring::active_version(class);

    let (plaintext, text) = jsonb_to_utf8(arg_jsonb(fcinfo, 0));
    let sealed = seal_to_varlena(class, key_version, subject.as_ref(), context, plaintext);
    // Plaintext copies die with the call's memory context; wipe them first.
    wipe_utf8(plaintext, text);
    pg_sys::Datum::from(sealed)
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_pii(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let Some(sealed) = arg_bytes(fcinfo, 0) else {
        return pg_return_null(fcinfo);
    };
    let context = arg_bytes(fcinfo, 1);
    plaintext_to_jsonb(open_to_buffer(sealed, context))
}

/// The jsonb document an opened plaintext holds; wipes the plaintext.
pub unsafe fn plaintext_to_jsonb(plaintext: &mut [u8]) -> pg_sys::Datum {
    let len = plaintext.len();
    let buffer = plaintext.as_mut_ptr().cast::<c_char>();
    // jsonb_in trusts its input to be valid in the server encoding and NUL-free.
    let server_text = if database_is_utf8() {
        if std::str::from_utf8(plaintext).is_err() || plaintext.contains(&0) {
            plaintext.zeroize();
            errors::plaintext_not_utf8();
        }
        buffer
    } else {
        pg_sys::pg_any_to_server(buffer, len as i32, pg_sys::pg_enc::PG_UTF8 as i32)
    };
    let jsonb = pg_sys::DirectFunctionCall1Coll(
        Some(server_jsonb_in),
        pg_sys::InvalidOid,
        pg_sys::Datum::from(server_text),
    );
    plaintext.zeroize();
    if server_text != buffer {
        c_bytes_mut(server_text).zeroize();
    }
    jsonb
}

/// A jsonb document's text, converted to UTF-8; the caller wipes it (and the server-encoded
/// copy, if the second value differs from the first).
pub unsafe fn jsonb_to_utf8<'a>(jsonb: *mut pg_sys::Jsonb) -> (&'a mut [u8], *mut c_char) {
    let text = pg_sys::JsonbToCString(
        std::ptr::null_mut(),
        &raw mut (*jsonb).root,
        varsize_any(jsonb.cast()) as i32,
    );
    // The plaintext is UTF-8 JSON whatever the database encoding.
    (server_to_utf8(text), text)
}

/// A NUL-terminated text in the server encoding, as UTF-8: the text itself in a UTF-8
/// database, else a converted copy (which the caller wipes, with [`wipe_utf8`]).
pub unsafe fn server_to_utf8<'a>(text: *mut c_char) -> &'a mut [u8] {
    if database_is_utf8() {
        return c_bytes_mut(text);
    }
    let len = CStr::from_ptr(text).to_bytes().len() as i32;
    c_bytes_mut(pg_sys::pg_server_to_any(
        text,
        len,
        pg_sys::pg_enc::PG_UTF8 as i32,
    ))
}

/// Wipes what [`jsonb_to_utf8`] returned.
pub unsafe fn wipe_utf8(utf8: &mut [u8], server_text: *mut c_char) {
    let converted = utf8.as_mut_ptr().cast::<c_char>() != server_text;
    utf8.zeroize();
    if converted {
        c_bytes_mut(server_text).zeroize();
    }
}

/// Seals `plaintext` into a new bytea datum under `class` at `key_version`.
pub unsafe fn seal_to_varlena(
    class: ClassName<'_>,
    key_version: u32,
    subject: Option<&SubjectId>,
    context: Option<&[u8]>,
    plaintext: &[u8],
) -> *mut pg_sys::varlena {
    let request = SealRequest {
        class,
        key_version,
        subject,
        context,
        nonce: fresh_nonce(),
    };
    let body_len = request.sealed_len(plaintext.len());
    let total = body_len + pg_sys::VARHDRSZ;
    if total > MAX_ALLOC_SIZE {
        errors::value_too_large(total);
    }
    keyring::with_key(class, key_version, request.subject, |key| {
        let (varlena, body) = new_bytea(body_len);
        seal_into(key, &request, plaintext, body);
        varlena
    })
}

/// A palloc'd bytea of `len` bytes, and those bytes to fill.
pub unsafe fn new_bytea<'a>(len: usize) -> (*mut pg_sys::varlena, &'a mut [u8]) {
    let total = len + pg_sys::VARHDRSZ;
    let varlena = pg_sys::palloc(total).cast::<pg_sys::varlena>();
    set_varsize_4b(varlena, total as i32);
    let body = std::slice::from_raw_parts_mut(varlena.cast::<u8>().add(pg_sys::VARHDRSZ), len);
    (varlena, body)
}

/// Opens an envelope into a palloc'd buffer, NUL-terminated after the returned slice; the
/// caller wipes it. Raises the envelope's error if it does not open.
pub unsafe fn open_to_buffer<'a>(sealed: &[u8], context: Option<&[u8]>) -> &'a mut [u8] {
    let envelope = Envelope::parse(sealed).unwrap_or_else(|e| errors::bad_envelope(e));
    envelope
        .check_context(context)
        .unwrap_or_else(|e| errors::open_failed(e));
    let len = envelope.plaintext_len();
    let buffer = pg_sys::palloc(len + 1).cast::<u8>();
    let plaintext = std::slice::from_raw_parts_mut(buffer, len);
    keyring::with_key(
        envelope.class,
        envelope.key_version,
        envelope.subject,
        |key| envelope.open_into(key, context, plaintext),
    )
    .unwrap_or_else(|e| errors::open_failed(e));
    *buffer.add(len) = 0;
    plaintext
}

/// Seals the plaintext of `envelope` again under the active key version of its class, for
/// the same subject and bound to the same context. The plaintext exists only in a buffer
/// that is wiped on return.
pub fn reseal(envelope: &Envelope<'_>, context: Option<&[u8]>) -> Result<Vec<u8>, OpenError> {
    let mut plaintext = Zeroizing::new(vec![0u8; envelope.plaintext_len()]);
    keyring::with_key(
        envelope.class,
        envelope.key_version,
        envelope.subject,
        |key| envelope.open_into(key, context, &mut plaintext),
    )?;
    let request = SealRequest {
        class: envelope.class,
        key_version: keyring::active_version(envelope.class),
        subject: envelope.subject,
        context,
        nonce: fresh_nonce(),
    };
    Ok(keyring::with_key(
        request.class,
        request.key_version,
        request.subject,
        |key| seal(key, &request, &plaintext),
    ))
}
