//! `seal_pii(jsonb, class, context) -> bytea` and `open_pii(bytea, context) -> jsonb`, and
//! the two operations every other path goes through: sealing a payload and opening an
//! envelope, each after checking that the calling role may do so for the class.
//!
//! These are the hot path, so they are plain V1 C functions over raw datums: jsonb goes to
//! text with the server's own `JsonbToCString` and back with `jsonb_in`, with no serde
//! round trip, and the sealed bytes are written straight into the result varlena.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::AssertUnwindSafe;

use akko_crypt_core::envelope::{seal, seal_written_into, SealRequest, SubjectId, NONCE_LEN};
use akko_crypt_core::{ClassName, ClassNameError, Envelope, NoncePool, OpenError};
use pgrx::fcinfo::{pg_arg_is_null, pg_return_null};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::varlena::varsize_any;
use zeroize::Zeroizing;

use crate::errors::{raise, Error};
use crate::pg::datum::{arg_jsonb, c_bytes_mut, new_bytea, Args, Wiped};
use crate::pg::encoding::{database_is_sql_ascii, database_is_utf8};
use crate::privileges::{self, Privilege};
use crate::{keys::classes, keys::keyring};

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
    'Opens a value sealed by seal_pii; fails unless this session holds the key, its role may open the class, and the same context is given';

REVOKE ALL ON FUNCTION seal_pii(jsonb, text, bytea, text), open_pii(bytea, bytea) FROM PUBLIC;
"#,
    name = "sealing",
    requires = ["keyring", "privileges"]
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
    // SAFETY: MyProcPid is set at backend start (and again in a forked child), read on the
    // backend's only thread.
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
        .unwrap_or_else(|_| raise(Error::RandomnessUnavailable))
}

v1_function_info!(pg_finfo_akko_seal_pii, pg_finfo_akko_open_pii);

extern "C-unwind" {
    // The server's own symbol: pgrx's `pg_sys::jsonb_in` is a Rust wrapper, which
    // DirectFunctionCall cannot take.
    #[link_name = "jsonb_in"]
    pub fn server_jsonb_in(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum;
}

/// A class that values may be sealed and opened under: valid, and not `blind_index`, whose
/// keys only key blind indexes and subject lookups.
pub fn value_class(name: &str) -> ClassName<'_> {
    let class = classes::parse(name);
    if class.as_str() == classes::BLIND_INDEX {
        raise(Error::ReservedClass);
    }
    class
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_seal_pii(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    if pg_arg_is_null(fcinfo, 0) {
        return pg_return_null(fcinfo);
    }
    let args = Args::new(fcinfo);
    let class_name = args
        .bytes(1)
        .unwrap_or_else(|| raise(Error::NullArgument { name: "class" }));
    let class_name = std::str::from_utf8(class_name).unwrap_or_else(|_| {
        raise(Error::InvalidClassName {
            error: ClassNameError::BadCharacter,
        })
    });
    let class = value_class(class_name);
    privileges::require(Privilege::Seal, Some(class));
    let context = args.bytes(2);
    let subject = args.bytes(3).map(crate::keys::subjects::subject_id);
    let text = JsonText::of(arg_jsonb(fcinfo, 0));
    let sealed = seal_to_varlena(class, subject.as_ref(), context, text.utf8());
    pg_sys::Datum::from(sealed)
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_pii(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let args = Args::new(fcinfo);
    let Some(sealed) = args.bytes(0) else {
        return pg_return_null(fcinfo);
    };
    plaintext_to_jsonb(open_to_buffer(sealed, args.bytes(1)))
}

/// Runs an input function on plaintext; its own error would quote the plaintext (jsonb's
/// DETAIL shows the token it choked on), so only `refused`, which names no value, is raised.
pub unsafe fn plaintext_input(
    input: impl FnOnce() -> pg_sys::Datum,
    refused: impl FnOnce(PgSqlErrorCode) -> pg_sys::Datum,
) -> pg_sys::Datum {
    // Either closure only raises or returns; nothing is left half-changed to be observed.
    let refused = AssertUnwindSafe(RefCell::new(Some(refused)));
    PgTryBuilder::new(AssertUnwindSafe(input))
        .catch_others(move |error| match error {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
                let refused = refused.borrow_mut().take().expect("one error is caught");
                refused(report.sql_error_code())
            }
            other => other.rethrow(),
        })
        .execute()
}

/// The jsonb document an opened plaintext holds; the plaintext is wiped.
pub unsafe fn plaintext_to_jsonb(plaintext: Wiped<'_>) -> pg_sys::Datum {
    let len = plaintext.len();
    let buffer = plaintext.as_ptr().cast_mut().cast::<c_char>();
    // jsonb_in trusts its input to be valid in the server encoding and NUL-free.
    let converted = if database_is_utf8() {
        if std::str::from_utf8(&plaintext).is_err() || plaintext.contains(&0) {
            raise(Error::PlaintextNotUtf8);
        }
        None
    } else {
        let server = pg_sys::pg_any_to_server(buffer, len as i32, pg_sys::pg_enc::PG_UTF8 as i32);
        (server != buffer).then(|| Wiped(c_bytes_mut(server)))
    };
    let server_text = converted
        .as_ref()
        .map_or(buffer, |c| c.as_ptr().cast_mut().cast());
    plaintext_input(
        || {
            pg_sys::DirectFunctionCall1Coll(
                Some(server_jsonb_in),
                pg_sys::InvalidOid,
                pg_sys::Datum::from(server_text),
            )
        },
        |_| raise(Error::PlaintextNotJson),
    )
}

/// A jsonb document's text, in UTF-8: what is sealed. Both it and the server-encoded text
/// it was converted from (if the database is not UTF-8) are wiped when it goes.
pub struct JsonText<'a> {
    utf8: Wiped<'a>,
    _server: Option<Wiped<'a>>,
}

impl<'a> JsonText<'a> {
    pub unsafe fn of(jsonb: *mut pg_sys::Jsonb) -> JsonText<'a> {
        let text = pg_sys::JsonbToCString(
            std::ptr::null_mut(),
            &raw mut (*jsonb).root,
            varsize_any(jsonb.cast()) as i32,
        );
        ServerText::wrap(text).into_json_text()
    }

    pub fn utf8(&self) -> &[u8] {
        &self.utf8
    }
}

/// A text datum's bytes as UTF-8: in place in a UTF-8 (or SQL_ASCII) database, else
/// converted into a copy that is wiped.
pub enum Utf8Text<'a> {
    InPlace(&'a str),
    Converted(Zeroizing<String>),
}

impl std::ops::Deref for Utf8Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Utf8Text::InPlace(text) => text,
            Utf8Text::Converted(text) => text,
        }
    }
}

/// The UTF-8 form of a text datum's bytes, in the server encoding, written to protected
/// column `column` or given to a function. Text that is not UTF-8 in a SQL_ASCII database,
/// or has no UTF-8 form, is refused without showing it: PostgreSQL's own conversion error
/// quotes the bytes.
pub unsafe fn text_as_utf8<'a>(bytes: &'a [u8], column: Option<&str>) -> Utf8Text<'a> {
    fn refused(column: Option<&str>) -> ! {
        match column {
            Some(column) => raise(Error::ProtectedTextNotUtf8 { column }),
            None => raise(Error::ValueNotUtf8),
        }
    }
    if database_is_utf8() || database_is_sql_ascii() {
        return match std::str::from_utf8(bytes) {
            Ok(text) => Utf8Text::InPlace(text),
            Err(_) => refused(column),
        };
    }
    let copy = pg_sys::palloc(bytes.len() + 1).cast::<u8>();
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), copy, bytes.len());
    *copy.add(bytes.len()) = 0;
    let server = Wiped(std::slice::from_raw_parts_mut(copy, bytes.len()));
    let utf8 = plaintext_input(
        || {
            pg_sys::Datum::from(pg_sys::pg_server_to_any(
                copy.cast(),
                bytes.len() as i32,
                pg_sys::pg_enc::PG_UTF8 as i32,
            ))
        },
        |_| refused(column),
    )
    .cast_mut_ptr::<c_char>();
    let converted = if utf8 == copy.cast() {
        None
    } else {
        Some(Wiped(c_bytes_mut(utf8)))
    };
    let text = converted.as_deref().unwrap_or(&server);
    Utf8Text::Converted(Zeroizing::new(String::from_utf8_lossy(text).into_owned()))
}

/// A NUL-terminated text in the server encoding that PostgreSQL returned (an output
/// function's result), and its UTF-8 form; both are wiped when it goes.
pub struct ServerText<'a> {
    utf8: Wiped<'a>,
    server: Option<Wiped<'a>>,
}

impl<'a> ServerText<'a> {
    /// Text with no UTF-8 form (bytes that are not UTF-8 in a SQL_ASCII database) is
    /// refused without showing it: PostgreSQL's own conversion error quotes the bytes.
    pub unsafe fn wrap(text: *mut c_char) -> ServerText<'a> {
        let server = Wiped(c_bytes_mut(text));
        let utf8 = database_is_utf8();
        if utf8 || database_is_sql_ascii() {
            if !utf8 && std::str::from_utf8(&server).is_err() {
                raise(Error::ValueNotUtf8);
            }
            return ServerText {
                utf8: server,
                server: None,
            };
        }
        let len = server.len() as i32;
        let utf8 = plaintext_input(
            || {
                let utf8 = pg_sys::pg_server_to_any(text, len, pg_sys::pg_enc::PG_UTF8 as i32);
                pg_sys::Datum::from(utf8)
            },
            |_| raise(Error::ValueNotUtf8),
        )
        .cast_mut_ptr::<c_char>();
        if utf8 == text {
            return ServerText {
                utf8: server,
                server: None,
            };
        }
        ServerText {
            server: Some(server),
            utf8: Wiped(c_bytes_mut(utf8)),
        }
    }

    pub fn utf8(&self) -> &[u8] {
        &self.utf8
    }

    fn into_json_text(self) -> JsonText<'a> {
        JsonText {
            utf8: self.utf8,
            _server: self.server,
        }
    }
}

/// Seals `plaintext` into a new bytea datum under the active key version of `class` (or
/// the subject's key). The caller has checked that its role may seal the class.
pub unsafe fn seal_to_varlena(
    class: ClassName<'_>,
    subject: Option<&SubjectId>,
    context: Option<&[u8]>,
    plaintext: &[u8],
) -> *mut pg_sys::varlena {
    let write = |out: &mut [u8]| out.copy_from_slice(plaintext);
    seal_written_to_varlena(class, subject, context, plaintext.len(), write)
}

/// As `seal_to_varlena`, for a plaintext of `len` bytes that `write` puts straight where
/// it is encrypted in place, in the new datum.
pub unsafe fn seal_written_to_varlena(
    class: ClassName<'_>,
    subject: Option<&SubjectId>,
    context: Option<&[u8]>,
    len: usize,
    write: impl FnOnce(&mut [u8]),
) -> *mut pg_sys::varlena {
    let key_version = keyring::active_version(class);
    keyring::with_entry(class, key_version, subject, |entry| {
        let (subkey, key) = entry.sealing_key();
        let request = SealRequest {
            class,
            key_version,
            subject,
            subkey,
            context,
            nonce: fresh_nonce(),
        };
        let body_len = request.sealed_len(len);
        if body_len + pg_sys::VARHDRSZ > MAX_ALLOC_SIZE {
            raise(Error::ValueTooLarge {
                len: body_len + pg_sys::VARHDRSZ,
            });
        }
        let (varlena, body) = new_bytea(body_len);
        seal_written_into(key, &request, len, write, body);
        varlena
    })
}

/// Parses an envelope that is to be opened, and checks that the calling role may open its
/// class (before any key is fetched: a role without the right unlocks nothing).
fn envelope_to_open<'a>(sealed: &'a [u8], context: Option<&[u8]>) -> Envelope<'a> {
    let envelope =
        Envelope::parse(sealed).unwrap_or_else(|e| raise(Error::BadEnvelope { error: e }));
    if envelope.class.as_str() == classes::BLIND_INDEX {
        raise(Error::ReservedClass);
    }
    privileges::require(Privilege::Open, Some(envelope.class));
    envelope
        .check_context(context)
        .unwrap_or_else(|e| raise(Error::OpenFailed { error: e }));
    envelope
}

/// Opens an envelope into a palloc'd buffer, NUL-terminated after the returned slice, which
/// is wiped when the guard goes. Raises the envelope's error if it does not open, and 42501
/// if the calling role may not open its class.
///
/// # Safety
/// The current memory context, where the buffer is palloc'd, lives as long as `sealed`: the
/// plaintext is kept no longer than the envelope of the same call or tuple.
pub unsafe fn open_to_buffer<'a>(sealed: &'a [u8], context: Option<&[u8]>) -> Wiped<'a> {
    open_parsed(&envelope_to_open(sealed, context), context)
}

/// Opens an envelope that this backend's trigger sealed in the current command from the
/// plaintext the writer gave (see `trigger::JustSealed`): the writer had the
/// plaintext already, so no right to open is asked. Into a buffer as `open_to_buffer`'s.
pub unsafe fn open_just_sealed<'a>(sealed: &[u8], context: Option<&[u8]>) -> Wiped<'a> {
    let envelope =
        Envelope::parse(sealed).unwrap_or_else(|e| raise(Error::BadEnvelope { error: e }));
    envelope
        .check_context(context)
        .unwrap_or_else(|e| raise(Error::OpenFailed { error: e }));
    open_parsed(&envelope, context)
}

unsafe fn open_parsed<'a>(envelope: &Envelope<'_>, context: Option<&[u8]>) -> Wiped<'a> {
    let len = envelope.plaintext_len();
    let buffer = pg_sys::palloc(len + 1).cast::<u8>();
    *buffer.add(len) = 0;
    let plaintext = Wiped(std::slice::from_raw_parts_mut(buffer, len));
    open_into(envelope, context, plaintext.0)
        .unwrap_or_else(|e| raise(Error::OpenFailed { error: e }));
    plaintext
}

fn open_into(
    envelope: &Envelope<'_>,
    context: Option<&[u8]>,
    out: &mut [u8],
) -> Result<(), OpenError> {
    keyring::with_entry(
        envelope.class,
        envelope.key_version,
        envelope.subject,
        |entry| envelope.open_into(entry.opening_key(envelope), context, out),
    )
}

/// Seals the plaintext of `envelope` again under the active key version of its class, for
/// the same subject and bound to the same context, in the current format. The plaintext
/// exists only in a buffer that is wiped on return. Needs the rights to open and to seal
/// the class.
pub fn reseal(envelope: &Envelope<'_>, context: Option<&[u8]>) -> Result<Vec<u8>, OpenError> {
    privileges::require(Privilege::Open, Some(envelope.class));
    privileges::require(Privilege::Seal, Some(envelope.class));
    let mut plaintext = Zeroizing::new(vec![0u8; envelope.plaintext_len()]);
    open_into(envelope, context, &mut plaintext)?;
    let key_version = keyring::active_version(envelope.class);
    Ok(keyring::with_entry(
        envelope.class,
        key_version,
        envelope.subject,
        |entry| {
            let (subkey, key) = entry.sealing_key();
            let request = SealRequest {
                class: envelope.class,
                key_version,
                subject: envelope.subject,
                subkey,
                context,
                nonce: fresh_nonce(),
            };
            seal(key, &request, &plaintext)
        },
    ))
}
