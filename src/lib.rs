//! akko_crypt: encrypts personal data inside PostgreSQL. The cryptography lives in the
//! pgrx-free `akko_crypt_core` crate; the modules here are the server glue, one concern each, in
//! folders by subsystem.

use pgrx::prelude::*;

/// Declares the `pg_finfo_*` records that tell PostgreSQL these symbols follow the V1
/// calling convention.
macro_rules! v1_function_info {
    ($($finfo:ident),*) => {$(
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record = pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    )*};
}

mod errors;
mod extension;
mod hooks;
mod keys;
mod pg;
mod privileges;
mod session_cache;
mod tables;
mod values;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!(
    "../sql/keyring.sql",
    name = "keyring",
    requires = ["bootstrap"]
);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Loaded later, `SET akko_crypt.key` would land in a placeholder parameter that shows
    // the key to anyone, before the hooks below exist to hide it.
    // SAFETY: a plain global that PostgreSQL sets while it loads shared_preload_libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        errors::raise(errors::Error::NotPreloaded);
    }
    keys::custody::init();
    extension::init();
    privileges::init();
    keys::status::init();
    hooks::log_redaction::init();
    keys::vault::init();
    hooks::parallel::init();
    tables::type_io::init();
    tables::spec::init();
    tables::trigger::init();
    tables::lookups::init();
    // SAFETY: the prefix is a static C string; called once from _PG_init, after akko_crypt's
    // own settings are defined.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"akko_crypt".as_ptr()) };
}
