//! `CALL akko_crypt.reencrypt(tbl, col)`: moves the sealed values of a column to the active
//! key version of their class while the table stays in use.
//!
//! A PL/pgSQL procedure commits after every batch; a batch is one `reencrypt_step` over a
//! range of the table's blocks, read with a TID range scan, so no batch holds its locks for
//! long. The run's position is in `akko_crypt.reencrypt_runs`, committed with each batch:
//! other sessions watch it there, and a run that was interrupted resumes from its last
//! committed batch. A pass walks the table from block 0 to its end; the run ends after a
//! pass that found nothing left to reseal, because a concurrent update can move a row that
//! still holds an old value behind the walk.

use std::collections::HashSet;

use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::{ClassName, Envelope};
use pgrx::datum::DatumWithOid;
use pgrx::itemptr::item_pointer_get_both;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{as_owner, audit};
use crate::pg::spi::first_row;
use crate::tables::batches::{first_batch_blocks, next_batch_blocks};
use crate::tables::registry::Mode;
use crate::{tables::trigger, values::sealing};

extension_sql!(
    r#"
CREATE TABLE reencrypt_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl              regclass NOT NULL,
    col              name NOT NULL,
    context          text,
    batch_size       integer NOT NULL CHECK (batch_size > 0),
    pid              integer NOT NULL,
    backend_start    timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    resumed          integer NOT NULL DEFAULT 0,
    pass             integer NOT NULL DEFAULT 1,
    next_block       bigint NOT NULL DEFAULT 0,
    table_blocks     bigint NOT NULL DEFAULT 0,
    blocks_per_batch integer NOT NULL CHECK (blocks_per_batch > 0),
    resealed         bigint NOT NULL DEFAULT 0,
    pass_stale       bigint NOT NULL DEFAULT 0,
    pass_unreadable  bigint NOT NULL DEFAULT 0,
    pass_not_sealed  bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX reencrypt_runs_one_open_run ON reencrypt_runs (tbl, col) WHERE finished_at IS NULL;
COMMENT ON TABLE reencrypt_runs IS
    'Progress of akko_crypt.reencrypt runs, committed with every batch; an unfinished run resumes where it stopped';
COMMENT ON COLUMN reencrypt_runs.pass_stale IS
    'Values under an older key version that could be resealed, found so far in this pass; the run ends after a pass that found none';
COMMENT ON COLUMN reencrypt_runs.pass_unreadable IS
    'Values found so far in this pass whose key version is retired or destroyed, or whose subject was forgotten: they cannot be resealed';
COMMENT ON COLUMN reencrypt_runs.pass_not_sealed IS 'Values found so far in this pass that are not akko_crypt envelopes';
REVOKE ALL ON reencrypt_runs FROM PUBLIC;

-- A procedure, so that it can commit after every batch; hence no SET search_path clause
-- (a procedure with one cannot commit) and every name schema-qualified.
CREATE PROCEDURE reencrypt(tbl regclass, col name, batch_size integer DEFAULT 1000,
                           context text DEFAULT NULL, INOUT resealed bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    run bigint := akko_crypt.reencrypt_start(tbl, col, batch_size, context);
BEGIN
    LOOP
        COMMIT;
        resealed := akko_crypt.reencrypt_step(run);
        EXIT WHEN resealed IS NOT NULL;
    END LOOP;
END $$;
COMMENT ON PROCEDURE reencrypt(regclass, name, integer, text, bigint) IS
    'Reseals the values of a bytea column that are under older key versions, in batches that commit separately; resumes an interrupted run';

REVOKE ALL ON PROCEDURE reencrypt(regclass, name, integer, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION reencrypt_start(oid, text, integer, text), reencrypt_step(bigint) FROM PUBLIC;
"#,
    name = "reencrypt",
    requires = [reencrypt_start, reencrypt_step, "keyring"]
);

/// A run that keeps finding old values after this many passes ends with a warning rather
/// than chase a writer that keeps producing them.
const MAX_PASSES: i32 = 5;

/// The column a run works on, as the caller may reach it.
struct Target {
    oid: pg_sys::Oid,
    /// The table's owner, as whom the run reads and writes the table (see
    /// `sql::as_table_owner`), so that the owner's code (triggers, constraints, index and
    /// partition expressions, domains) never runs with the caller's rights; the caller's
    /// SELECT and UPDATE on the column are checked first, and the values are opened and
    /// sealed again with its privileges.
    owner: pg_sys::Oid,
    /// Whether the caller is a member of the owner (a superuser is): only then may it give
    /// a context expression, which runs as the owner.
    acts_as_owner: bool,
    /// `schema.table`, quoted.
    table: String,
    /// The column name, quoted.
    column: String,
    /// The column name as the catalog has it.
    column_name: String,
    /// A text-mode protected column: its envelopes are `$akko:` text.
    holds_text: bool,
    blocks: i64,
    /// Blocks per batch that hold about `batch_size` rows, by the planner's statistics.
    blocks_per_batch: i32,
}

impl Target {
    fn resolve(tbl: pg_sys::Oid, col: &str, batch_size: i32) -> Target {
        let row = Spi::connect(|client| {
            let rows = client.select(
                "SELECT c.relkind::pg_catalog.text, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                        a.atttypid::pg_catalog.regtype::pg_catalog.text, pg_catalog.quote_ident(a.attname), \
                        pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT') \
                          AND pg_catalog.has_column_privilege(c.oid, a.attnum, 'UPDATE'), \
                        pg_catalog.pg_relation_size(c.oid) \
                          OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::bigint, \
                        CASE WHEN c.relpages OPERATOR(pg_catalog.>) 0 \
                              AND c.reltuples OPERATOR(pg_catalog.>) 0 \
                             THEN c.reltuples OPERATOR(pg_catalog./) c.relpages END, \
                        c.relowner, pg_catalog.pg_has_role(c.relowner, 'USAGE'), c.relrowsecurity \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                 LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid \
                      AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name \
                      AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
                 WHERE c.oid OPERATOR(pg_catalog.=) $1",
                None,
                &[tbl.into(), col.into()],
            )?;
            let Some(row) = rows.into_iter().next() else {
                return Ok(None);
            };
            Ok(Some((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<String>(2)?.unwrap_or_default(),
                row.get::<String>(3)?,
                row.get::<String>(4)?,
                row.get::<bool>(5)?.unwrap_or(false),
                row.get::<i64>(6)?.unwrap_or(0),
                row.get::<f64>(7)?,
                row.get::<pg_sys::Oid>(8)?.unwrap_or_default(),
                row.get::<bool>(9)?.unwrap_or(false),
                row.get::<bool>(10)?.unwrap_or(true),
            )))
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("look up the table", e));
        let Some((
            relkind,
            table,
            column_type,
            column,
            may_update,
            blocks,
            rows_per_block,
            owner,
            acts_as_owner,
            row_security,
        )) = row
        else {
            raise(Error::NoSuchTable { oid: tbl.to_u32() })
        };
        if relkind != "r" {
            raise(Error::ReencryptNeedsTable {
                table: &table,
                relkind: &relkind,
            });
        }
        let column = column.unwrap_or_else(|| {
            raise(Error::NoSuchColumn {
                table: &table,
                column: col,
            })
        });
        let holds_text = column_type.as_deref() == Some("text")
            && crate::tables::registry::column(tbl, col).is_some_and(|p| p.mode == Mode::Text);
        if column_type.as_deref() != Some("bytea") && !holds_text {
            raise(Error::ReencryptNeedsBytea {
                table: &table,
                column: &column,
                column_type: column_type.as_deref().unwrap_or(""),
            });
        }
        if !may_update {
            raise(Error::ReencryptNotPermitted {
                table: &table,
                column: &column,
            });
        }
        if row_security && !acts_as_owner {
            // As the owner it would reach rows the caller's policies hide from it.
            raise(Error::ReencryptPastRowSecurity { table: &table });
        }
        let blocks_per_batch = first_batch_blocks(batch_size, rows_per_block);
        Target {
            oid: tbl,
            owner,
            acts_as_owner,
            table,
            column,
            column_name: col.to_owned(),
            holds_text,
            blocks,
            blocks_per_batch,
        }
    }

    /// Runs `f`, which reads or writes the table, as its owner.
    fn on_table<R>(&self, f: impl FnOnce() -> R) -> R {
        crate::pg::sql::as_table_owner(self.owner, f)
    }

    /// The statement that reads one batch: each value's row, the value, and the context
    /// it is bound to (evaluated with the caller's privileges and search_path).
    fn batch_query(&self, context: Option<&str>, first_block: i64, end_block: i64) -> String {
        let context = context.map_or("NULL".to_owned(), |expression| format!("({expression})"));
        format!(
            "SELECT ctid, {envelope}, {context}::pg_catalog.bytea FROM ONLY {table} \
             WHERE ctid OPERATOR(pg_catalog.>=) '({first_block},0)'::pg_catalog.tid \
               AND ctid OPERATOR(pg_catalog.<) '({end_block},0)'::pg_catalog.tid \
               AND {column} IS NOT NULL",
            envelope = self.envelope(&self.column),
            column = self.column,
            table = self.table,
        )
    }

    /// The envelope a value of the column holds, as bytea.
    fn envelope(&self, value: &str) -> String {
        if self.holds_text {
            format!("akko_crypt.envelope_from_text({value})")
        } else {
            value.to_owned()
        }
    }

    /// Replaces values by row, but only where the row still holds the value that was read:
    /// a row updated in the meantime has moved on and is left to the next pass.
    fn update_statement(&self) -> String {
        format!(
            "UPDATE ONLY {table} AS target SET {column} = {value} \
             FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.tid[]), \
                             pg_catalog.unnest($2::pg_catalog.bytea[]), \
                             pg_catalog.unnest($3::pg_catalog.bytea[])) AS resealed(row_id, was, value) \
             WHERE target.ctid OPERATOR(pg_catalog.=) resealed.row_id \
               AND {current} OPERATOR(pg_catalog.=) resealed.was",
            value = if self.holds_text {
                "akko_crypt.envelope_as_text(resealed.value)"
            } else {
                "resealed.value"
            },
            current = self.envelope(&format!("target.{}", self.column)),
            column = self.column,
            table = self.table,
        )
    }
}

/// Starts a run of reencrypt on `tbl`.`col`, or takes over the unfinished run on it whose
/// backend has gone; returns the run's id.
#[pg_extern(volatile, parallel_unsafe)]
fn reencrypt_start(
    tbl: Option<pg_sys::Oid>,
    col: Option<&str>,
    batch_size: Option<i32>,
    context: Option<&str>,
) -> i64 {
    let tbl = tbl.unwrap_or_else(|| raise(Error::NullArgument { name: "tbl" }));
    let col = col.unwrap_or_else(|| raise(Error::NullArgument { name: "col" }));
    let batch_size =
        batch_size.unwrap_or_else(|| raise(Error::NullArgument { name: "batch_size" }));
    if batch_size < 1 {
        raise(Error::InvalidBatchSize { batch_size });
    }
    let target = Target::resolve(tbl, col, batch_size);
    let derived;
    let context = match context {
        Some(expression) => {
            if !target.acts_as_owner {
                raise(Error::ReencryptContextNeedsOwner {
                    table: &target.table,
                });
            }
            if !crate::pg::sql::is_one_expression(expression) {
                raise(Error::ContextNotOneExpression);
            }
            Some(expression)
        }
        None => {
            // A protected column bound to its rows: the binding the trigger and the views use.
            derived = crate::tables::reading::row_binding(tbl, col);
            derived.as_deref()
        }
    };
    // Fails now, not after the first batch, on an expression that does not parse, has the
    // wrong type or reads what the caller may not.
    target
        .on_table(|| Spi::run(&target.batch_query(context, 0, 0)))
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e));

    let (run, resumed_at) = as_owner(|| {
        Spi::run("LOCK TABLE akko_crypt.reencrypt_runs IN SHARE ROW EXCLUSIVE MODE")
            .unwrap_or_else(|e| errors::catalog_query_failed("lock akko_crypt.reencrypt_runs", e));
        let open_run = first_row(
            "read akko_crypt.reencrypt_runs",
            Spi::get_three_with_args::<i64, i32, bool>(
                "SELECT id, pid, EXISTS (SELECT FROM pg_stat_activity a \
                                         WHERE a.pid = r.pid AND a.backend_start = r.backend_start) \
                 FROM akko_crypt.reencrypt_runs r \
                 WHERE tbl = $1::regclass AND col = $2::name AND finished_at IS NULL",
                &[tbl.into(), col.into()],
            ),
        );
        match open_run {
            Some((Some(run), Some(pid), Some(alive))) => {
                // SAFETY: MyProcPid is set at backend start and never changes after.
                if alive && pid != unsafe { pg_sys::MyProcPid } {
                    raise(Error::ReencryptRunning {
                        table: &target.table,
                        column: &target.column,
                        pid,
                    });
                }
                let position = Spi::get_two_with_args::<i32, i64>(
                    "UPDATE akko_crypt.reencrypt_runs \
                     SET pid = pg_backend_pid(), backend_start = (SELECT backend_start \
                           FROM pg_stat_activity WHERE pid = pg_backend_pid()), \
                         batch_size = $2, context = $3, resumed = resumed + 1, \
                         updated_at = clock_timestamp() \
                     WHERE id = $1 RETURNING pass, next_block",
                    &[run.into(), batch_size.into(), context.into()],
                )
                .unwrap_or_else(|e| errors::catalog_query_failed("resume the run", e));
                (run, Some(position))
            }
            _ => {
                let run = Spi::get_one_with_args::<i64>(
                    "INSERT INTO akko_crypt.reencrypt_runs \
                       (tbl, col, context, batch_size, pid, backend_start, blocks_per_batch) \
                     SELECT $1::regclass, $2, $3, $4, pg_backend_pid(), backend_start, $5 \
                     FROM pg_stat_activity WHERE pid = pg_backend_pid() \
                     RETURNING id",
                    &[
                        tbl.into(),
                        col.into(),
                        context.into(),
                        batch_size.into(),
                        target.blocks_per_batch.into(),
                    ],
                )
                .unwrap_or_else(|e| errors::catalog_query_failed("record the run", e))
                .unwrap_or_else(|| raise(Error::ExtensionMissing));
                (run, None)
            }
        }
    });
    let (outcome, detail) = match resumed_at {
        Some((pass, block)) => (
            "resumed",
            format!(
                "run {run} on {}.{} from block {} of pass {}",
                target.table,
                target.column,
                block.unwrap_or(0),
                pass.unwrap_or(1)
            ),
        ),
        None => (
            "started",
            format!("run {run} on {}.{}", target.table, target.column),
        ),
    };
    audit("reencrypt", None, None, Some(&detail), outcome);
    run
}

/// Where a run stands, as committed by its last batch.
struct Run {
    id: i64,
    tbl: pg_sys::Oid,
    col: String,
    context: Option<String>,
    batch_size: i32,
    pid: i32,
    finished: bool,
    pass: i32,
    next_block: i64,
    blocks_per_batch: i32,
    resealed: i64,
    pass_stale: i64,
    pass_unreadable: i64,
    pass_not_sealed: i64,
}

impl Run {
    fn load(id: i64) -> Run {
        let run = as_owner(|| {
            Spi::connect_mut(|client| {
                let rows = client.update(
                    "SELECT tbl::oid, col::text, context, batch_size, pid, finished_at IS NOT NULL, \
                            pass, next_block, blocks_per_batch, resealed, pass_stale, \
                            pass_unreadable, pass_not_sealed \
                     FROM akko_crypt.reencrypt_runs WHERE id = $1 FOR UPDATE",
                    None,
                    &[id.into()],
                )?;
                let Some(row) = rows.into_iter().next() else {
                    return Ok(None);
                };
                Ok(Some(Run {
                    id,
                    tbl: row.get(1)?.unwrap_or(pg_sys::InvalidOid),
                    col: row.get(2)?.unwrap_or_default(),
                    context: row.get(3)?,
                    batch_size: row.get(4)?.unwrap_or(1),
                    pid: row.get(5)?.unwrap_or(0),
                    finished: row.get(6)?.unwrap_or(false),
                    pass: row.get(7)?.unwrap_or(1),
                    next_block: row.get(8)?.unwrap_or(0),
                    blocks_per_batch: row.get(9)?.unwrap_or(1),
                    resealed: row.get(10)?.unwrap_or(0),
                    pass_stale: row.get(11)?.unwrap_or(0),
                    pass_unreadable: row.get(12)?.unwrap_or(0),
                    pass_not_sealed: row.get(13)?.unwrap_or(0),
                }))
            })
            .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.reencrypt_runs", e))
        });
        run.unwrap_or_else(|| raise(Error::NoSuchRun { run: id }))
    }

    fn save(&self, table_blocks: i64, finish: bool) {
        as_owner(|| {
            Spi::run_with_args(
                "UPDATE akko_crypt.reencrypt_runs SET pass = $2, next_block = $3, \
                   table_blocks = $4, blocks_per_batch = $5, resealed = $6, pass_stale = $7, \
                   pass_unreadable = $8, pass_not_sealed = $9, updated_at = clock_timestamp(), \
                   finished_at = CASE WHEN $10 THEN clock_timestamp() END \
                 WHERE id = $1",
                &[
                    self.id.into(),
                    self.pass.into(),
                    self.next_block.into(),
                    table_blocks.into(),
                    self.blocks_per_batch.into(),
                    self.resealed.into(),
                    self.pass_stale.into(),
                    self.pass_unreadable.into(),
                    self.pass_not_sealed.into(),
                    finish.into(),
                ],
            )
            .unwrap_or_else(|e| errors::catalog_query_failed("record the run's progress", e))
        });
    }
}

/// Does one batch of run `run`: reseals the old values in the next range of blocks (or
/// starts the next pass). Returns NULL while the run goes on, and the number of values it
/// resealed once it has finished.
#[pg_extern(volatile, parallel_unsafe)]
fn reencrypt_step(run: i64) -> Option<i64> {
    let mut run = Run::load(run);
    if run.finished {
        return Some(run.resealed);
    }
    // SAFETY: MyProcPid is set at backend start and never changes after.
    if run.pid != unsafe { pg_sys::MyProcPid } {
        raise(Error::ReencryptRunningElsewhere {
            run: run.id,
            pid: run.pid,
        });
    }
    let target = Target::resolve(run.tbl, &run.col, run.batch_size);
    if run.next_block >= target.blocks {
        if run.pass_stale == 0 || run.pass >= MAX_PASSES {
            run.save(target.blocks, true);
            report_finished(&run, &target);
            return Some(run.resealed);
        }
        run.pass += 1;
        run.next_block = 0;
        run.pass_stale = 0;
        run.pass_unreadable = 0;
        run.pass_not_sealed = 0;
    } else {
        let end_block = target
            .blocks
            .min(run.next_block + run.blocks_per_batch as i64);
        let batch = reseal_batch(&target, run.context.as_deref(), run.next_block, end_block);
        run.resealed += batch.resealed;
        run.pass_stale += batch.stale;
        run.pass_unreadable += batch.unreadable;
        run.pass_not_sealed += batch.not_sealed;
        let blocks_read = end_block - run.next_block;
        run.blocks_per_batch = next_batch_blocks(blocks_read, batch.rows, run.batch_size);
        run.next_block = end_block;
    }
    run.save(target.blocks, false);
    None
}

fn report_finished(run: &Run, target: &Target) {
    let summary = format!(
        "run {} on {}.{}: resealed {}, passes {}; left as they are: {} that cannot be opened, {} not sealed",
        run.id,
        target.table,
        target.column,
        run.resealed,
        run.pass,
        run.pass_unreadable,
        run.pass_not_sealed
    );
    let outcome = if run.pass_stale == 0 {
        "finished"
    } else {
        pgrx::warning!(
            "akko_crypt.reencrypt stopped after {MAX_PASSES} passes over {}.{}, each of which still found values under older key versions",
            target.table,
            target.column
        );
        "incomplete"
    };
    pgrx::notice!("akko_crypt.reencrypt {summary}");
    audit("reencrypt", None, None, Some(&summary), outcome);
}

#[derive(Default)]
struct BatchOutcome {
    rows: i64,
    stale: i64,
    resealed: i64,
    unreadable: i64,
    not_sealed: i64,
}

/// One row of a batch as read: where it is, its value and the context bound to it.
struct ReadRow {
    row_id: pg_sys::ItemPointerData,
    value: Vec<u8>,
    context: Option<Vec<u8>>,
}

fn reseal_batch(
    target: &Target,
    context: Option<&str>,
    first_block: i64,
    end_block: i64,
) -> BatchOutcome {
    let rows: Vec<ReadRow> = target
        .on_table(|| {
            Spi::connect(|client| {
                client
                    .select(
                        &target.batch_query(context, first_block, end_block),
                        None,
                        &[],
                    )?
                    .map(|row| {
                        Ok(ReadRow {
                            row_id: row.get(1)?.unwrap_or_default(),
                            value: row.get(2)?.unwrap_or_default(),
                            context: row.get(3)?,
                        })
                    })
                    .collect::<Result<_, pgrx::spi::Error>>()
            })
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e));

    let mut outcome = BatchOutcome {
        rows: rows.len() as i64,
        ..BatchOutcome::default()
    };
    let keys = KeyStates::load();
    let mut stale = Vec::new();
    for row in &rows {
        match Envelope::parse(&row.value) {
            Err(_) => outcome.not_sealed += 1,
            Ok(envelope) if !keys.opens(envelope.class, envelope.key_version) => {
                outcome.unreadable += 1;
            }
            Ok(envelope) if keys.is_active(envelope.class, envelope.key_version) => {}
            Ok(envelope) => stale.push((row, envelope)),
        }
    }
    let subjects = existing_subjects(stale.iter().filter_map(|(_, envelope)| envelope.subject));

    let mut row_ids = Vec::new();
    let mut old_values = Vec::new();
    let mut new_values = Vec::new();
    for (row, envelope) in stale {
        if envelope.subject.is_some_and(|id| !subjects.contains(id)) {
            outcome.unreadable += 1;
            continue;
        }
        outcome.stale += 1;
        let context = envelope.is_context_bound().then(|| {
            row.context.as_deref().unwrap_or_else(|| {
                raise(Error::ReencryptContextMissing {
                    table: &target.table,
                    column: &target.column,
                    row: &row_label(row),
                })
            })
        });
        let resealed = sealing::reseal(&envelope, context).unwrap_or_else(|e| {
            raise(Error::ReencryptOpenFailed {
                table: &target.table,
                column: &target.column,
                row: &row_label(row),
                error: e,
            })
        });
        row_ids.push(row.row_id);
        old_values.push(row.value.clone());
        new_values.push(resealed);
    }
    if !row_ids.is_empty() {
        // A protected column's trigger takes these envelopes as they are: they were opened
        // and sealed again just now, under the caller's privileges.
        let written =
            trigger::Resealed::new(target.oid, &target.column_name, &row_ids, &new_values);
        outcome.resealed = target
            .on_table(|| {
                Spi::connect_mut(|client| {
                    client
                        .update(
                            &target.update_statement(),
                            None,
                            &[
                                DatumWithOid::from(row_ids),
                                old_values.into(),
                                new_values.into(),
                            ],
                        )
                        .map(|updated| updated.len() as i64)
                })
            })
            .unwrap_or_else(|e| errors::catalog_query_failed("update the table", e));
        drop(written);
    }
    outcome
}

fn row_label(row: &ReadRow) -> String {
    let (block, offset) = item_pointer_get_both(row.row_id);
    format!("({block},{offset})")
}

/// The state of every key version, read once per batch.
struct KeyStates(Vec<(String, u32, String)>);

impl KeyStates {
    fn load() -> KeyStates {
        let states = as_owner(|| {
            Spi::connect(|client| {
                client
                    .select(
                        "SELECT class, version, state FROM akko_crypt.keyring",
                        None,
                        &[],
                    )?
                    .map(|row| {
                        Ok((
                            row.get::<String>(1)?.unwrap_or_default(),
                            row.get::<i32>(2)?.unwrap_or(0) as u32,
                            row.get::<String>(3)?.unwrap_or_default(),
                        ))
                    })
                    .collect::<Result<_, pgrx::spi::Error>>()
            })
            .unwrap_or_else(|e| errors::catalog_query_failed("read the keyring", e))
        });
        KeyStates(states)
    }

    fn state(&self, class: ClassName<'_>, version: u32) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, v, _)| *v == version && name == class.as_str())
            .map(|(_, _, state)| state.as_str())
    }

    /// Whether values under this key version still open: not retired, destroyed or unknown.
    fn opens(&self, class: ClassName<'_>, version: u32) -> bool {
        matches!(self.state(class, version), Some("active" | "decrypt_only"))
    }

    fn is_active(&self, class: ClassName<'_>, version: u32) -> bool {
        self.state(class, version) == Some("active")
    }
}

/// Which of these subject ids still have their salt, in one query.
fn existing_subjects<'a>(ids: impl Iterator<Item = &'a SubjectId>) -> HashSet<SubjectId> {
    let ids: Vec<Vec<u8>> = ids.map(|id| id.to_vec()).collect();
    if ids.is_empty() {
        return HashSet::new();
    }
    let existing: Vec<Option<Vec<u8>>> = as_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT id FROM akko_crypt.subjects WHERE id = ANY ($1)",
                    None,
                    &[ids.into()],
                )?
                .map(|row| row.get::<Vec<u8>>(1))
                .collect::<Result<_, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the subjects", e))
    });
    existing
        .into_iter()
        .flatten()
        .filter_map(|id| id.try_into().ok())
        .collect()
}
