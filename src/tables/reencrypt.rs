//! `CALL akko_crypt.reencrypt(tbl, col)`: moves the sealed values of a column to the active
//! key version of their class while the table stays in use.
//!
//! A run of the batch-run engine (`tables::runs`): each `reencrypt_step` reads one range of
//! the table's blocks with a TID range scan and reseals what it found under older versions.
//! The run ends after a pass that found nothing left to reseal, because a concurrent update
//! can move a row that still holds an old value behind the walk.

use std::collections::HashSet;

use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::{ClassName, Envelope};
use pgrx::datum::DatumWithOid;
use pgrx::itemptr::item_pointer_get_both;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{as_owner, audit};
use crate::tables::registry::Mode;
use crate::tables::runs::{self, Batch, Job, Run};
use crate::{tables::trigger, values::sealing};

extension_sql!(
    r#"
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
    requires = [reencrypt_start, reencrypt_step, "batch_runs"]
);

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
}

impl Target {
    fn resolve(tbl: pg_sys::Oid, col: &str) -> Target {
        let row = Spi::connect(|client| {
            let rows = client.select(
                "SELECT c.relkind::pg_catalog.text, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                        a.atttypid::pg_catalog.regtype::pg_catalog.text, pg_catalog.quote_ident(a.attname), \
                        pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT') \
                          AND pg_catalog.has_column_privilege(c.oid, a.attnum, 'UPDATE'), \
                        pg_catalog.pg_relation_size(c.oid) \
                          OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::bigint, \
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
                row.get::<pg_sys::Oid>(7)?.unwrap_or_default(),
                row.get::<bool>(8)?.unwrap_or(false),
                row.get::<bool>(9)?.unwrap_or(true),
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
        Target {
            oid: tbl,
            owner,
            acts_as_owner,
            table,
            column,
            column_name: col.to_owned(),
            holds_text,
            blocks,
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
             WHERE {blocks} AND {column} IS NOT NULL",
            blocks = runs::in_blocks(first_block, end_block),
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
    let target = Target::resolve(tbl, col);
    let context = run_context(&target, context);
    let context = context.as_deref();
    // Fails now, not after the first batch, on an expression that does not parse, has the
    // wrong type or reads what the caller may not.
    target
        .on_table(|| Spi::run(&target.batch_query(context, 0, 0)))
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e));

    runs::start(
        Job::Reencrypt,
        tbl,
        Some(col),
        &format!("{}.{}", target.table, target.column),
        batch_size,
        context,
    )
}

/// The context expression a run evaluates for each row: one the caller gives, which runs as
/// the table's owner, only from the owner or a member of it, and only one expression;
/// otherwise, for a protected column bound to its rows, the binding the trigger and the
/// views use. Checked at every batch: the caller may have left the owner's roles, or the
/// table changed owner, since the run started.
fn run_context(target: &Target, given: Option<&str>) -> Option<String> {
    let derived = crate::tables::reading::row_binding(target.oid, &target.column_name);
    match given {
        Some(expression) if Some(expression) != derived.as_deref() => {
            if !target.acts_as_owner {
                raise(Error::ReencryptContextNeedsOwner {
                    table: &target.table,
                });
            }
            if !crate::pg::sql::is_one_expression(expression) {
                raise(Error::ContextNotOneExpression);
            }
            Some(expression.to_owned())
        }
        _ => derived,
    }
}

/// Does one batch of run `run`: reseals the old values in the next range of blocks (or
/// starts the next pass). Returns NULL while the run goes on, and the number of values it
/// resealed once it has finished.
#[pg_extern(volatile, parallel_unsafe)]
fn reencrypt_step(run: i64) -> Option<i64> {
    let mut run = Run::load(Job::Reencrypt, run);
    if run.finished() {
        return Some(run.sealed);
    }
    let target = Target::resolve(run.tbl, run.col.as_deref().unwrap_or_default());
    let context = run_context(&target, run.context.as_deref());
    let finished = run.advance(target.blocks, |first_block, end_block| {
        reseal_batch(&target, context.as_deref(), first_block, end_block)
    });
    if !finished {
        return None;
    }
    report_finished(&run, &target);
    Some(run.sealed)
}

fn report_finished(run: &Run, target: &Target) {
    let summary = format!(
        "run {} on {}.{}: resealed {}, passes {}; left as they are: {} that cannot be opened, {} not sealed",
        run.id,
        target.table,
        target.column,
        run.sealed,
        run.pass,
        run.pass_unreadable,
        run.pass_not_sealed
    );
    let outcome = if run.pass_stale == 0 {
        "finished"
    } else {
        pgrx::warning!(
            "akko_crypt.reencrypt stopped after {} passes over {}.{}, each of which still found values under older key versions",
            Job::Reencrypt.max_passes(),
            target.table,
            target.column
        );
        "incomplete"
    };
    pgrx::notice!("akko_crypt.reencrypt {summary}");
    audit("reencrypt", None, None, Some(&summary), outcome);
}

/// One row of a batch as read: where it is, its value and the context bound to it.
struct ReadRow {
    row_id: pg_sys::ItemPointerData,
    value: Vec<u8>,
    context: Option<Vec<u8>>,
}

fn reseal_batch(target: &Target, context: Option<&str>, first_block: i64, end_block: i64) -> Batch {
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

    let mut outcome = Batch {
        rows: rows.len() as i64,
        ..Batch::default()
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
        outcome.sealed = target
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
