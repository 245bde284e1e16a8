//! The batch-run engine that `migrate` and `reencrypt` share.
//!
//! A run walks a table in ranges of blocks, one batch a transaction: a PL/pgSQL procedure
//! commits after every step, so no batch holds its locks for long. The run's position and
//! counts are one row of `akko_crypt.batch_runs`, committed with each batch: other sessions
//! and `status()` watch it there, and a run whose backend has gone is taken over by the next
//! call, which resumes from its last committed batch. A pass walks the table from block 0
//! to its end; a job whose batches can miss values (a concurrent update moves a row behind
//! the walk) counts what it found out of date as `stale`, and its run walks again after a
//! pass that found some, up to the job's limit of passes.
//!
//! Batches are sized in blocks to hold about `batch_size` rows: the first from the planner's
//! statistics, each next one from the density of the last, at most twice as many blocks.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{as_owner, audit, caller};
use crate::pg::spi::{first_row, read_row};

extension_sql!(
    r#"
CREATE TABLE batch_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job              text NOT NULL CHECK (job IN ('migrate', 'reencrypt')),
    tbl              regclass NOT NULL,
    col              name,
    context          text,
    batch_size       integer NOT NULL CHECK (batch_size > 0),
    run_by           oid NOT NULL,
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
    relfilenode      oid NOT NULL DEFAULT 0,
    sealed           bigint NOT NULL DEFAULT 0,
    pass_stale       bigint NOT NULL DEFAULT 0,
    pass_unreadable  bigint NOT NULL DEFAULT 0,
    pass_not_sealed  bigint NOT NULL DEFAULT 0,
    CHECK ((job = 'reencrypt') = (col IS NOT NULL))
);
CREATE UNIQUE INDEX batch_runs_one_open_run ON batch_runs (job, tbl, col) NULLS NOT DISTINCT
    WHERE finished_at IS NULL;
COMMENT ON TABLE batch_runs IS
    'Progress of akko_crypt.migrate and akko_crypt.reencrypt runs, committed with every batch; an unfinished run resumes where it stopped';
COMMENT ON COLUMN batch_runs.col IS 'The column a reencrypt run reseals; NULL for migrate, which seals every migrating column of the table';
COMMENT ON COLUMN batch_runs.run_by IS 'The role that started or took over the run: only it drives the run';
COMMENT ON COLUMN batch_runs.relfilenode IS
    'The table''s storage the run''s block positions refer to: when a rewrite (VACUUM FULL, CLUSTER) or a new table under a reused OID replaces it, the pass walks again from block 0';
COMMENT ON COLUMN batch_runs.sealed IS 'Rows migrated, or values resealed, so far';
COMMENT ON COLUMN batch_runs.pass_stale IS
    'Values under an older key version that could be resealed, found so far in this pass; the run ends after a pass that found none';
COMMENT ON COLUMN batch_runs.pass_unreadable IS
    'Values found so far in this pass whose key version is retired or destroyed, or whose subject was forgotten: they cannot be resealed';
COMMENT ON COLUMN batch_runs.pass_not_sealed IS 'Values found so far in this pass that are not akko_crypt envelopes';
REVOKE ALL ON batch_runs FROM PUBLIC;
"#,
    name = "batch_runs",
    requires = ["keyring"]
);

/// The jobs that run in batches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Seals the plaintext of a table's migrating columns (`tables::protect`).
    Migrate,
    /// Reseals a column's values under the active key versions (`tables::reencrypt`).
    Reencrypt,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Migrate => "migrate",
            Job::Reencrypt => "reencrypt",
        }
    }

    /// A run that still finds stale values after this many passes ends rather than chase
    /// a writer that keeps producing them. A migration needs one: the trigger seals every
    /// row written behind its walk.
    pub fn max_passes(self) -> i32 {
        match self {
            Job::Migrate => 1,
            Job::Reencrypt => 5,
        }
    }
}

/// What one batch did.
#[derive(Default)]
pub struct Batch {
    /// Rows the batch read or wrote: the next batch is sized from them.
    pub rows: i64,
    /// Rows migrated, or values resealed.
    pub sealed: i64,
    /// Values it found out of date (a reencrypt run's values under older key versions,
    /// resealed or moved on by a concurrent update): a run walks again after a pass that
    /// found any.
    pub stale: i64,
    pub unreadable: i64,
    pub not_sealed: i64,
}

/// Where a run stands, as its last batch committed it.
pub struct Run {
    pub id: i64,
    job: Job,
    pub tbl: pg_sys::Oid,
    /// The column of a reencrypt run.
    pub col: Option<String>,
    pub context: Option<String>,
    batch_size: i32,
    finished: bool,
    pub pass: i32,
    next_block: i64,
    blocks_per_batch: i32,
    pub sealed: i64,
    pub pass_stale: i64,
    pub pass_unreadable: i64,
    pub pass_not_sealed: i64,
}

/// How `start` found the run.
enum Started {
    New,
    /// Taken over from a backend that has gone, at this pass and block.
    Resumed {
        pass: i32,
        block: i64,
    },
}

/// Blocks that hold about `batch_size` rows at `rows_per_block` (the planner's
/// `reltuples / relpages`, None when the table was never analyzed: one block).
fn first_batch_blocks(batch_size: i32, rows_per_block: Option<f64>) -> i32 {
    rows_per_block
        .map_or(1.0, |per_block| (batch_size as f64 / per_block).ceil())
        .clamp(1.0, i32::MAX as f64) as i32
}

/// Sizes the next batch to about `batch_size` rows from the density of the last one, at
/// most twice as many blocks.
fn next_batch_blocks(blocks_read: i64, rows_read: i64, batch_size: i32) -> i32 {
    let grown = blocks_read.saturating_mul(2).max(1);
    let sized = if rows_read == 0 {
        grown
    } else {
        (blocks_read.saturating_mul(batch_size as i64) / rows_read).clamp(1, grown)
    };
    sized.min(i32::MAX as i64) as i32
}

/// The condition that holds for the rows in blocks [first, end) of a table: a TID range
/// scan reads just those blocks.
pub fn in_blocks(first: i64, end: i64) -> String {
    format!(
        "ctid OPERATOR(pg_catalog.>=) '({first},0)'::pg_catalog.tid \
         AND ctid OPERATOR(pg_catalog.<) '({end},0)'::pg_catalog.tid"
    )
}

/// The planner's rows per block for `tbl`, None when it was never analyzed.
fn rows_per_block(tbl: pg_sys::Oid) -> Option<f64> {
    read_row(
        "read the table's statistics",
        "SELECT CASE WHEN relpages OPERATOR(pg_catalog.>) 0 AND reltuples OPERATOR(pg_catalog.>) 0 \
                THEN reltuples OPERATOR(pg_catalog./) relpages END \
         FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[tbl.into()],
        |row| row.get_one::<f64>(),
    )
    .flatten()
}

/// Starts a run of `job` on `tbl` (and `col`, for reencrypt), or takes over its unfinished
/// run whose backend has gone or sits idle (its call was cancelled: a pooled connection may
/// live on without ever calling again), with this caller's `batch_size` and `context`;
/// `target` names them in messages. Raises 55006 while another backend runs it. Audits the
/// start; returns the run's id.
pub fn start(
    job: Job,
    tbl: pg_sys::Oid,
    col: Option<&str>,
    target: &str,
    batch_size: i32,
    context: Option<&str>,
) -> i64 {
    if batch_size < 1 {
        raise(Error::InvalidBatchSize { batch_size });
    }
    let role = caller();
    let blocks_per_batch = first_batch_blocks(batch_size, rows_per_block(tbl));
    let (run, started) = as_owner(|| {
        // Starts of one job on one target wait for each other, and for nothing else: a
        // start left in an open transaction holds up no other run. The activity read
        // next is taken afresh, not from a snapshot an earlier statement of the
        // transaction made.
        Spi::run_with_args(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2::oid || '/' || coalesce($3, ''), 0)), \
                    pg_stat_clear_snapshot()",
            &[job.name().into(), tbl.into(), col.into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("lock the run", e));
        let open_run = first_row(
            "read akko_crypt.batch_runs",
            Spi::get_three_with_args::<i64, i32, bool>(
                "SELECT id, pid, EXISTS (SELECT FROM pg_stat_activity a \
                                         WHERE a.pid = r.pid AND a.backend_start = r.backend_start \
                                           AND a.state <> 'idle') \
                 FROM akko_crypt.batch_runs r \
                 WHERE job = $1 AND tbl = $2::regclass AND col IS NOT DISTINCT FROM $3::name \
                   AND finished_at IS NULL",
                &[job.name().into(), tbl.into(), col.into()],
            ),
        );
        match open_run {
            Some((Some(run), Some(pid), Some(alive))) => {
                // SAFETY: MyProcPid is set at backend start and never changes after.
                if alive && pid != unsafe { pg_sys::MyProcPid } {
                    raise(Error::RunInProgress {
                        job: job.name(),
                        target,
                        pid,
                    });
                }
                let (pass, block) = Spi::get_two_with_args::<i32, i64>(
                    "UPDATE akko_crypt.batch_runs \
                     SET pid = pg_backend_pid(), backend_start = (SELECT backend_start \
                           FROM pg_stat_activity WHERE pid = pg_backend_pid()), \
                         batch_size = $2, context = $3, run_by = $4, resumed = resumed + 1, \
                         updated_at = clock_timestamp() \
                     WHERE id = $1 RETURNING pass, next_block",
                    &[run.into(), batch_size.into(), context.into(), role.into()],
                )
                .unwrap_or_else(|e| errors::catalog_query_failed("resume the run", e));
                let started = Started::Resumed {
                    pass: pass.unwrap_or(1),
                    block: block.unwrap_or(0),
                };
                (run, started)
            }
            _ => {
                let run = Spi::get_one_with_args::<i64>(
                    "INSERT INTO akko_crypt.batch_runs \
                       (job, tbl, col, context, batch_size, run_by, pid, backend_start, blocks_per_batch, \
                        relfilenode) \
                     SELECT $1, $2::regclass, $3, $4, $5, $6, pg_backend_pid(), backend_start, $7, \
                            pg_relation_filenode($2) \
                     FROM pg_stat_activity WHERE pid = pg_backend_pid() \
                     RETURNING id",
                    &[
                        job.name().into(),
                        tbl.into(),
                        col.into(),
                        context.into(),
                        batch_size.into(),
                        role.into(),
                        blocks_per_batch.into(),
                    ],
                )
                .unwrap_or_else(|e| errors::catalog_query_failed("record the run", e))
                .unwrap_or_else(|| raise(Error::ExtensionMissing));
                (run, Started::New)
            }
        }
    });
    let (outcome, detail) = match started {
        Started::Resumed { pass, block } => (
            "resumed",
            format!("run {run} on {target} from block {block} of pass {pass}"),
        ),
        Started::New => ("started", format!("run {run} on {target}")),
    };
    audit(job.name(), None, None, Some(&detail), outcome);
    run
}

/// Marks the unfinished run of `job` on `tbl`, if any, to walk the table again from its
/// first block: a column that starts to migrate joins the table's migration there.
pub fn walk_again(job: Job, tbl: pg_sys::Oid) {
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE akko_crypt.batch_runs SET next_block = 0, updated_at = clock_timestamp() \
             WHERE job = $1 AND tbl = $2::regclass AND finished_at IS NULL",
            &[job.name().into(), tbl.into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("record the run's progress", e))
    });
}

/// Ends the unfinished run of `job` on `tbl`, if any: its work was done another way (a
/// migration completed by `protect` itself).
pub fn finish_open(job: Job, tbl: pg_sys::Oid) {
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE akko_crypt.batch_runs SET finished_at = clock_timestamp(), \
                    updated_at = clock_timestamp() \
             WHERE job = $1 AND tbl = $2::regclass AND finished_at IS NULL",
            &[job.name().into(), tbl.into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("record the end of the run", e))
    });
}

impl Run {
    /// Run `id` of `job`, locked until the transaction ends. Only the backend and the role
    /// that started or took it over may drive it.
    pub fn load(job: Job, id: i64) -> Run {
        let row = as_owner(|| {
            Spi::connect_mut(|client| {
                let rows = client.update(
                    "SELECT tbl::oid, col::text, context, batch_size, run_by, pid, \
                            finished_at IS NOT NULL, pass, next_block, blocks_per_batch, sealed, \
                            pass_stale, pass_unreadable, pass_not_sealed, \
                            pid = pg_backend_pid() AND backend_start = (SELECT a.backend_start \
                                FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()), \
                            relfilenode IS DISTINCT FROM pg_relation_filenode(tbl) \
                     FROM akko_crypt.batch_runs WHERE id = $1 AND job = $2 FOR UPDATE",
                    None,
                    &[id.into(), job.name().into()],
                )?;
                let Some(row) = rows.into_iter().next() else {
                    return Ok(None);
                };
                let run = Run {
                    id,
                    job,
                    tbl: row.get(1)?.unwrap_or(pg_sys::InvalidOid),
                    col: row.get(2)?,
                    context: row.get(3)?,
                    batch_size: row.get(4)?.unwrap_or(1),
                    finished: row.get(7)?.unwrap_or(false),
                    pass: row.get(8)?.unwrap_or(1),
                    next_block: row.get(9)?.unwrap_or(0),
                    blocks_per_batch: row.get(10)?.unwrap_or(1),
                    sealed: row.get(11)?.unwrap_or(0),
                    pass_stale: row.get(12)?.unwrap_or(0),
                    pass_unreadable: row.get(13)?.unwrap_or(0),
                    pass_not_sealed: row.get(14)?.unwrap_or(0),
                };
                let run_by: pg_sys::Oid = row.get(5)?.unwrap_or(pg_sys::InvalidOid);
                let pid: i32 = row.get(6)?.unwrap_or(0);
                let ours: bool = row.get(15)?.unwrap_or(false);
                let rewritten: bool = row.get(16)?.unwrap_or(true);
                Ok(Some((run, run_by, pid, ours, rewritten)))
            })
            .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.batch_runs", e))
        });
        let (mut run, run_by, pid, ours, rewritten) = row.unwrap_or_else(|| {
            raise(Error::NoSuchRun {
                job: job.name(),
                run: id,
            })
        });
        if run.finished {
            return run;
        }
        // The backend by its start too: a new backend that got the pid of the one that
        // ran the run takes it over with `start`, which checks what it may do.
        if !ours {
            raise(Error::RunOfAnotherBackend { run: id, pid });
        }
        if run_by != caller() {
            raise(Error::RunOfAnotherRole { run: id });
        }
        if rewritten {
            // The blocks walked so far are not the table's blocks any more.
            run.next_block = 0;
            run.pass_stale = 0;
            run.pass_unreadable = 0;
            run.pass_not_sealed = 0;
        }
        run
    }

    /// The table of run `id` of `job`, read without locking the run: a step locks the
    /// table first, then the run, as `protect` does (it locks the table, then marks the
    /// table's migration to walk again), so that the two never wait for each other.
    pub fn table_of(job: Job, id: i64) -> pg_sys::Oid {
        as_owner(|| {
            read_row(
                "read akko_crypt.batch_runs",
                "SELECT tbl::oid FROM akko_crypt.batch_runs WHERE id = $1 AND job = $2",
                &[id.into(), job.name().into()],
                |row| row.get_one::<pg_sys::Oid>(),
            )
        })
        .flatten()
        .unwrap_or_else(|| {
            raise(Error::NoSuchRun {
                job: job.name(),
                run: id,
            })
        })
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Takes the run one step on a table of `table_blocks` blocks: `batch` does the blocks
    /// [first, end) of the next range, or the run starts its next pass, or ends after a pass
    /// that found nothing stale (or its last). Returns whether the run has ended.
    pub fn advance(&mut self, table_blocks: i64, batch: impl FnOnce(i64, i64) -> Batch) -> bool {
        if self.next_block >= table_blocks {
            if self.pass_stale == 0 || self.pass >= self.job.max_passes() {
                self.finished = true;
                self.save(table_blocks);
                return true;
            }
            self.pass += 1;
            self.next_block = 0;
            self.pass_stale = 0;
            self.pass_unreadable = 0;
            self.pass_not_sealed = 0;
        } else {
            let end_block = table_blocks.min(self.next_block + self.blocks_per_batch as i64);
            let done = batch(self.next_block, end_block);
            self.sealed += done.sealed;
            self.pass_stale += done.stale;
            self.pass_unreadable += done.unreadable;
            self.pass_not_sealed += done.not_sealed;
            let blocks_read = end_block - self.next_block;
            self.blocks_per_batch = next_batch_blocks(blocks_read, done.rows, self.batch_size);
            self.next_block = end_block;
        }
        self.save(table_blocks);
        false
    }

    fn save(&self, table_blocks: i64) {
        as_owner(|| {
            Spi::run_with_args(
                "UPDATE akko_crypt.batch_runs SET pass = $2, next_block = $3, \
                   table_blocks = $4, blocks_per_batch = $5, sealed = $6, pass_stale = $7, \
                   pass_unreadable = $8, pass_not_sealed = $9, updated_at = clock_timestamp(), \
                   finished_at = CASE WHEN $10 THEN clock_timestamp() END, \
                   relfilenode = pg_relation_filenode(tbl) \
                 WHERE id = $1",
                &[
                    self.id.into(),
                    self.pass.into(),
                    self.next_block.into(),
                    table_blocks.into(),
                    self.blocks_per_batch.into(),
                    self.sealed.into(),
                    self.pass_stale.into(),
                    self.pass_unreadable.into(),
                    self.pass_not_sealed.into(),
                    self.finished.into(),
                ],
            )
            .unwrap_or_else(|e| errors::catalog_query_failed("record the run's progress", e))
        });
    }
}
