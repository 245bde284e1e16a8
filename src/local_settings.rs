//! Settings changed for the length of one call, the way a function's SET clause changes
//! them: the extension's own queries run with a pinned search_path, and the trigger prints
//! protected dates and times in ISO form.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Runs `f` with each `(name, value)` of `settings` in effect, then gives the session its
/// own values back. On an error, transaction or subtransaction abort restores them.
pub fn with_settings<R>(settings: &[(&CStr, &CStr)], f: impl FnOnce() -> R) -> R {
    let _restore = RestoreSettings(unsafe { pg_sys::NewGUCNestLevel() });
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

struct RestoreSettings(i32);

impl Drop for RestoreSettings {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            unsafe { pg_sys::AtEOXact_GUC(true, self.0) };
        }
    }
}
