//! PostgreSQL itself: datums and arguments, settings changed for a call, the SQL akko_crypt
//! builds and runs, the few calls made without pgrx's error barrier, and the GUC internals
//! of the PostgreSQL major it is built for (the one version-specific module).

pub mod datum;
pub mod encoding;
pub mod guc_internals;
pub mod settings;
pub mod spi;
pub mod sql;
pub mod unguarded;
