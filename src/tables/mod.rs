//! Protected tables: the registries, protect/migrate/unprotect, the row trigger that seals,
//! the decrypting views, re-encryption, and the batch-run engine that migrate and reencrypt
//! share.

pub mod lookups;
pub mod migrate;
pub mod owned;
pub mod protect;
pub mod reading;
pub mod reencrypt;
pub mod registry;
pub mod runs;
pub mod spec;
pub mod trigger;
pub mod type_io;
pub mod views;
