//! Data classes: each has its own key, derived from the root key, so a value sealed under
//! one class never opens under another. The catalog is `akko_crypt.data_class`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::c_void;

use akko_crypt_core::ClassName;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors;

thread_local! {
    /// Classes this backend has seen in the catalog. Classes are never deleted, so a hit
    /// stays true; only a transaction that rolls back may have seen a class it created.
    static REGISTERED: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

pub fn init() {
    unsafe { pg_sys::RegisterXactCallback(Some(forget_on_abort), std::ptr::null_mut()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_on_abort(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT {
        REGISTERED.with(|r| r.borrow_mut().clear());
    }
}

fn parse(name: &str) -> ClassName<'_> {
    ClassName::parse(name).unwrap_or_else(|e| errors::invalid_class_name(e))
}

/// The class to seal under; raises 22023 unless it is in the catalog.
pub fn registered(name: &str) -> ClassName<'_> {
    let class = parse(name);
    if REGISTERED.with(|r| r.borrow().contains(name)) {
        return class;
    }
    let exists = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM akko_crypt.data_class WHERE name OPERATOR(pg_catalog.=) $1)",
        &[name.into()],
    )
    .unwrap_or_else(|e| errors::catalog_query_failed("look up the data class", e));
    if exists != Some(true) {
        errors::unknown_class(name);
    }
    REGISTERED.with(|r| r.borrow_mut().insert(name.to_owned()));
    class
}

/// Adds a data class; returns false if it already existed. Its key needs no storage: it is
/// derived from the session's root key when first used.
#[pg_extern(parallel_unsafe)]
fn add_class(name: &str) -> bool {
    let class = parse(name);
    Spi::get_one_with_args::<bool>(
        "WITH added AS (INSERT INTO akko_crypt.data_class (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT count(*) OPERATOR(pg_catalog.>) 0 FROM added",
        &[class.as_str().into()],
    )
    .unwrap_or_else(|e| errors::catalog_query_failed("add the data class", e))
    .unwrap_or_default()
}
