//! Migration: sealing the plaintext a column held when it was protected, in batches that
//! commit separately (`migrate`, a procedure over `migrate_start`, `migrate_step` and
//! `migrate_finish`, driven by the batch-run engine, `runs`), or at once within `protect`.
//! While a column migrates online its plaintext sits in a renamed column of the original
//! type, which `migrate_finish` drops.
//!
//! Each step checks the caller's privilege to protect and ownership of the table; the
//! statements on the table run as its owner (see `sql::Table::run`), who needs `seal` on
//! the class.

use akko_crypt_core::column::TEXT_ENVELOPE_PREFIX;
use akko_crypt_core::envelope::MAGIC;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::pg::datum::Args;
use crate::pg::sql::{ident, literal, pinned, Table};
use crate::tables::owned::{protectable, require_owner_seals};
use crate::tables::reading::hex;
use crate::tables::registry::{self, Mode, ProtectedColumn};
use crate::tables::runs::{self, Batch, Job, Run};
use crate::tables::trigger::install_trigger;
use crate::{tables::views, values::sealing};

extension_sql!(
    r#"
CREATE FUNCTION migrate_start(tbl regclass, batch_size integer) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_migrate_start';
COMMENT ON FUNCTION migrate_start(regclass, integer) IS
    'First step of akko_crypt.migrate: starts a run in akko_crypt.batch_runs, or takes over the table''s interrupted one; returns its id';
CREATE FUNCTION migrate_step(run bigint) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_migrate_step';
COMMENT ON FUNCTION migrate_step(bigint) IS 'One batch of akko_crypt.migrate; NULL while the run goes on, the rows it migrated at the end';
CREATE FUNCTION migrate_finish(tbl regclass) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_migrate_finish';
COMMENT ON FUNCTION migrate_finish(regclass) IS 'Last step of akko_crypt.migrate: drops the plaintext columns';

-- Migration in batches that commit separately: a procedure, so no SET search_path clause
-- (a procedure with one cannot commit); it calls only schema-qualified functions.
CREATE PROCEDURE migrate(tbl regclass, batch_size integer DEFAULT 10000, INOUT migrated bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    run bigint := akko_crypt.migrate_start(tbl, batch_size);
BEGIN
    LOOP
        COMMIT;
        EXIT WHEN akko_crypt.migrate_step(run) IS NOT NULL;
    END LOOP;
    migrated := akko_crypt.migrate_finish(tbl);
END $$;
COMMENT ON PROCEDURE migrate(regclass, integer, bigint) IS
    'Seals the plaintext of the table''s migrating columns in batches of about batch_size rows, a commit per batch; resumes where an interrupted run stopped';
REVOKE ALL ON FUNCTION migrate_start(regclass, integer), migrate_step(bigint),
    migrate_finish(regclass) FROM PUBLIC;
REVOKE ALL ON PROCEDURE migrate(regclass, integer, bigint) FROM PUBLIC;
"#,
    name = "migrate",
    requires = ["registry", "batch_runs", "protect_trigger", "privileges"]
);

v1_function_info!(
    pg_finfo_akko_migrate_start,
    pg_finfo_akko_migrate_step,
    pg_finfo_akko_migrate_finish
);

/// The condition that holds for rows of column `p` that still hold plaintext.
fn unsealed_condition(p: &ProtectedColumn) -> String {
    match (&p.plain_col, p.mode) {
        (Some(plain), _) => format!("{} IS NOT NULL", ident(plain)),
        (None, Mode::Jsonb) => format!(
            "CASE WHEN jsonb_typeof({0}) = 'object' THEN NOT ({0} - '$akko' = '{{}}'::jsonb \
             AND jsonb_typeof({0} -> '$akko') = 'string') ELSE {0} IS NOT NULL END",
            ident(&p.col)
        ),
        // Changed in place: the values that are not envelopes yet.
        (None, Mode::Text) => format!(
            "NOT pg_catalog.starts_with({}, {})",
            ident(&p.col),
            literal(TEXT_ENVELOPE_PREFIX)
        ),
        (None, Mode::Bytea) => format!(
            "substr({0}, 1, {1}) <> pg_catalog.decode('{2}', 'hex')",
            ident(&p.col),
            MAGIC.len(),
            hex(&MAGIC)
        ),
    }
}

/// Seals the plaintext left in the rows of blocks [first, end) (all rows for None): an
/// `UPDATE t SET x = x` makes the trigger seal x. Returns how many rows it touched.
fn migrate_batch(table: &Table, range: Option<(i64, i64)>) -> i64 {
    let migrating: Vec<ProtectedColumn> = registry::columns_of(table.oid)
        .into_iter()
        .filter(|p| p.migrating)
        .collect();
    if migrating.is_empty() {
        return 0;
    }
    let assignments = migrating
        .iter()
        .map(|p| {
            let source = ident(p.plain_col.as_deref().unwrap_or(&p.col));
            format!("{source} = {source}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let unsealed = migrating
        .iter()
        .map(|p| format!("({})", unsealed_condition(p)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let blocks = range.map_or(String::new(), |(first, end)| {
        format!(" AND {}", runs::in_blocks(first, end))
    });
    let statement = format!(
        "UPDATE ONLY {} SET {assignments} WHERE ({unsealed}){blocks}",
        table.sql
    );
    // The batch rewrites plaintext, so an error's DETAIL could show it ("Failing row
    // contains ..."): it is raised without. A unique blind index's refusal names the two
    // rows by their keys.
    let touched = table.try_run(&statement).unwrap_or_else(|failure| {
        if failure.code == PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION {
            name_duplicate(
                table,
                &migrating,
                &assignments,
                &format!("({unsealed}){blocks}"),
            );
        }
        failure.raise_without_detail()
    });
    registry::add_migrated(table.oid, touched);
    touched
}

/// How many rows blocks [first, end) of the table hold.
fn rows_in_blocks(table: &Table, first: i64, end: i64) -> i64 {
    table
        .as_owner(|| {
            Spi::get_one::<i64>(&format!(
                "SELECT pg_catalog.count(*) FROM ONLY {} WHERE {}",
                table.sql,
                runs::in_blocks(first, end)
            ))
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e))
        .unwrap_or(0)
}

/// After a batch met a unique blind index's refusal: migrates the batch's rows (`rows`, a
/// condition) one at a time until one is refused, and raises naming that row and the one
/// that holds its value by their keys, never the value. Returns if no row is refused.
fn name_duplicate(table: &Table, migrating: &[ProtectedColumn], assignments: &str, rows: &str) {
    let key = key_text(table);
    let ctids: Vec<String> = table
        .as_owner(|| {
            Spi::connect(|client| {
                client
                    .select(
                        &format!(
                            "SELECT ctid::pg_catalog.text FROM ONLY {} WHERE {rows}",
                            table.sql
                        ),
                        None,
                        &[],
                    )?
                    .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                    .collect::<Result<Vec<_>, pgrx::spi::Error>>()
            })
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e));
    for ctid in ctids {
        let one_row = format!(
            "UPDATE ONLY {} SET {assignments} WHERE ctid = {}::pg_catalog.tid",
            table.sql,
            crate::pg::sql::literal(&ctid)
        );
        let Err(failure) = table.try_run(&one_row) else {
            continue;
        };
        if failure.code != PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION {
            failure.raise_without_detail();
        }
        let row = row_key(
            table,
            &key,
            &format!("ctid = {}::pg_catalog.tid", crate::pg::sql::literal(&ctid)),
        );
        // The refusal's DETAIL: Key (<col>_bidx)=(\x<hex>) already exists.
        let detail = failure.detail.clone().unwrap_or_default();
        let hex: String = detail
            .find(")=(\\x")
            .map(|at| {
                detail[at + 5..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .collect()
            })
            .unwrap_or_default();
        for p in migrating {
            let Some(bidx) = p.bidx_col.as_deref() else {
                continue;
            };
            let holder = row_key(
                table,
                &key,
                &format!(
                    "{} = pg_catalog.decode({}, 'hex')",
                    ident(bidx),
                    crate::pg::sql::literal(&hex)
                ),
            );
            if let (Some(row), Some(holder)) = (&row, holder) {
                raise(Error::MigrationDuplicate {
                    column: &ident(&p.col),
                    table: &table.sql,
                    row,
                    holder: &holder,
                });
            }
        }
        failure.raise_without_detail();
    }
}

/// While `col` migrates online, its values are in two columns: sealed rows have their blind
/// index in `bidx`, the others their plaintext in `plain`. A second unique index over both
/// refuses a duplicate of a value not migrated yet; it goes when the plaintext column does.
/// Values already duplicated are refused at once, naming both rows by their keys.
pub(super) fn unique_while_migrating(table: &Table, col: &str, bidx: &str, plain: &str) {
    let both = format!(
        // The table by name, as a regclass constant: a dump writes it by name, not by OID.
        "COALESCE({}, akko_crypt.migrating_blind_index({}::pg_catalog.regclass, {}::pg_catalog.name, {}))",
        ident(bidx),
        literal(&table.sql),
        literal(col),
        ident(plain)
    );
    let Err(failure) = table.try_run(&format!("CREATE UNIQUE INDEX ON {} (({both}))", table.sql))
    else {
        return;
    };
    if failure.code != PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION {
        failure.raise_without_detail();
    }
    let key = key_text(table);
    let pair = table
        .as_owner(|| {
            Spi::connect(|client| {
                let rows = client.select(
                    &format!(
                        "SELECT pg_catalog.min(k), pg_catalog.max(k) FROM \
                         (SELECT {key} AS k, {both} AS h FROM ONLY {} WHERE {} IS NOT NULL) AS v \
                         GROUP BY h HAVING pg_catalog.count(*) > 1 LIMIT 1",
                        table.sql,
                        ident(plain)
                    ),
                    None,
                    &[],
                )?;
                Ok::<_, pgrx::spi::Error>(rows.into_iter().next().map(|row| {
                    (
                        row.get::<String>(1).ok().flatten().unwrap_or_default(),
                        row.get::<String>(2).ok().flatten().unwrap_or_default(),
                    )
                }))
            })
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e));
    match pair {
        Some((holder, row)) => raise(Error::MigrationDuplicate {
            column: &ident(col),
            table: &table.sql,
            row: &row,
            holder: &holder,
        }),
        None => failure.raise_without_detail(),
    }
}

/// The expression that names a row of `table` by its primary key (`(id)=(7)`), or by its
/// place when it has none.
fn key_text(table: &Table) -> String {
    let key: Vec<String> = crate::pg::sql::primary_key(table.oid)
        .into_iter()
        .map(|(_, name)| ident(&name))
        .collect();
    if key.is_empty() {
        return "'ctid ' || ctid::pg_catalog.text".to_owned();
    }
    format!(
        "'(' || {} || ')=(' || pg_catalog.concat_ws(', ', {}) || ')'",
        crate::pg::sql::literal(&key.join(", ")),
        key.iter()
            .map(|k| format!("{k}::pg_catalog.text"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The key (`key_text`) of the first row of `table` that meets `condition`.
fn row_key(table: &Table, key: &str, condition: &str) -> Option<String> {
    table
        .as_owner(|| {
            Spi::get_one::<String>(&format!(
                "SELECT {key} FROM ONLY {} WHERE {condition} LIMIT 1",
                table.sql
            ))
        })
        .ok()
        .flatten()
}

/// Drops the renamed plaintext column of `p`, if any, and gives it back its NOT NULL.
pub(super) fn drop_plain_column(table: &Table, p: &ProtectedColumn) {
    if let Some(plain) = &p.plain_col {
        table.run(&format!(
            "ALTER TABLE {} DROP COLUMN {}",
            table.sql,
            ident(plain)
        ));
    }
    if p.restore_not_null {
        table.run(&format!(
            "ALTER TABLE {} ALTER COLUMN {} SET NOT NULL",
            table.sql,
            ident(&p.col)
        ));
    }
}

/// Ends the migration of the table's migrating columns: seals whatever is still plaintext
/// (normally nothing), drops the renamed plaintext columns, restores NOT NULL. Takes an
/// ACCESS EXCLUSIVE lock on the table until commit; SET NOT NULL scans the table under it.
pub(super) fn migrate_finish(table: &Table) -> i64 {
    migrate_batch(table, None);
    let migrating: Vec<ProtectedColumn> = registry::columns_of(table.oid)
        .into_iter()
        .filter(|p| p.migrating)
        .collect();
    let dropping = migrating.iter().any(|p| p.plain_col.is_some());
    if dropping {
        views::set_aside(table);
    }
    for p in &migrating {
        registry::mark_migrated(table.oid, &p.col);
        drop_plain_column(table, p);
    }
    if !migrating.is_empty() {
        // What the trigger carries names the plaintext columns, gone now.
        install_trigger(table);
        // Done, whether by the run or at once by protect.
        runs::finish_open(Job::Migrate, table.oid);
    }
    if dropping {
        views::rebuild(table);
    }
    registry::columns_of(table.oid)
        .iter()
        .map(|p| p.migrated)
        .sum()
}

fn migrate_start(args: &Args) -> i64 {
    let table = protectable(args.oid(0, "tbl"));
    let batch_size = args.int(1, "batch_size");
    for p in registry::columns_of(table.oid)
        .iter()
        .filter(|p| p.migrating)
    {
        require_owner_seals(&table, sealing::value_class(&p.class));
    }
    runs::start(Job::Migrate, table.oid, None, &table.sql, batch_size, None)
}

/// One batch of a migration run; the rows it migrated once it has finished.
fn migrate_step(args: &Args) -> Option<i64> {
    let id = args.bigint(0, "run");
    let table = protectable(Run::table_of(Job::Migrate, id));
    // The table before the run (see `Run::table_of`).
    table.run(&format!(
        "LOCK TABLE ONLY {} IN ROW EXCLUSIVE MODE",
        table.sql
    ));
    let mut run = Run::load(Job::Migrate, id);
    if run.finished() {
        return Some(run.sealed);
    }
    // A table with nothing left to migrate is walked at once.
    let migrating = registry::columns_of(table.oid).iter().any(|p| p.migrating);
    let blocks = if migrating { table.blocks() } else { 0 };
    let finished = run.advance(blocks, |first_block, end_block| {
        // Sized by the rows the range holds, not the few it found to seal (a range the
        // trigger sealed already would double the next one every time), counted before the
        // batch moves them: the new versions of a full page's rows go to other pages.
        let rows = rows_in_blocks(&table, first_block, end_block);
        Batch {
            rows,
            sealed: migrate_batch(&table, Some((first_block, end_block))),
            ..Batch::default()
        }
    });
    if !finished {
        return None;
    }
    let summary = format!("run {} on {}: migrated {}", run.id, table.sql, run.sealed);
    crate::extension::audit("migrate", None, None, Some(&summary), "finished");
    Some(run.sealed)
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_migrate_start(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(pinned(|| migrate_start(&Args::new(fcinfo))))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_migrate_step(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    match pinned(|| migrate_step(&Args::new(fcinfo))) {
        Some(migrated) => pg_sys::Datum::from(migrated),
        None => {
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0)
        }
    }
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_migrate_finish(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let finish = || migrate_finish(&protectable(Args::new(fcinfo).oid(0, "tbl")));
    pg_sys::Datum::from(pinned(finish))
}
