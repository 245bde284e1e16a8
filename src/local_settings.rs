//! Settings changed for the length of one call, the way a function's SET clause changes
//! them: the extension's own queries run with a pinned search_path, and the trigger prints
//! protected dates and times in ISO form.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Runs `f` with each `(name, value)` of `settings` in effect, then gives the session its
/// own values back. On an error, transaction or subtransaction abort restores them.
pub fn with_settings<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    settings_then(settings, true, f)
}

/// Runs `f` as `with_settings` does, and then also undoes every setting that code run by
/// `f` changed for the session (`set_config(..., false)` included), as PostgreSQL does
/// around VACUUM: for code of a table's owner, which must leave the caller's session as it
/// found it (its search_path above all).
pub fn with_settings_isolated<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    settings_then(settings, false, f)
}

fn settings_then<R>(settings: &[(&CStr, &CStr)], keep: bool, f: impl FnOnce() -> R) -> R {
    let _restore = RestoreSettings {
        nest_level: unsafe { pg_sys::NewGUCNestLevel() },
        keep,
    };
    for (name, value) in settings {
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
        }
    }
    f()
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
            unsafe { pg_sys::AtEOXact_GUC(self.keep, self.nest_level) };
        }
    }
}
