//! Settings and the current role changed for the length of one call, the way a SECURITY
//! DEFINER function with a SET clause changes them: the extension's own queries run as its
//! owner with a pinned search_path, statements on a table as the table's owner, and the
//! trigger prints protected dates and times in ISO form.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Runs `f` with each `(name, value)` of `settings` in effect, then gives the session its
/// own values back. On an error, transaction or subtransaction abort restores them.
pub fn with_settings<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    settings_then(settings, true, f)
}

fn settings_then<R>(settings: &[(&CStr, &CStr)], keep: bool, f: impl FnOnce() -> R) -> R {
    let _restore = RestoreSettings {
        // SAFETY: a new GUC nest level; RestoreSettings pops it with AtEOXact_GUC when it
        // drops, and an error unwinds to the transaction's abort, which pops every level.
        nest_level: unsafe { pg_sys::NewGUCNestLevel() },
        keep,
    };
    for (name, value) in settings {
        set(name, value, pg_sys::GucAction::GUC_ACTION_SAVE);
    }
    f()
}

/// Sets a parameter as SET does in this session: a transaction that rolls back takes it back.
pub fn set_in_session(name: &CStr, value: &CStr) {
    set(name, value, pg_sys::GucAction::GUC_ACTION_SET);
}

fn set(name: &CStr, value: &CStr, action: pg_sys::GucAction::Type) {
    // SAFETY: name and value are NUL-terminated; set_config_option copies them and raises
    // (through pgrx's guard) on a bad value, and GUC_ACTION_SAVE ties the change to the nest
    // level above.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
}

/// Runs `f` as `role`, in a security-restricted operation (as PostgreSQL runs VACUUM, or a
/// SECURITY DEFINER function), with `settings` in effect; afterwards the role, and every
/// setting, are the caller's again, and so are the settings that code run by `f` changed
/// unless `keep_changes`. On an error, (sub)transaction abort restores them.
pub fn as_role_restricted<R>(
    role: pg_sys::Oid,
    settings: &[(&CStr, &CStr)],
    keep_changes: bool,
    f: impl FnOnce() -> R,
) -> R {
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    // SAFETY: writes the current user and security context into two locals.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let _restore = RestoreUser { user, context };
    settings_then(settings, keep_changes, || {
        // SAFETY: role is an existing role OID from the catalog; the old user and context are
        // put back by RestoreUser when it drops, or by the transaction's abort, which resets
        // them, on an error.
        unsafe {
            pg_sys::SetUserIdAndSecContext(
                role,
                context
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            )
        };
        f()
    })
}

struct RestoreUser {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for RestoreUser {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: puts back the user and context read before the change; on an unwinding
            // panic the abort that follows resets them instead.
            unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
        }
    }
}

struct RestoreSettings {
    nest_level: i32,
    /// Whether what `f` itself SET for the session stays (as after a function with a SET
    /// clause), or goes too.
    keep: bool,
}

impl Drop for RestoreSettings {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            // SAFETY: pops the nest level settings_then opened, keeping or dropping its
            // changes; on an unwinding panic the abort pops it instead.
            unsafe { pg_sys::AtEOXact_GUC(self.keep, self.nest_level) };
        }
    }
}
