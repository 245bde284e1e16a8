//! Data classes: each has its own key versions in the keyring, so a value sealed under one
//! class never opens under another. The catalog is `akko_crypt.data_class`. Sealing needs
//! no lookup here once the class has an active key version (see `keyring::active_version`).

use akko_crypt_core::ClassName;
use pgrx::prelude::*;

use crate::errors;
use crate::keyring::read_one;

/// A syntactically valid class name; raises 22023 otherwise.
pub fn parse(name: &str) -> ClassName<'_> {
    ClassName::parse(name).unwrap_or_else(|e| errors::invalid_class_name(e))
}

/// Raises 22023 unless `class` is in the catalog.
pub fn require_registered(class: ClassName<'_>) {
    let exists = read_one::<bool>(
        "look up the data class",
        "SELECT EXISTS (SELECT FROM akko_crypt.data_class WHERE name OPERATOR(pg_catalog.=) $1)",
        &[class.as_str().into()],
    );
    if exists != Some(true) {
        errors::unknown_class(class.as_str());
    }
}

/// A class name argument of the key functions: valid and in the catalog.
pub fn registered(name: &str) -> ClassName<'_> {
    let class = parse(name);
    require_registered(class);
    class
}

/// Adds a data class; returns false if it already existed. Its first key version is
/// created by its first seal (or by rotate_key).
#[pg_extern(parallel_unsafe)]
fn add_class(name: &str) -> bool {
    crate::privileges::require(crate::privileges::Privilege::Admin, None);
    let class = parse(name);
    let added = crate::keyring::as_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH added AS (INSERT INTO akko_crypt.data_class (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT count(*) > 0 FROM added",
            &[class.as_str().into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("add the data class", e))
        .unwrap_or_default()
    });
    if added {
        crate::keyring::audit("add_class", Some(class.as_str()), None, None, "ok");
    }
    added
}
