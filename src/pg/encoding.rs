//! The database's encoding: text akko_crypt seals and opens is UTF-8, and is converted only
//! where the database's is another.

use std::sync::atomic::{AtomicU8, Ordering};

use pgrx::pg_sys;

/// A backend's database, and so its encoding, never changes; read once per backend (a
/// thread-local would cost a TLS lookup on every value). Only functions called in a
/// connected backend read it, never the postmaster, so no forked child inherits a value.
/// 0: not read yet, 1: UTF-8, 2: other.
static DATABASE_IS_UTF8: AtomicU8 = AtomicU8::new(0);

pub fn database_is_utf8() -> bool {
    match DATABASE_IS_UTF8.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: the database encoding is fixed once the backend has connected; reading it
            // cannot raise.
            let utf8 = unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 };
            DATABASE_IS_UTF8.store(if utf8 { 1 } else { 2 }, Ordering::Relaxed);
            utf8
        }
        known => known == 1,
    }
}

/// Whether the database's encoding is SQL_ASCII, whose text is whatever bytes were stored.
pub fn database_is_sql_ascii() -> bool {
    // SAFETY: the database encoding is fixed once the backend has connected; reading it cannot
    // raise.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_SQL_ASCII as i32 }
}
