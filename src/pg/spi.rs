//! Reading the catalog and akko_crypt's tables through SPI, without giving the transaction
//! an id.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::errors;

/// The first row of a query's result, or None when it returned no row.
pub fn first_row<T>(what: &str, result: Result<T, pgrx::spi::Error>) -> Option<T> {
    match result {
        Ok(row) => Some(row),
        Err(pgrx::spi::Error::InvalidPosition) => None,
        Err(e) => errors::catalog_query_failed(what, e),
    }
}

/// The first row of a read-only query. pgrx's `Spi::get_*` helpers first assign the
/// transaction an id, as for a write, which a parallel worker or a hot standby cannot do
/// (and which would give every reading transaction a commit record); `select` does not.
pub fn read_row<R>(
    what: &str,
    query: &str,
    args: &[DatumWithOid<'_>],
    row: impl FnOnce(pgrx::spi::SpiTupleTable<'_>) -> Result<R, pgrx::spi::Error>,
) -> Option<R> {
    first_row(
        what,
        Spi::connect(|client| row(client.select(query, Some(1), args)?.first())),
    )
}

/// The first column of the first row of a read-only query; None for no row or NULL.
pub fn read_one<A: FromDatum + IntoDatum>(
    what: &str,
    query: &str,
    args: &[DatumWithOid<'_>],
) -> Option<A> {
    read_row(what, query, args, |row| row.get_one::<A>()).flatten()
}
