//! PostgreSQL itself: datums and arguments, settings changed for a call, the SQL akko_crypt
//! builds and runs, the few calls made without pgrx's error barrier, the GUC internals, and
//! what differs between the PostgreSQL majors (`majors`, the one version-specific module).

pub mod datum;
pub mod encoding;
pub mod guc_internals;
pub mod majors;
pub mod settings;
pub mod spi;
pub mod sql;
pub mod unguarded;
