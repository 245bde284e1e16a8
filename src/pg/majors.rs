//! What differs between the PostgreSQL majors akko_crypt builds for (15 to 18, one Cargo
//! feature each): the one module with code for one major and not another.

use std::ffi::CStr;

use pgrx::pg_sys;

/// The GUC record named `name`, or null if there is none. PostgreSQL 15 keeps the records in
/// an array that is searched; 16 put them in a hash table and exported its lookup.
#[cfg(feature = "pg15")]
pub unsafe fn find_guc_record(name: &CStr) -> *mut pg_sys::config_generic {
    let vars = pg_sys::get_guc_variables();
    let count = pg_sys::GetNumConfigOptions() as usize;
    (0..count)
        .map(|i| *vars.add(i))
        .find(|var| CStr::from_ptr((**var).name) == name)
        .unwrap_or(std::ptr::null_mut())
}

/// The GUC record named `name`, or null if there is none; a placeholder is neither created
/// nor raised about.
#[cfg(not(feature = "pg15"))]
pub unsafe fn find_guc_record(name: &CStr) -> *mut pg_sys::config_generic {
    pg_sys::find_option(name.as_ptr(), false, true, pgrx::PgLogLevel::ERROR as i32)
}

/// Memory for a GUC value or extra, which the GUC machinery frees when it drops one: on
/// PostgreSQL 15 malloc's, or null.
#[cfg(feature = "pg15")]
pub unsafe fn guc_allocate(len: usize) -> *mut std::ffi::c_void {
    libc::malloc(len)
}

/// Memory for a GUC value or extra, in the GUC machinery's memory context (PostgreSQL 16 and
/// later), which frees it when it drops the value; it raises rather than return null.
#[cfg(not(feature = "pg15"))]
pub unsafe fn guc_allocate(len: usize) -> *mut std::ffi::c_void {
    pg_sys::guc_malloc(pgrx::PgLogLevel::ERROR as i32, len)
}

/// Frees what guc_allocate, or the GUC machinery, allocated.
#[cfg(feature = "pg15")]
pub unsafe fn guc_free(ptr: *mut std::ffi::c_void) {
    libc::free(ptr)
}

/// Frees what guc_allocate, or the GUC machinery, allocated.
#[cfg(not(feature = "pg15"))]
pub unsafe fn guc_free(ptr: *mut std::ffi::c_void) {
    pg_sys::guc_free(ptr)
}

/// Parses `name` as one type name into its OID and modifier, raising if it is not one (a
/// type that does not exist included): PostgreSQL 15's last argument is `missing_ok`, 16's
/// a soft-error context, both of which this leaves off.
pub unsafe fn parse_type_string(name: &CStr, oid: &mut pg_sys::Oid, typmod: &mut i32) {
    #[cfg(feature = "pg15")]
    let raise_errors = false;
    #[cfg(not(feature = "pg15"))]
    let raise_errors = std::ptr::null_mut();
    pg_sys::parseTypeString(name.as_ptr(), oid, typmod, raise_errors);
}

/// The attributes of `tupdesc`, in order, for as long as the descriptor lives. PostgreSQL 18
/// puts a compact form of each attribute first, and the full ones after them.
pub unsafe fn tuple_desc_attributes<'a>(
    tupdesc: pg_sys::TupleDesc,
) -> &'a [pg_sys::FormData_pg_attribute] {
    #[cfg(not(feature = "pg18"))]
    let first = (*tupdesc).attrs.as_ptr();
    #[cfg(feature = "pg18")]
    let first = pg_sys::TupleDescAttr(tupdesc, 0);
    std::slice::from_raw_parts(first, (*tupdesc).natts as usize)
}
