//! The key parameter, `akko_crypt.key`, and the hidden `akko_crypt.handoff` that carries
//! the key to parallel workers: their check, assign and show hooks, and the transaction end
//! that drops the slots the GUC stack can no longer reach (see the module above).

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::OnceLock;

use akko_crypt_core::{HandoffKey, HandoffTarget, RootKey};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroize;

use crate::errors::{raise, Error};
use crate::hooks::log_redaction;
use crate::keys::custody::store::{
    fingerprint, in_parallel_worker, new_slot, retain_slots, try_with_current_slot, SlotId, CUSTODY,
};
use crate::pg::guc_internals::guc_copy;
use crate::pg::majors::guc_free;
use crate::pg::settings::set_in_session;

pub const KEY_GUC: &CStr = c"akko_crypt.key";
const HANDOFF_GUC: &CStr = c"akko_crypt.handoff";

static mut KEY_GUC_VALUE: *mut c_char = std::ptr::null_mut();
static mut KEY_GUC_CONF: *mut pg_sys::config_string = std::ptr::null_mut();
static mut HANDOFF_GUC_VALUE: *mut c_char = std::ptr::null_mut();

/// Drawn in the postmaster, which loads this library before it forks any backend or
/// worker, so all of them hold the same one.
static HANDOFF: OnceLock<HandoffKey> = OnceLock::new();

/// What a worker labels the key it received.
const FROM_LEADER: &str = "parallel leader";

pub fn init() {
    let handoff = HandoffKey::generate().unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
    let _ = HANDOFF.set(handoff);
    let hidden = (pg_sys::GUC_NO_SHOW_ALL
        | pg_sys::GUC_NOT_IN_SAMPLE
        | pg_sys::GUC_DISALLOW_IN_FILE
        | pg_sys::GUC_DISALLOW_IN_AUTO_FILE) as i32;
    // SAFETY: called once from _PG_init in the postmaster or backend that loads the library;
    // the name, descriptions and boot value are static C strings, and KEY_GUC_VALUE is a static
    // PostgreSQL owns from here on and only it writes.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            KEY_GUC.as_ptr(),
            c"Root key of this session, as 64 hex digits or base64; reads back as its fingerprint only.".as_ptr(),
            c"Set it at connection checkout with set_config('akko_crypt.key', $1, false). It cannot be stored in a configuration file or with ALTER ROLE/DATABASE.".as_ptr(),
            &raw mut KEY_GUC_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            hidden,
            Some(check_key),
            Some(assign_key),
            Some(show_key),
        );
        pg_sys::DefineCustomStringVariable(
            HANDOFF_GUC.as_ptr(),
            c"Set by akko_crypt itself: the session's root key sealed for the parallel workers of one query.".as_ptr(),
            c"".as_ptr(),
            &raw mut HANDOFF_GUC_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            hidden | pg_sys::GUC_NO_RESET_ALL as i32,
            Some(check_handoff),
            Some(assign_handoff),
            Some(show_nothing),
        );
        KEY_GUC_CONF = crate::pg::guc_internals::find_string_guc(KEY_GUC);
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
    }
}

/// Sources a key may come from: a session (SET, set_config) or the connection's startup
/// packet. Everything else would store the key in a file or the catalog.
fn source_may_carry_key(source: pg_sys::GucSource::Type) -> bool {
    use pg_sys::GucSource::*;
    matches!(
        source,
        PGC_S_CLIENT | PGC_S_SESSION | PGC_S_OVERRIDE | PGC_S_INTERACTIVE
    )
}

#[pg_guard]
unsafe extern "C-unwind" fn check_key(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let text = CStr::from_ptr(*newval).to_bytes();
    if text.is_empty() || pg_sys::InitializingParallelWorker {
        // A worker receives only the leader's fingerprint here; its key comes through
        // akko_crypt.handoff.
        return true;
    }
    // Whatever spelled it, this statement carried a key.
    log_redaction::current_statement_carries_secret(text);
    if !source_may_carry_key(source) {
        wipe_c_string(*newval);
        reject(Error::KeyStoredOutsideSession);
        return false;
    }
    let parsed = std::str::from_utf8(text)
        .map_err(|_| akko_crypt_core::KeyParseError::NotHexOrBase64)
        .and_then(RootKey::parse);
    wipe_c_string(*newval);
    let root = match parsed {
        Ok(root) => root,
        Err(error) => {
            reject(Error::InvalidKey { error });
            return false;
        }
    };
    let shown = CString::new(root.fingerprint().to_string()).expect("hex has no NUL");
    let id = new_slot(root);
    guc_free((*newval).cast());
    *newval = guc_copy(shown.as_bytes_with_nul()).cast();
    *extra = guc_copy(&id.to_ne_bytes());
    true
}

/// SHOW, current_setting() and set_config() display the fingerprint of the key the session
/// holds now, never anything else: a value the GUC stack brought back after its key was
/// dropped shows as empty, as it opens nothing.
#[pg_guard]
unsafe extern "C-unwind" fn show_key() -> *const c_char {
    static mut SHOWN: [u8; 2 * 8 + 1] = [0; 2 * 8 + 1];
    // The GUC machinery reads the shown text right after the hook returns; only this
    // backend's main thread calls it.
    let shown = std::slice::from_raw_parts_mut((&raw mut SHOWN).cast::<u8>(), 2 * 8 + 1);
    shown.fill(0);
    if let Some(fingerprint) = fingerprint() {
        shown[..16].copy_from_slice(fingerprint.to_string().as_bytes());
    }
    shown.as_ptr().cast()
}

#[pg_guard]
unsafe extern "C-unwind" fn show_nothing() -> *const c_char {
    c"".as_ptr()
}

/// A check hook's refusal, which PostgreSQL raises as the error of the refused SET.
unsafe fn reject(error: Error) {
    let report = error.report();
    // The texts are akko_crypt's own, without NUL; an empty one stands in if not.
    let c_text = |text: String| CString::new(text).unwrap_or_default();
    pg_sys::GUC_check_errcode(report.sqlstate.packed());
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(c_text(report.message).as_ptr());
    if let Some(hint) = report.hint {
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(c_text(hint).as_ptr());
    }
}

unsafe fn wipe_c_string(s: *mut c_char) {
    let len = CStr::from_ptr(s).to_bytes().len();
    std::slice::from_raw_parts_mut(s.cast::<u8>(), len).zeroize();
}

unsafe fn slot_of(extra: *mut c_void) -> Option<SlotId> {
    (!extra.is_null()).then(|| *extra.cast::<SlotId>())
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_key(_newval: *const c_char, extra: *mut c_void) {
    if in_parallel_worker() {
        return;
    }
    let current = slot_of(extra);
    CUSTODY.with(|c| c.borrow_mut().current = current);
    let conf = KEY_GUC_CONF;
    if conf.is_null() {
        return;
    }
    // The value being replaced stays alive only if the GUC stack still holds it.
    let mut reachable = vec![current, slot_of((*conf).reset_extra)];
    let mut entry = (*conf).gen_.stack;
    while !entry.is_null() {
        reachable.push(slot_of((*entry).prior.extra));
        reachable.push(slot_of((*entry).masked.extra));
        entry = (*entry).prev;
    }
    retain_slots(&reachable);
}

/// Runs just before PostgreSQL unwinds the GUC stack at the end of a top-level
/// transaction, and keeps only the value that will survive it; the reset value loses any
/// key it holds.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::GucStackState::*;
    use pg_sys::XactEvent::*;
    let committed = match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PREPARE => true,
        XACT_EVENT_ABORT => false,
        _ => return,
    };
    let conf = KEY_GUC_CONF;
    if conf.is_null() || in_parallel_worker() {
        return;
    }
    crate::pg::guc_internals::detach_key_from_reset(conf);
    let current = (*conf).gen_.extra;
    // At top-level end every subtransaction is gone, so at most one stack entry remains.
    let survivor = match (*conf).gen_.stack.as_ref() {
        None => current,
        Some(entry) if !committed || entry.state == GUC_SAVE || entry.state == GUC_LOCAL => {
            entry.prior.extra
        }
        Some(entry) if entry.state == GUC_SET_LOCAL => entry.masked.extra,
        Some(_) => current,
    };
    retain_slots(&[slot_of(survivor)]);
}

/// A worker's key: the root its leader sealed for it when the query started. Anything else
/// is refused; a worker that gets nothing holds no key and raises 55000 only if its part of
/// the query needs one.
#[pg_guard]
unsafe extern "C-unwind" fn check_handoff(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let text = CStr::from_ptr(*newval).to_bytes();
    if text.is_empty() || CUSTODY.with(|c| c.borrow().setting_handoff) {
        return true;
    }
    if !pg_sys::InitializingParallelWorker {
        reject(Error::HandoffSetByUser);
        return false;
    }
    let leader = (*pg_sys::MyProc).lockGroupLeader;
    if leader.is_null() {
        return true;
    }
    let target = HandoffTarget {
        leader_pid: (*leader).pid,
        statement_start: pg_sys::GetCurrentStatementStartTimestamp(),
    };
    let received = std::str::from_utf8(text)
        .ok()
        .and_then(|sealed| HANDOFF.get()?.open_root(sealed, &target).ok());
    if let Some(root) = received {
        CUSTODY.with(|c| c.borrow_mut().loading_from = Some(FROM_LEADER));
        *extra = guc_copy(&new_slot(root).to_ne_bytes());
    }
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_handoff(_newval: *const c_char, extra: *mut c_void) {
    if in_parallel_worker() {
        let received = slot_of(extra);
        CUSTODY.with(|c| c.borrow_mut().current = received);
    }
}

/// Sets `akko_crypt.handoff` for the parallel query about to start: the key this session
/// holds now, sealed for this backend and statement, or nothing.
pub fn prepare_parallel_handoff() {
    let target = HandoffTarget {
        // SAFETY: MyProcPid is set at backend start and never changes after.
        leader_pid: unsafe { pg_sys::MyProcPid },
        // SAFETY: reads the current statement's start time, a field of the backend's own
        // transaction state; it cannot raise.
        statement_start: unsafe { pg_sys::GetCurrentStatementStartTimestamp() },
    };
    let sealed = try_with_current_slot(|slot| {
        HANDOFF
            .get()
            .expect("set in _PG_init")
            .seal_root(&slot.root, &target)
            .unwrap_or_else(|_| raise(Error::RandomnessUnavailable))
    })
    .unwrap_or_default();
    // SAFETY: HANDOFF_GUC_VALUE is the string PostgreSQL's GUC machinery owns for
    // akko_crypt.handoff: NULL or a NUL-terminated string, read on the backend's only thread.
    let empty_now = unsafe { HANDOFF_GUC_VALUE.is_null() || *HANDOFF_GUC_VALUE == 0 };
    if sealed.is_empty() && empty_now {
        return;
    }
    set_handoff(&CString::new(sealed).expect("base64 has no NUL"));
}

fn set_handoff(value: &CStr) {
    CUSTODY.with(|c| c.borrow_mut().setting_handoff = true);
    set_in_session(HANDOFF_GUC, value);
    CUSTODY.with(|c| c.borrow_mut().setting_handoff = false);
}

/// Loads `root` as the session's key, as `SET akko_crypt.key` would (so SHOW gives its
/// fingerprint, and a rolled-back transaction takes it back), recording where it came from.
pub fn load(root: RootKey, source: &'static str) {
    let text = root.to_base64();
    let text = CString::new(text.as_str()).expect("base64 has no NUL");
    CUSTODY.with(|c| c.borrow_mut().loading_from = Some(source));
    set_in_session(KEY_GUC, &text);
    let mut bytes = text.into_bytes();
    bytes.zeroize();
    CUSTODY.with(|c| c.borrow_mut().loading_from = None);
}

/// Drops every key this session holds, at once and for good: the setting, the handoff to
/// workers and every cached key.
pub fn forget_all_keys() {
    // SAFETY: the setting's name is a static C string, the value an empty one; SetConfigOption
    // copies both and raises through pgrx's guard.
    unsafe {
        pg_sys::SetConfigOption(
            KEY_GUC.as_ptr(),
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    set_handoff(c"");
    CUSTODY.with(|c| c.borrow_mut().forget_all());
}
