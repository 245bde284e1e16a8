//! The parts of PostgreSQL's GUC internals that key custody reaches into: finding the key
//! parameter's record, and taking a key out of the value RESET returns to. The fields read
//! and written here (`utils/guc_tables.h`) are laid out alike on every supported major; how
//! a record is found is not, and is `majors::find_guc_record`'s.

use std::ffi::{c_void, CStr};

use pgrx::pg_sys;

use crate::errors::{raise, Error};
use crate::pg::majors::{find_guc_record, guc_allocate, guc_free};

/// The record of the string parameter `name`, or null if it is not defined.
pub unsafe fn find_string_guc(name: &CStr) -> *mut pg_sys::config_string {
    let var = find_guc_record(name);
    if var.is_null() || (*var).vartype != pg_sys::config_type::PGC_STRING {
        return std::ptr::null_mut();
    }
    var.cast()
}

/// Whether any value of `conf` (current, reset, boot, or one the GUC stack keeps) is the
/// string `value`, as guc.c's own bookkeeping asks before it frees one.
unsafe fn string_used(conf: *mut pg_sys::config_string, value: *mut std::ffi::c_char) -> bool {
    if value == *(*conf).variable
        || value == (*conf).reset_val
        || value.cast_const() == (*conf).boot_val
    {
        return true;
    }
    let mut entry = (*conf).gen_.stack;
    while !entry.is_null() {
        if value == (*entry).prior.val.stringval || value == (*entry).masked.val.stringval {
            return true;
        }
        entry = (*entry).prev;
    }
    false
}

/// Whether any value of `conf` carries the extra `extra`.
unsafe fn extra_used(conf: *mut pg_sys::config_string, extra: *mut c_void) -> bool {
    if extra == (*conf).gen_.extra || extra == (*conf).reset_extra {
        return true;
    }
    let mut entry = (*conf).gen_.stack;
    while !entry.is_null() {
        if extra == (*entry).prior.extra || extra == (*entry).masked.extra {
            return true;
        }
        entry = (*entry).prev;
    }
    false
}

/// Keeps a key out of what RESET returns to. A key set in the startup packet becomes the
/// reset value as well as the current one, and its source ranks below a session's, which
/// RESET ALL and DISCARD ALL skip: the reset value is made empty, and the current value
/// counts as set in the session, so that RESET, RESET ALL and DISCARD ALL all drop the key.
/// The replaced string and extra are freed once no other value of the parameter uses them,
/// as guc.c does.
pub unsafe fn detach_key_from_reset(conf: *mut pg_sys::config_string) {
    if (*conf).gen_.source < pg_sys::GucSource::PGC_S_SESSION && !(*conf).gen_.extra.is_null() {
        (*conf).gen_.source = pg_sys::GucSource::PGC_S_SESSION;
    }
    let old_value = (*conf).reset_val;
    let old_extra = (*conf).reset_extra;
    if old_extra.is_null() && (old_value.is_null() || *old_value == 0) {
        return;
    }
    (*conf).reset_val = guc_copy(b"\0").cast();
    (*conf).reset_extra = std::ptr::null_mut();
    (*conf).gen_.reset_source = pg_sys::GucSource::PGC_S_DEFAULT;
    if !old_value.is_null() && !string_used(conf, old_value) {
        guc_free(old_value.cast());
    }
    if !old_extra.is_null() && !extra_used(conf, old_extra) {
        guc_free(old_extra);
    }
}

/// A copy of `bytes` in memory of the GUC machinery's, as it keeps values and extras and
/// frees them (`majors::guc_allocate`).
pub unsafe fn guc_copy(bytes: &[u8]) -> *mut c_void {
    let ptr = guc_allocate(bytes.len());
    if ptr.is_null() {
        raise(Error::OutOfMemory);
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.cast::<u8>(), bytes.len());
    ptr
}
