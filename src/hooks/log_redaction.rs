//! Keeps keys out of the server log and pg_stat_activity.
//!
//! `log_statement`, `log_min_duration_statement`, auto_explain and error reports would
//! otherwise write a key to the server log: in the statement (`SET akko_crypt.key = '...'`,
//! `EXECUTE setkey('...')`), in the bind parameters PostgreSQL logs as DETAIL or CONTEXT
//! (`set_config($1, $2, false)`, a wrapper function's `$1`), or in a plan's query text. Three
//! rules, applied to every message part of every report:
//!
//! - a statement that carried a key (one whose value reached the key's check hook, however
//!   it was spelt, or `rewrap`), or whose text names the key parameter or holds anything
//!   shaped like a key, is never logged: not as STATEMENT, not in CONTEXT, and the
//!   statement and plan logs it causes are replaced whole;
//! - a DETAIL or CONTEXT that names the key parameter is dropped;
//! - anything shaped like a key (64 hex digits, base64 of 32 bytes) is replaced wherever it
//!   stands.
//!
//! And one rule for personal values: the input that an error's CONTEXT quotes (the line COPY
//! FROM stopped at, every value of the row in clear; the document the JSON parser refused,
//! with the token its DETAIL names) is removed, for every table.
//!
//! pg_stat_activity shows the text of the statement running (or last run); the same
//! statements are replaced there as soon as akko_crypt sees them: when the key's check hook
//! runs, and when a report about the statement is logged (a statement that an aborted
//! transaction refused never reaches the hook).

use std::cell::Cell;
use std::ffi::{c_char, CStr};

use akko_crypt_core::redaction::{
    names_secret, quotes_copy_input, quotes_json_input, redact_keys, without_quoted_input,
    without_quoted_value,
};
use pgrx::pg_sys;
use pgrx::prelude::*;

const REDACTED_STATEMENT: &CStr = c"<akko_crypt: redacted, this entry carried a key>";
pub const AUDIT_PREFIX: &str = "akko_crypt audit: ";

static mut PREVIOUS_EMIT_LOG_HOOK: pg_sys::emit_log_hook_type = None;

thread_local! {
    /// The statement (its text's address and its start) that akko_crypt saw carry a key.
    static SECRET_STATEMENT: Cell<Option<(usize, i64)>> = const { Cell::new(None) };
}

pub fn init() {
    // SAFETY: runs once, from _PG_init, before any statement; the hook chain is kept by calling
    // the previous hook from redact.
    unsafe {
        PREVIOUS_EMIT_LOG_HOOK = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(redact);
    }
}

fn current_statement() -> Option<(usize, i64)> {
    // SAFETY: debug_query_string is NULL or the NUL-terminated text of the statement running
    // now, set by PostgreSQL on this thread.
    unsafe {
        let text = pg_sys::debug_query_string;
        (!text.is_null()).then(|| (text as usize, pg_sys::GetCurrentStatementStartTimestamp()))
    }
}

/// Records that the statement running now carried `secret` (a key's text), replaces its
/// text in pg_stat_activity and overwrites the secret in the text itself.
pub fn current_statement_carries_secret(secret: &[u8]) {
    SECRET_STATEMENT.with(|s| s.set(current_statement()));
    hide_statement_from_activity();
    scrub_from_statement(secret);
}

/// Overwrites every copy of a key's text in the statement running now, so that what reads
/// that text after the statement ran (pg_stat_statements records a utility statement's
/// text, `SET` and `DO` included, and `log_min_duration_statement` logs it) never sees the
/// key. The text has been parsed by now: PostgreSQL keeps it only to show, log and point
/// at error positions. Shorter values are left alone: they would match ordinary words.
fn scrub_from_statement(secret: &[u8]) {
    const SHORTEST_SCRUBBED: usize = 8;
    // SAFETY: the text is written only in a client backend, where debug_query_string is the
    // backend's own copy of the statement it received (checked below), and only within its
    // length (strlen of the same text).
    unsafe {
        // Only a client backend's statement text is its own, writable buffer (the message
        // it received, or a prepared statement's copy); a background worker may point
        // debug_query_string at a constant.
        let text = pg_sys::debug_query_string as *mut u8;
        if secret.len() < SHORTEST_SCRUBBED
            || text.is_null()
            || pg_sys::MyBackendType != pg_sys::BackendType::B_BACKEND
        {
            return;
        }
        let len = CStr::from_ptr(text.cast()).to_bytes().len();
        let statement = std::slice::from_raw_parts_mut(text, len);
        let mut at = 0;
        while let Some(found) = statement[at..]
            .windows(secret.len())
            .position(|window| window == secret)
        {
            let start = at + found;
            statement[start..start + secret.len()].fill(b'*');
            at = start + secret.len();
        }
    }
}

fn hide_statement_from_activity() {
    // SAFETY: reporting activity needs the backend's status entry, which is checked for NULL
    // first (processes without one, an auxiliary process, skip it); the text is a static C
    // string.
    unsafe {
        if !pg_sys::MyBEEntry.is_null() {
            pg_sys::pgstat_report_activity(
                pg_sys::BackendState::STATE_RUNNING,
                REDACTED_STATEMENT.as_ptr(),
            );
        }
    }
}

unsafe fn text_of<'a>(text: *const c_char) -> Option<&'a [u8]> {
    (!text.is_null()).then(|| CStr::from_ptr(text).to_bytes())
}

fn statement_is_secret() -> bool {
    let marked = SECRET_STATEMENT.with(Cell::get);
    if marked.is_some() && marked == current_statement() {
        return true;
    }
    // SAFETY: debug_query_string is NULL or the NUL-terminated text of the statement running
    // now; text_of borrows it only for this expression.
    unsafe { text_of(pg_sys::debug_query_string) }
        .is_some_and(|text| names_secret(text) || redact_keys(text).is_some())
}

unsafe fn replace_part(field: &mut *mut c_char, text: &[u8]) {
    let copy = pg_sys::palloc(text.len() + 1).cast::<u8>();
    std::ptr::copy_nonoverlapping(text.as_ptr(), copy, text.len());
    *copy.add(text.len()) = 0;
    *field = copy.cast();
}

/// Replaces every key-shaped token of a message part, in a palloc'd copy.
unsafe fn redact_tokens(field: &mut *mut c_char) {
    if let Some(redacted) = text_of(*field).and_then(redact_keys) {
        replace_part(field, &redacted);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn redact(edata: *mut pg_sys::ErrorData) {
    let e = &mut *edata;
    // Below ERROR these are the server's statement and plan logs, which quote the statement
    // and its parameters; our own errors that name the parameter carry no value and stay,
    // and so do our audit lines (which name fingerprints, never keys).
    let statement_log = e.elevel < PgLogLevel::ERROR as i32
        && !text_of(e.message).is_some_and(|m| m.starts_with(AUDIT_PREFIX.as_bytes()));
    if statement_is_secret() {
        e.hide_stmt = true;
        e.context = std::ptr::null_mut();
        e.internalquery = std::ptr::null_mut();
        if statement_log {
            e.message = pg_sys::pstrdup(REDACTED_STATEMENT.as_ptr());
            e.detail = std::ptr::null_mut();
            e.detail_log = std::ptr::null_mut();
        }
        if e.elevel < PgLogLevel::FATAL as i32 {
            hide_statement_from_activity();
        }
    }
    if statement_log && text_of(e.message).is_some_and(names_secret) {
        e.message = pg_sys::pstrdup(REDACTED_STATEMENT.as_ptr());
        e.detail = std::ptr::null_mut();
        e.detail_log = std::ptr::null_mut();
    }
    for part in [&mut e.detail, &mut e.detail_log, &mut e.context] {
        if text_of(*part).is_some_and(names_secret) {
            *part = std::ptr::null_mut();
        }
    }
    if text_of(e.context).is_some_and(quotes_json_input) {
        e.detail = std::ptr::null_mut();
        e.detail_log = std::ptr::null_mut();
    }
    if text_of(e.context).is_some_and(quotes_copy_input) {
        if let Some(message) = text_of(e.message).and_then(without_quoted_value) {
            replace_part(&mut e.message, &message);
        }
        e.detail = std::ptr::null_mut();
        e.detail_log = std::ptr::null_mut();
    }
    if let Some(context) = text_of(e.context).and_then(without_quoted_input) {
        replace_part(&mut e.context, &context);
    }
    for part in [
        &mut e.message,
        &mut e.detail,
        &mut e.detail_log,
        &mut e.hint,
        &mut e.context,
        &mut e.internalquery,
    ] {
        redact_tokens(part);
    }
    if let Some(previous) = PREVIOUS_EMIT_LOG_HOOK {
        previous(edata);
    }
}
