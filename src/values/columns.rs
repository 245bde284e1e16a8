//! The SQL functions that protected columns and their decrypting views use: `open_value`
//! (a bytea-mode value as its original type), `open_text` (as its text), `open_pii(jsonb)`
//! (a jsonb-mode value, or any other jsonb unchanged), `envelope_from_text` and
//! `envelope_as_text` (a text-mode value's envelope) and `row_context` (what a row-bound
//! value is bound to).

use std::borrow::Cow;
use std::ffi::{c_char, CStr};

use akko_crypt_core::column::{
    envelope_in_text, jsonb_envelope, payload_text, row_context, text_envelope_into,
    text_envelope_len, BindingId,
};
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroizing;

use crate::errors::{self, raise, Error};
use crate::pg::datum::{arg_jsonb, bytea_datum, c_bytes_mut, datum_bytes, new_bytea, Args, Wiped};
use crate::pg::encoding::database_is_utf8;
use crate::pg::settings::with_settings;
use crate::pg::sql;
use crate::values::sealing::{open_to_buffer, plaintext_input, plaintext_to_jsonb};

extension_sql!(
    r#"
CREATE FUNCTION open_value(sealed bytea, context bytea, type_of anyelement)
    RETURNS anyelement LANGUAGE c STABLE PARALLEL SAFE COST 100
    AS 'MODULE_PATHNAME', 'akko_open_value';
COMMENT ON FUNCTION open_value(bytea, bytea, anyelement) IS
    'Opens a value of a protected bytea column as a value of the type of its third argument (NULL::date, say); a value that is not one raises an error that does not show it';

CREATE FUNCTION open_text(sealed bytea, context bytea DEFAULT NULL)
    RETURNS text LANGUAGE c STABLE PARALLEL SAFE COST 100
    AS 'MODULE_PATHNAME', 'akko_open_text';
COMMENT ON FUNCTION open_text(bytea, bytea) IS
    'Opens a value of a protected bytea column as the text of its original type';

CREATE FUNCTION open_pii(sealed jsonb, context bytea DEFAULT NULL)
    RETURNS jsonb LANGUAGE c STABLE PARALLEL SAFE COST 100
    AS 'MODULE_PATHNAME', 'akko_open_pii_jsonb';
COMMENT ON FUNCTION open_pii(jsonb, bytea) IS
    'Opens a value of a protected jsonb column ({"$akko": "..."}); any other jsonb is returned unchanged';

CREATE FUNCTION row_context(binding bytea, VARIADIC row_key "any")
    RETURNS bytea LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_row_context';
COMMENT ON FUNCTION row_context(bytea, "any") IS
    'The context that binds a protected column''s value to its row: the column''s binding id and the row''s primary key';

CREATE FUNCTION utf8_bytes(value text)
    RETURNS bytea LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_utf8_bytes';
COMMENT ON FUNCTION utf8_bytes(text) IS
    'The UTF-8 bytes of a text: how a decrypting view hands plaintext to the protect trigger';

CREATE FUNCTION envelope_from_text(sealed text)
    RETURNS bytea LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_envelope_from_text';
COMMENT ON FUNCTION envelope_from_text(text) IS
    'The envelope a text-mode column''s value ($akko:<base64>) holds, as bytea; what a decrypting view opens';

CREATE FUNCTION envelope_as_text(envelope bytea)
    RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_envelope_as_text';
COMMENT ON FUNCTION envelope_as_text(bytea) IS
    'An envelope as a text-mode column holds it: $akko:<base64>';

REVOKE ALL ON FUNCTION open_value(bytea, bytea, anyelement), open_text(bytea, bytea),
    open_pii(jsonb, bytea) FROM PUBLIC;
"#,
    name = "columns",
    requires = ["sealing"]
);

v1_function_info!(
    pg_finfo_akko_utf8_bytes,
    pg_finfo_akko_envelope_from_text,
    pg_finfo_akko_envelope_as_text,
    pg_finfo_akko_open_value,
    pg_finfo_akko_open_text,
    pg_finfo_akko_open_pii_jsonb,
    pg_finfo_akko_row_context
);

/// Settings under which a row's key is written out for its context, so that every session
/// binds to, and opens with, the same bytes (docs/FORMAT.md, "Row context").
const KEY_TEXT_SETTINGS: [(&CStr, &CStr); 6] = [
    (c"datestyle", c"ISO, YMD"),
    (c"intervalstyle", c"postgres"),
    (c"timezone", c"UTC"),
    (c"bytea_output", c"hex"),
    (c"extra_float_digits", c"1"),
    (c"lc_monetary", c"C"),
];

/// How a primary key column's value is written into a row context.
#[derive(Clone, Copy)]
pub struct KeyOutput {
    output: pg_sys::Oid,
    /// The type's text depends on a setting in KEY_TEXT_SETTINGS.
    settings_dependent: bool,
}

impl KeyOutput {
    pub unsafe fn of(type_oid: pg_sys::Oid) -> KeyOutput {
        let mut output = pg_sys::InvalidOid;
        let mut is_varlena = false;
        pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut is_varlena);
        KeyOutput {
            output,
            settings_dependent: settings_dependent(type_oid),
        }
    }

    /// The value's text for its row context.
    pub unsafe fn text(&self, value: pg_sys::Datum) -> Vec<u8> {
        let write = || {
            CStr::from_ptr(pg_sys::OidOutputFunctionCall(self.output, value))
                .to_bytes()
                .to_vec()
        };
        if self.settings_dependent {
            with_settings(&KEY_TEXT_SETTINGS, write)
        } else {
            write()
        }
    }
}

/// Whether a type's output depends on DateStyle, IntervalStyle, TimeZone, bytea_output,
/// extra_float_digits or lc_monetary: dates, times and intervals, money, bytea and floats,
/// or a domain, array or range of one. Composite types count as dependent.
unsafe fn settings_dependent(type_oid: pg_sys::Oid) -> bool {
    let base = pg_sys::getBaseType(type_oid);
    let element = pg_sys::get_element_type(base);
    if element != pg_sys::InvalidOid {
        return settings_dependent(element);
    }
    if pg_sys::type_is_range(base) {
        return settings_dependent(pg_sys::get_range_subtype(base));
    }
    let (mut category, mut preferred) = (0 as c_char, false);
    pg_sys::get_type_category_preferred(base, &mut category, &mut preferred);
    let category = category as u8;
    category == pg_sys::TYPCATEGORY_DATETIME
        || category == pg_sys::TYPCATEGORY_TIMESPAN
        || category == pg_sys::TYPCATEGORY_COMPOSITE
        || [
            pg_sys::MONEYOID,
            pg_sys::BYTEAOID,
            pg_sys::FLOAT4OID,
            pg_sys::FLOAT8OID,
        ]
        .contains(&base)
}

/// A binding id argument: the 16 bytes of a column's `binding_id`.
pub fn binding_id(bytes: &[u8]) -> BindingId {
    bytes
        .try_into()
        .unwrap_or_else(|_| raise(Error::BadBindingId { len: bytes.len() }))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_row_context(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let args = Args::new(fcinfo);
    let binding = binding_id(
        args.bytes(0)
            .unwrap_or_else(|| raise(Error::NullArgument { name: "binding" })),
    );
    let flinfo = (*fcinfo).flinfo;
    if pg_sys::get_fn_expr_variadic(flinfo) {
        raise(Error::RowContextNeedsSeparateKeys);
    }
    let nargs = (*fcinfo).nargs as usize;
    let parts: Vec<Vec<u8>> = (1..nargs)
        .map(|i| {
            if pg_arg_is_null(fcinfo, i) {
                raise(Error::NullArgument { name: "row_key" });
            }
            KeyOutput::of(pg_sys::get_fn_expr_argtype(flinfo, i as i32))
                .text(pg_getarg_datum_raw(fcinfo, i))
        })
        .collect();
    bytea_datum(&row_context(&binding, parts.iter().map(Vec::as_slice)))
}

/// What `convert_to(value, 'UTF8')` returns, without its per-call lookup of the encoding
/// by name: a decrypting view calls it for every protected value it writes.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_utf8_bytes(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let value = pg_getarg_datum_raw(fcinfo, 0);
    // text and bytea share one varlena layout: text that is UTF-8 already (every text of a
    // UTF-8 database, the ASCII text of any other) is returned as it came.
    if database_is_utf8() {
        return value;
    }
    let server = datum_bytes(value);
    let utf8 = pg_sys::pg_server_to_any(
        server.as_ptr().cast(),
        server.len() as i32,
        pg_sys::pg_enc::PG_UTF8 as i32,
    );
    if utf8.cast_const() == server.as_ptr().cast::<c_char>() {
        return value;
    }
    let converted = Wiped(c_bytes_mut(utf8));
    bytea_datum(&converted)
}

/// `envelope_from_text(text)`: the envelope in a text-mode value. A value without the
/// `$akko:` prefix is refused, never taken for an envelope: what a view opens is sealed.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_envelope_from_text(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    match envelope_in_text(datum_bytes(pg_getarg_datum_raw(fcinfo, 0))) {
        Some(Ok(envelope)) => bytea_datum(&envelope),
        Some(Err(_)) => raise(Error::BadTextEnvelopeValue),
        None => raise(Error::NotATextEnvelope),
    }
}

/// `envelope_as_text(bytea)`: `$akko:` and the envelope in base64. Ciphertext only, so
/// nothing to wipe; an envelope it does not hold is refused when it is written or opened.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_envelope_as_text(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    text_envelope_datum(datum_bytes(pg_getarg_datum_raw(fcinfo, 0)))
}

/// A text datum holding `envelope` as a text-mode column does, encoded straight into it.
pub unsafe fn text_envelope_datum(envelope: &[u8]) -> pg_sys::Datum {
    let (datum, text) = new_bytea(text_envelope_len(envelope.len()));
    text_envelope_into(envelope, text);
    pg_sys::Datum::from(datum)
}

/// The text an opened bytea-mode plaintext holds (a JSON string unescaped; any other JSON,
/// a json or jsonb value's document, as it is), NUL-terminated, in UTF-8. Wiped when it goes.
struct OpenedText<'a> {
    plaintext: Wiped<'a>,
    unescaped: Option<Zeroizing<Vec<u8>>>,
    /// Where the text starts in `plaintext` and how long it is, when it is read in place.
    in_place: (usize, usize),
}

impl<'a> OpenedText<'a> {
    /// `raw`: the plaintext is the text itself (a json or jsonb original type).
    fn of(plaintext: Wiped<'a>, raw: bool) -> OpenedText<'a> {
        let text = std::str::from_utf8(&plaintext).ok().and_then(|json| {
            if raw {
                Some(Cow::Borrowed(json))
            } else {
                payload_text(json)
            }
        });
        let (unescaped, in_place) = match text {
            Some(text) if !text.contains('\0') => match text {
                Cow::Borrowed(inner) => {
                    let start = inner.as_ptr() as usize - plaintext.as_ptr() as usize;
                    (None, (start, inner.len()))
                }
                Cow::Owned(owned) => {
                    let mut bytes = Zeroizing::new(owned.into_bytes());
                    bytes.push(0);
                    (Some(bytes), (0, 0))
                }
            },
            _ => raise(Error::PlaintextNotUtf8),
        };
        if unescaped.is_none() {
            // The byte after the text is its closing quote, or the NUL that ends the buffer.
            let (start, len) = in_place;
            if start + len < plaintext.len() {
                plaintext.0[start + len] = 0;
            }
        }
        OpenedText {
            plaintext,
            unescaped,
            in_place,
        }
    }

    /// The text, without its NUL.
    fn bytes(&self) -> &[u8] {
        match &self.unescaped {
            Some(bytes) => &bytes[..bytes.len() - 1],
            None => &self.plaintext[self.in_place.0..self.in_place.0 + self.in_place.1],
        }
    }

    fn as_c_ptr(&self) -> *const c_char {
        match &self.unescaped {
            Some(bytes) => bytes.as_ptr().cast(),
            None => self.plaintext[self.in_place.0..].as_ptr().cast(),
        }
    }
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_text(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let args = Args::new(fcinfo);
    let Some(sealed) = args.bytes(0) else {
        return pg_return_null(fcinfo);
    };
    let text = OpenedText::of(open_to_buffer(sealed, args.bytes(1)), false);
    text_datum_from_utf8(text.bytes())
}

/// A text datum in the server encoding from UTF-8 text; wipes the converted copy.
pub unsafe fn text_datum_from_utf8(utf8: &[u8]) -> pg_sys::Datum {
    let text = if database_is_utf8() {
        pg_sys::cstring_to_text_with_len(utf8.as_ptr().cast(), utf8.len() as i32)
    } else {
        let server = pg_sys::pg_any_to_server(
            utf8.as_ptr().cast(),
            utf8.len() as i32,
            pg_sys::pg_enc::PG_UTF8 as i32,
        );
        let len = CStr::from_ptr(server).to_bytes().len();
        let text = pg_sys::cstring_to_text_with_len(server, len as i32);
        if server.cast_const() != utf8.as_ptr().cast::<c_char>() {
            drop(Wiped(c_bytes_mut(server)));
        }
        text
    };
    pg_sys::Datum::from(text)
}

/// The input function of the type `open_value` returns, looked up once per call site.
struct TargetType {
    oid: pg_sys::Oid,
    input: pg_sys::FmgrInfo,
    io_param: pg_sys::Oid,
    /// json or jsonb: the plaintext is the document itself.
    raw: bool,
    /// It holds a composite type, which may gain a domain attribute while the query runs.
    recheck_domains: bool,
}

unsafe fn target_type(fcinfo: pg_sys::FunctionCallInfo) -> *mut TargetType {
    let flinfo = (*fcinfo).flinfo;
    let oid = pg_sys::get_fn_expr_argtype(flinfo, 2);
    let cached = (*flinfo).fn_extra.cast::<TargetType>();
    if !cached.is_null() && (*cached).oid == oid {
        return cached;
    }
    if oid == pg_sys::InvalidOid {
        raise(Error::OpenValueNeedsType);
    }
    // The views open a domain as its base type; nobody's read runs a domain's CHECK.
    if sql::has_domain(oid) {
        raise(Error::OpenValueAsDomain {
            type_name: &sql::type_display(oid, -1),
        });
    }
    let target =
        pg_sys::MemoryContextAllocZero((*flinfo).fn_mcxt, std::mem::size_of::<TargetType>())
            .cast::<TargetType>();
    let (mut input, mut io_param) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    pg_sys::getTypeInputInfo(oid, &mut input, &mut io_param);
    pg_sys::fmgr_info_cxt(input, &mut (*target).input, (*flinfo).fn_mcxt);
    (*target).oid = oid;
    (*target).io_param = io_param;
    (*target).raw = oid == pg_sys::JSONOID || oid == pg_sys::JSONBOID;
    (*target).recheck_domains = sql::has_composite(oid);
    (*flinfo).fn_extra = target.cast();
    target
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_value(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let args = Args::new(fcinfo);
    let Some(sealed) = args.bytes(0) else {
        return pg_return_null(fcinfo);
    };
    let target = target_type(fcinfo);
    let text = OpenedText::of(open_to_buffer(sealed, args.bytes(1)), (*target).raw);
    if (*target).oid == pg_sys::TEXTOID {
        return text_datum_from_utf8(text.bytes());
    }
    let converted = if database_is_utf8() {
        None
    } else {
        let bytes = text.bytes();
        let server = pg_sys::pg_any_to_server(
            bytes.as_ptr().cast(),
            bytes.len() as i32,
            pg_sys::pg_enc::PG_UTF8 as i32,
        );
        (server.cast_const() != bytes.as_ptr().cast()).then(|| Wiped(c_bytes_mut(server)))
    };
    let input = converted
        .as_ref()
        .map_or(text.as_c_ptr(), |c| c.as_ptr().cast());
    // Checked again just before the input function reads the type's attributes: another
    // transaction's ALTER TYPE waits for the lock the first check took, but this one's own
    // (between two calls in a PL/pgSQL loop) does not.
    if (*target).recheck_domains && sql::has_domain((*target).oid) {
        raise(Error::OpenValueAsDomain {
            type_name: &sql::type_display((*target).oid, -1),
        });
    }
    plaintext_input(
        || {
            pg_sys::InputFunctionCall(
                &mut (*target).input,
                input.cast_mut(),
                (*target).io_param,
                -1,
            )
        },
        |code| {
            raise(Error::ProtectedValueUnreadable {
                type_name: &sql::type_display((*target).oid, -1),
                sqlstate: errors::sqlstate_of(code),
            })
        },
    )
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_pii_jsonb(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    if pg_arg_is_null(fcinfo, 0) {
        return pg_return_null(fcinfo);
    }
    let jsonb = arg_jsonb(fcinfo, 0);
    let Some(envelope) = jsonb_envelope_of(jsonb) else {
        return pg_getarg_datum_raw(fcinfo, 0);
    };
    plaintext_to_jsonb(open_to_buffer(&envelope, Args::new(fcinfo).bytes(1)))
}

/// The envelope a jsonb-mode value holds, or None for any other document (whose text,
/// plaintext, is wiped).
pub unsafe fn jsonb_envelope_of(jsonb: *mut pg_sys::Jsonb) -> Option<Vec<u8>> {
    // Only an object of one pair can hold an envelope: skip the text of anything else.
    let root = &raw mut (*jsonb).root;
    if (*root).header & pg_sys::JB_FOBJECT == 0 || (*root).header & pg_sys::JB_CMASK != 1 {
        return None;
    }
    let text = pg_sys::JsonbToCString(
        std::ptr::null_mut(),
        root,
        pgrx::varlena::varsize_any(jsonb.cast()) as i32,
    );
    let bytes = Wiped(c_bytes_mut(text));
    match std::str::from_utf8(&bytes).ok().and_then(jsonb_envelope) {
        Some(Ok(envelope)) => Some(envelope),
        Some(Err(_)) => raise(Error::BadJsonbEnvelope),
        None => None,
    }
}
