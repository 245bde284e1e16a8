//! Keeps statements that set the key out of the server log and pg_stat_activity.
//!
//! `log_statement`, `log_min_duration_statement`, auto_explain and error reports would
//! otherwise write `SET akko_crypt.key = '...'`, or the bind parameters of
//! `set_config('akko_crypt.key', $1, ...)`, to the server log.

use std::ffi::CStr;

use akko_crypt_core::redaction::names_secret;
use pgrx::pg_sys;
use pgrx::prelude::*;

const REDACTED_STATEMENT: &CStr = c"<akko_crypt: redacted, this entry names akko_crypt.key>";

static mut PREVIOUS_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

pub fn init() {
    unsafe {
        PREVIOUS_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(redact);
    }
}

unsafe fn c_names_secret(text: *const std::ffi::c_char) -> bool {
    !text.is_null() && names_secret(CStr::from_ptr(text).to_bytes())
}

#[pg_guard]
unsafe extern "C-unwind" fn redact(edata: *mut pg_sys::ErrorData) {
    let e = &mut *edata;
    if c_names_secret(pg_sys::debug_query_string) {
        e.hide_stmt = true;
        e.context = std::ptr::null_mut();
        e.internalquery = std::ptr::null_mut();
    }
    // Below ERROR these are the server's statement and plan logs, which quote the statement
    // and its parameters; our own errors that name the parameter carry no value and stay.
    if e.elevel < PgLogLevel::ERROR as i32 && c_names_secret(e.message) {
        e.message = pg_sys::pstrdup(REDACTED_STATEMENT.as_ptr());
        e.detail = std::ptr::null_mut();
        e.detail_log = std::ptr::null_mut();
    }
    if c_names_secret(e.context) {
        e.context = std::ptr::null_mut();
    }
    if let Some(previous) = PREVIOUS_EMIT_LOG_HOOK {
        previous(edata);
    }
}

/// pg_stat_activity shows the text of the statement running (or last run); when that text
/// sets the key, replace it before anyone can read it.
pub fn hide_current_statement_from_activity() {
    unsafe {
        if c_names_secret(pg_sys::debug_query_string) {
            pg_sys::pgstat_report_activity(
                pg_sys::BackendState::STATE_RUNNING,
                REDACTED_STATEMENT.as_ptr(),
            );
        }
    }
}
