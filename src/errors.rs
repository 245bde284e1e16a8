//! akko_crypt's errors (the `akko_crypt_errors` crate: each with its SQLSTATE, message and
//! hint, none showing a key or a value) raised as PostgreSQL ERRORs.

pub use akko_crypt_errors::{Error, Sqlstate};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

pub fn raise(error: Error) -> ! {
    let akko_crypt_errors::Report {
        sqlstate,
        message,
        hint,
        detail,
    } = error.report();
    let mut report = ErrorReport::new(
        PgSqlErrorCode::from(sqlstate.packed()),
        message,
        "akko_crypt",
    );
    if let Some(hint) = hint {
        report = report.set_hint(hint);
    }
    if let Some(detail) = detail {
        report = report.set_detail(detail);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// A query or statement akko_crypt ran through SPI failed.
pub fn catalog_query_failed(what: &str, error: pgrx::spi::Error) -> ! {
    raise(Error::CatalogQueryFailed {
        what,
        error: error.to_string(),
    })
}

/// The SQLSTATE of an error PostgreSQL raised, for akko_crypt to raise in its place.
pub fn sqlstate_of(code: PgSqlErrorCode) -> Sqlstate {
    Sqlstate::unpacked(code as i32)
}
