//! Protected tables: the registries, protect/migrate/unprotect, the row trigger that seals,
//! the decrypting views, and re-encryption in the background.

pub mod batches;
pub mod lookups;
pub mod owned;
pub mod protect;
pub mod reading;
pub mod reencrypt;
pub mod registry;
pub mod trigger;
pub mod views;
