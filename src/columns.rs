//! The SQL functions that protected columns and their decrypting views use: `open_text`
//! (a bytea-mode value as its text), `open_pii(jsonb)` (a jsonb-mode value, or any other
//! jsonb unchanged) and `row_context` (what a row-bound value is bound to).

use std::borrow::Cow;
use std::ffi::{c_char, CStr};

use akko_crypt_core::column::{jsonb_envelope, payload_text, row_context, BindingId};
use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use crate::errors;
use crate::sealing::{
    arg_bytes, arg_jsonb, c_bytes_mut, database_is_utf8, datum_bytes, new_bytea, open_to_buffer,
    plaintext_to_jsonb,
};

extension_sql!(
    r#"
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

REVOKE ALL ON FUNCTION open_text(bytea, bytea), open_pii(jsonb, bytea) FROM PUBLIC;
"#,
    name = "columns",
    requires = ["sealing"]
);

v1_function_info!(
    pg_finfo_akko_utf8_bytes,
    pg_finfo_akko_open_text,
    pg_finfo_akko_open_pii_jsonb,
    pg_finfo_akko_row_context
);

/// The output function of a type.
pub unsafe fn output_function(type_oid: pg_sys::Oid) -> pg_sys::Oid {
    let mut output = pg_sys::InvalidOid;
    let mut is_varlena = false;
    pg_sys::getTypeOutputInfo(type_oid, &mut output, &mut is_varlena);
    output
}

/// The text a key column's value binds to, as `row_context` and the trigger both write it:
/// what the type's output function writes.
pub unsafe fn key_text<'a>(value: pg_sys::Datum, output: pg_sys::Oid) -> &'a [u8] {
    CStr::from_ptr(pg_sys::OidOutputFunctionCall(output, value)).to_bytes()
}

/// A binding id argument: the 16 bytes of a column's `binding_id`.
pub fn binding_id(bytes: &[u8]) -> BindingId {
    bytes
        .try_into()
        .unwrap_or_else(|_| errors::bad_binding_id(bytes.len()))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_row_context(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let binding =
        binding_id(arg_bytes(fcinfo, 0).unwrap_or_else(|| errors::null_argument("binding")));
    let flinfo = (*fcinfo).flinfo;
    if pg_sys::get_fn_expr_variadic(flinfo) {
        errors::row_context_needs_separate_keys();
    }
    let nargs = (*fcinfo).nargs as usize;
    let parts: Vec<&[u8]> = (1..nargs)
        .map(|i| {
            if pg_arg_is_null(fcinfo, i) {
                errors::null_argument("row_key");
            }
            key_text(
                pg_getarg_datum_raw(fcinfo, i),
                output_function(pg_sys::get_fn_expr_argtype(flinfo, i as i32)),
            )
        })
        .collect();
    bytea_datum(&row_context(&binding, parts))
}

pub unsafe fn bytea_datum(bytes: &[u8]) -> pg_sys::Datum {
    let (varlena, body) = new_bytea(bytes.len());
    body.copy_from_slice(bytes);
    pg_sys::Datum::from(varlena)
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
    let converted = c_bytes_mut(utf8);
    let bytes = bytea_datum(converted);
    converted.zeroize();
    bytes
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_open_text(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let Some(sealed) = arg_bytes(fcinfo, 0) else {
        return pg_return_null(fcinfo);
    };
    let plaintext = open_to_buffer(sealed, arg_bytes(fcinfo, 1));
    let text = std::str::from_utf8(plaintext).ok().and_then(payload_text);
    let datum = match &text {
        Some(text) if !text.contains('\0') => Some(text_datum_from_utf8(text)),
        _ => None,
    };
    if let Some(Cow::Owned(unescaped)) = text {
        drop(Zeroizing::new(unescaped));
    }
    plaintext.zeroize();
    datum.unwrap_or_else(|| errors::plaintext_not_utf8())
}

/// A text datum in the server encoding from UTF-8 text; wipes the converted copy.
pub unsafe fn text_datum_from_utf8(utf8: &str) -> pg_sys::Datum {
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
            c_bytes_mut(server).zeroize();
        }
        text
    };
    pg_sys::Datum::from(text)
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
    plaintext_to_jsonb(open_to_buffer(&envelope, arg_bytes(fcinfo, 1)))
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
    let bytes = c_bytes_mut(text);
    let found = std::str::from_utf8(bytes).ok().and_then(jsonb_envelope);
    let envelope = match found {
        Some(Ok(envelope)) => Some(envelope),
        Some(Err(_)) => errors::bad_jsonb_envelope(),
        None => None,
    };
    bytes.zeroize();
    envelope
}
