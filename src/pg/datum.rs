//! Raw datums: reading the arguments of V1 functions and building the values they return,
//! and wiping palloc'd plaintext.
//!
//! Every pg_sys call pays for pgrx's error barrier, so the readers here take plain inline
//! values (by far the common case) in place and call the detoaster only for compressed or
//! out-of-line ones.

use std::ffi::{c_char, CStr};

use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
use pgrx::pg_sys;
use pgrx::varlena::{
    set_varsize_4b, varatt_is_1b_e, varatt_is_4b_c, varatt_is_4b_u, varlena_to_byte_slice,
};
use zeroize::Zeroize;

use crate::errors::{raise, Error};

/// The bytes of a text or bytea datum.
///
/// # Safety
/// `datum` is a text or bytea value (not NULL) that stays in memory for `'a`, and so does
/// the current memory context, where a compressed or out-of-line value is detoasted: the
/// caller ties `'a` to the call or tuple the value belongs to.
pub unsafe fn datum_bytes<'a>(datum: pg_sys::Datum) -> &'a [u8] {
    let mut value = datum.cast_mut_ptr::<pg_sys::varlena>();
    if varatt_is_1b_e(value) || varatt_is_4b_c(value) {
        value = pg_sys::pg_detoast_datum_packed(value);
    }
    varlena_to_byte_slice(value)
}

/// A jsonb argument as the 4-byte-header, uncompressed value that jsonb code expects.
pub unsafe fn arg_jsonb(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> *mut pg_sys::Jsonb {
    let mut value = pg_getarg_datum_raw(fcinfo, n).cast_mut_ptr::<pg_sys::varlena>();
    if !varatt_is_4b_u(value) {
        value = pg_sys::pg_detoast_datum(value);
    }
    value.cast()
}

/// The bytes of a NUL-terminated C string, to wipe.
///
/// # Safety
/// `ptr` is a C string that stays in memory, and is not otherwise used, for `'a`.
pub unsafe fn c_bytes_mut<'a>(ptr: *mut c_char) -> &'a mut [u8] {
    let len = CStr::from_ptr(ptr).to_bytes().len();
    std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len)
}

/// A palloc'd bytea of `len` bytes, and those bytes to fill.
pub unsafe fn new_bytea<'a>(len: usize) -> (*mut pg_sys::varlena, &'a mut [u8]) {
    let total = len + pg_sys::VARHDRSZ;
    let varlena = pg_sys::palloc(total).cast::<pg_sys::varlena>();
    set_varsize_4b(varlena, total as i32);
    let body = std::slice::from_raw_parts_mut(varlena.cast::<u8>().add(pg_sys::VARHDRSZ), len);
    (varlena, body)
}

pub unsafe fn bytea_datum(bytes: &[u8]) -> pg_sys::Datum {
    let (varlena, body) = new_bytea(bytes.len());
    body.copy_from_slice(bytes);
    pg_sys::Datum::from(varlena)
}

/// Plaintext in memory PostgreSQL allocated (palloc'd, or a C string it returned): wiped
/// when this guard goes, on an error's unwinding too.
pub struct Wiped<'a>(pub &'a mut [u8]);

impl Drop for Wiped<'_> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::ops::Deref for Wiped<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0
    }
}

/// The arguments of a V1 function called from SQL, read by position. What they point to
/// lives for the call; a slice of one borrows the `Args`, a local of the function, so it
/// cannot be kept past the call.
pub struct Args(pg_sys::FunctionCallInfo);

impl Args {
    /// # Safety
    /// `fcinfo` is the one PostgreSQL passed to the function being called, and the `Args`
    /// is a local of that call.
    pub unsafe fn new(fcinfo: pg_sys::FunctionCallInfo) -> Self {
        Args(fcinfo)
    }

    /// The bytes of a text or bytea argument, or None for NULL.
    pub fn bytes(&self, n: usize) -> Option<&[u8]> {
        if self.is_null(n) {
            return None;
        }
        // SAFETY: a text or bytea argument by the function's SQL signature, not NULL; it
        // lives for the call, and the slice no longer than this borrow of the Args.
        Some(unsafe { datum_bytes(self.raw(n)) })
    }

    fn is_null(&self, n: usize) -> bool {
        // SAFETY: self.0 is the fcinfo PostgreSQL passed to the function being called, and n is
        // below its nargs (each caller names an argument of its SQL signature).
        unsafe { pg_arg_is_null(self.0, n) }
    }

    fn raw(&self, n: usize) -> pg_sys::Datum {
        // SAFETY: as for is_null: a valid fcinfo, n one of its arguments.
        unsafe { pg_getarg_datum_raw(self.0, n) }
    }

    /// An oid-like argument (oid, regclass, regrole); 22004 if NULL.
    pub fn oid(&self, n: usize, what: &str) -> pg_sys::Oid {
        if self.is_null(n) {
            raise(Error::NullArgument { name: what });
        }
        pg_sys::Oid::from(self.raw(n).value() as u32)
    }

    pub fn opt_text(&self, n: usize) -> Option<String> {
        if self.is_null(n) {
            return None;
        }
        Some(String::from_utf8_lossy(self.bytes(n)?).into_owned())
    }

    /// A text argument; 22004 if NULL.
    pub fn text(&self, n: usize, what: &str) -> String {
        self.opt_text(n)
            .unwrap_or_else(|| raise(Error::NullArgument { name: what }))
    }

    pub fn opt_name(&self, n: usize) -> Option<String> {
        if self.is_null(n) {
            return None;
        }
        let name = self.raw(n).cast_mut_ptr::<pg_sys::NameData>();
        Some(
            // SAFETY: a name argument is a pointer to a NameData, NUL-terminated within its 64
            // bytes, which lives for the call.
            unsafe { CStr::from_ptr((*name).data.as_ptr()) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// A name argument; 22004 if NULL.
    pub fn name(&self, n: usize, what: &str) -> String {
        self.opt_name(n)
            .unwrap_or_else(|| raise(Error::NullArgument { name: what }))
    }

    /// A boolean argument; 22004 if NULL.
    pub fn bool(&self, n: usize, what: &str) -> bool {
        if self.is_null(n) {
            raise(Error::NullArgument { name: what });
        }
        self.raw(n).value() != 0
    }

    /// An integer argument; 22004 if NULL.
    pub fn int(&self, n: usize, what: &str) -> i32 {
        if self.is_null(n) {
            raise(Error::NullArgument { name: what });
        }
        self.raw(n).value() as i32
    }

    /// A bigint argument; 22004 if NULL.
    pub fn bigint(&self, n: usize, what: &str) -> i64 {
        if self.is_null(n) {
            raise(Error::NullArgument { name: what });
        }
        self.raw(n).value() as i64
    }
}

/// A text datum of `text` (ASCII or the server encoding).
pub fn text_datum(text: &str) -> pg_sys::Datum {
    // SAFETY: cstring_to_text_with_len copies len bytes from the pointer into a new palloc'd
    // text in the current memory context.
    unsafe {
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(
            text.as_ptr().cast(),
            text.len() as i32,
        ))
    }
}

/// The trigger data of a call, or 39P01 when the function was not called as a trigger.
pub unsafe fn trigger_data(fcinfo: pg_sys::FunctionCallInfo) -> *mut pg_sys::TriggerData {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        raise(Error::NotCalledAsTrigger);
    }
    context.cast()
}
