//! Data classes: each has its own key versions in the keyring, so a value sealed under one
//! class never opens under another. The catalog is `akko_crypt.data_class`. Sealing needs
//! no lookup here once the class has an active key version (see `keyring::active_version`).

use akko_crypt_core::ClassName;

use crate::errors::{raise, Error};
use crate::pg::spi::read_one;

/// The built-in data class whose keys blind index keys (and subject lookup keys) are derived
/// from. Nothing is ever sealed or opened under it.
pub const BLIND_INDEX: &str = "blind_index";

pub fn blind_index() -> ClassName<'static> {
    ClassName::parse(BLIND_INDEX).expect("a valid class name")
}

/// A syntactically valid class name; raises 22023 otherwise.
pub fn parse(name: &str) -> ClassName<'_> {
    ClassName::parse(name).unwrap_or_else(|e| raise(Error::InvalidClassName { error: e }))
}

/// Raises 22023 unless `class` is in the catalog.
pub fn require_registered(class: ClassName<'_>) {
    let exists = read_one::<bool>(
        "look up the data class",
        "SELECT EXISTS (SELECT FROM akko_crypt.data_class WHERE name OPERATOR(pg_catalog.=) $1)",
        &[class.as_str().into()],
    );
    if exists != Some(true) {
        raise(Error::UnknownClass {
            class: class.as_str(),
        });
    }
}

/// A class name argument of the key functions: valid and in the catalog.
pub fn registered(name: &str) -> ClassName<'_> {
    let class = parse(name);
    require_registered(class);
    class
}
