//! `protect`, `unprotect` and `restore_protection`: turning a column into one that the
//! trigger keeps sealed, turning it back, and registering again what a restored table's
//! trigger carries.
//!
//! Each checks the caller's privilege to protect and ownership of the table first; the
//! statements on the table then run as its owner (see `sql::Table::run`), and the registry
//! is written as the extension owner (see `registry`).

use akko_crypt_core::column::TEXT_ENVELOPE_PREFIX;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::keys::keyring::{self};
use crate::pg::datum::{text_datum, Args};
use crate::pg::spi::read_row;
use crate::pg::sql::{ident, literal, pinned, type_sql, Table};
use crate::privileges::{self, Privilege};
use crate::tables::migrate::{drop_plain_column, migrate_finish, unique_while_migrating};
use crate::tables::owned::{owned_protectable, protectable, require_owner_seals};
use crate::tables::reading::read_expression;
use crate::tables::registry::{self, Mode, ProtectedColumn};
use crate::tables::runs::{self, Job};
use crate::tables::trigger::install_trigger;
use crate::{keys::classes, tables::views, values::sealing};

extension_sql!(
    r#"
CREATE FUNCTION protect(tbl regclass, col name, class text DEFAULT 'identity', mode text DEFAULT NULL,
                        bind_row boolean DEFAULT false, blind_index boolean DEFAULT false,
                        normalization text DEFAULT 'none', unique_index boolean DEFAULT false,
                        migrate boolean DEFAULT true)
    RETURNS text LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_protect';
COMMENT ON FUNCTION protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean) IS
    'Keeps a column sealed: converts it to bytea (a jsonb column, by default, is sealed in place), migrates its values, keeps a trigger that seals every write';

CREATE FUNCTION unprotect(tbl regclass, col name) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_unprotect';
COMMENT ON FUNCTION unprotect(regclass, name) IS
    'Restores a protected column to plaintext of its original type (one rewrite under an ACCESS EXCLUSIVE lock)';

CREATE FUNCTION restore_protection(tbl regclass) RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_restore_protection';
COMMENT ON FUNCTION restore_protection(regclass) IS
    'Registers again the protected columns of a table restored without akko_crypt''s registry (a table-level or schema-only dump), from what its trigger carries; returns how many';
CREATE FUNCTION protection_disagreements(tbl regclass) RETURNS text[]
    LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_protection_disagreements';
COMMENT ON FUNCTION protection_disagreements(regclass) IS
    'For status(): NULL when the registry and the table''s trigger agree on what it protects, else the columns they disagree on';

REVOKE ALL ON FUNCTION protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean),
    unprotect(regclass, name), restore_protection(regclass),
    protection_disagreements(regclass) FROM PUBLIC;
"#,
    name = "protect",
    requires = [
        "registry",
        "migrate",
        "protect_trigger",
        "views",
        "blind_index",
        "privileges"
    ]
);

v1_function_info!(
    pg_finfo_akko_protect,
    pg_finfo_akko_unprotect,
    pg_finfo_akko_restore_protection,
    pg_finfo_akko_protection_disagreements,
    pg_finfo_akko_upgrade_install_trigger
);

/// What `protect` is asked to do.
struct Request {
    col: String,
    class: String,
    mode: Mode,
    bind_row: bool,
    blind_index: bool,
    normalization: String,
    unique_index: bool,
    migrate: bool,
}

/// The column as the catalog has it before protect.
struct Attribute {
    attnum: i16,
    type_oid: pg_sys::Oid,
    typmod: i32,
    not_null: bool,
    has_default: bool,
    identity_or_generated: bool,
}

fn attribute(table: &Table, col: &str) -> Attribute {
    read_row(
        "look up the column",
        "SELECT a.attnum, a.atttypid, a.atttypmod, a.attnotnull, a.atthasdef, \
                a.attidentity <> '' OR a.attgenerated <> '' \
         FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2::name AND a.attnum > 0 AND NOT a.attisdropped",
        &[table.oid.into(), col.into()],
        |row| {
            Ok(Attribute {
                attnum: row.get(1)?.unwrap_or(0),
                type_oid: row.get(2)?.unwrap_or(pg_sys::InvalidOid),
                typmod: row.get(3)?.unwrap_or(-1),
                not_null: row.get(4)?.unwrap_or(false),
                has_default: row.get(5)?.unwrap_or(false),
                identity_or_generated: row.get(6)?.unwrap_or(false),
            })
        },
    )
    .unwrap_or_else(|| raise(Error::NoSuchColumn { table: &table.sql, column: col }))
}

/// An index or constraint that uses the column: they cannot work on ciphertext. NOT NULL,
/// which PostgreSQL 18 records as a constraint too, holds on envelopes as on plaintext.
fn blocker(table: &Table, attnum: i16) -> Option<String> {
    read_row(
        "look up what uses the column",
        "SELECT CASE WHEN d.classid = 'pg_class'::regclass \
                     THEN 'index ' || quote_ident((SELECT ic.relname FROM pg_class ic WHERE ic.oid = d.objid)) \
                     ELSE 'constraint ' || quote_ident((SELECT co.conname FROM pg_constraint co WHERE co.oid = d.objid)) END \
         FROM pg_depend d \
         WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.refobjsubid = $2 \
           AND d.classid IN ('pg_class'::regclass, 'pg_constraint'::regclass) AND d.deptype IN ('a', 'n') \
           AND (d.classid = 'pg_constraint'::regclass \
                AND NOT EXISTS (SELECT FROM pg_constraint nn WHERE nn.oid = d.objid AND nn.contype = 'n') \
                OR EXISTS (SELECT FROM pg_class ic WHERE ic.oid = d.objid AND ic.relkind = 'i')) \
         LIMIT 1",
        &[table.oid.into(), (attnum as i32).into()],
        |row| row.get_one::<String>(),
    )
    .flatten()
}

/// A generated column computed from the column: the migration would recompute it from the
/// envelopes (or fail).
fn generated_from(table: &Table, attnum: i16) -> Option<String> {
    read_row(
        "look up the generated columns",
        "SELECT quote_ident(a.attname) FROM pg_depend d \
         JOIN pg_attribute a ON a.attrelid = d.objid AND a.attnum = d.objsubid \
         WHERE d.classid = 'pg_class'::regclass AND d.objid = $1 AND d.refclassid = 'pg_class'::regclass \
           AND d.refobjid = $1 AND d.refobjsubid = $2 AND a.attgenerated <> '' LIMIT 1",
        &[table.oid.into(), (attnum as i32).into()],
        |row| row.get_one::<String>(),
    )
    .flatten()
}

fn has_primary_key(table: &Table) -> bool {
    !crate::pg::sql::primary_key(table.oid).is_empty()
}

fn column_exists(table: &Table, name: &str) -> bool {
    read_row(
        "look up the column",
        "SELECT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2::name \
                        AND a.attnum > 0 AND NOT a.attisdropped)",
        &[table.oid.into(), name.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false)
}

/// Whether the table inherits or is inherited from: ALTER TABLE would change its children's
/// column too, while the trigger, the migration and the views see only the table itself.
fn in_inheritance(table: &Table) -> bool {
    read_row(
        "look up inheritance",
        "SELECT EXISTS (SELECT FROM pg_inherits WHERE inhparent = $1 OR inhrelid = $1)",
        &[table.oid.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false)
}

/// How many values of a column about to be protected in jsonb or text mode are already
/// shaped like that mode's envelopes, read as the table's owner.
fn envelopes_already_there(table: &Table, col: &str, mode: Mode) -> i64 {
    let col = ident(col);
    let shaped = match mode {
        Mode::Jsonb => format!(
            "jsonb_typeof({col}) = 'object' AND {col} - '$akko' = '{{}}'::jsonb \
             AND jsonb_typeof({col} -> '$akko') = 'string'"
        ),
        _ => format!(
            "pg_catalog.starts_with({col}::pg_catalog.text, {})",
            literal(TEXT_ENVELOPE_PREFIX)
        ),
    };
    table
        .as_owner(|| {
            Spi::get_one::<i64>(&format!(
                "SELECT count(*) FROM ONLY {} WHERE {shaped}",
                table.sql
            ))
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e))
        .unwrap_or(0)
}

fn has_rows(table: &Table) -> bool {
    table
        .as_owner(|| {
            Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT FROM ONLY {})", table.sql))
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table", e))
        .unwrap_or(false)
}

/// `name` cut to fit PostgreSQL's 63-byte identifiers with `suffix`, at a character boundary.
fn derived_name(name: &str, limit: usize, suffix: &str) -> String {
    let mut end = name.len().min(limit);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &name[..end])
}

fn checked(table: &Table, request: &Request) -> (Attribute, Option<String>, Option<String>) {
    let att = attribute(table, &request.col);
    let col = ident(&request.col);
    let class = classes::parse(&request.class);
    if class.as_str() == classes::BLIND_INDEX {
        raise(Error::UnknownClass {
            class: class.as_str(),
        });
    }
    classes::require_registered(class);
    match request.mode {
        Mode::Bytea | Mode::Text => {
            if att.type_oid == pg_sys::BYTEAOID {
                raise(Error::ColumnAlreadyBytea {
                    column: &col,
                    table: &table.sql,
                });
            }
            if att.has_default {
                raise(Error::ColumnHasDefault {
                    column: &col,
                    table: &table.sql,
                });
            }
            if crate::pg::sql::reader_type(att.type_oid, att.typmod).is_none() {
                raise(Error::UnreadableType {
                    column: &col,
                    table: &table.sql,
                    type_name: &crate::pg::sql::type_display(att.type_oid, att.typmod),
                });
            }
        }
        Mode::Jsonb => {
            if att.type_oid != pg_sys::JSONBOID {
                raise(Error::JsonbModeNeedsJsonb {
                    column: &col,
                    table: &table.sql,
                    type_name: &crate::pg::sql::type_display(att.type_oid, att.typmod),
                });
            }
            if request.blind_index {
                raise(Error::BlindIndexNeedsBytea);
            }
        }
    }
    if in_inheritance(table) {
        raise(Error::TableInInheritance {
            table: &table.sql,
            migrates: true,
        });
    }
    if att.identity_or_generated {
        raise(Error::IdentityOrGeneratedColumn {
            column: &col,
            table: &table.sql,
        });
    }
    if let Some(generated) = generated_from(table, att.attnum) {
        raise(Error::GeneratedFromColumn {
            generated: &generated,
            column: &col,
            table: &table.sql,
        });
    }
    if let Some(blocker) = blocker(table, att.attnum) {
        raise(Error::ColumnUsedBy {
            column: &col,
            table: &table.sql,
            blocker: &blocker,
            protecting: true,
        });
    }
    if request.bind_row && !has_primary_key(table) {
        raise(Error::NoPrimaryKeyToBind { table: &table.sql });
    }
    if request.blind_index
        && akko_crypt_core::column::Normalization::parse(&request.normalization).is_none()
    {
        raise(Error::BadNormalization {
            name: &request.normalization,
        });
    }
    let plain = request
        .mode
        .is_scalar()
        .then(|| derived_name(&request.col, 52, "_akko_plain"));
    let bidx = request
        .blind_index
        .then(|| derived_name(&request.col, 58, "_bidx"));
    for name in plain.iter().chain(bidx.iter()) {
        if column_exists(table, name) {
            raise(Error::DerivedColumnExists {
                column: &ident(name),
                table: &table.sql,
            });
        }
    }
    (att, plain, bidx)
}

fn protect(args: &Args) -> String {
    let tbl = args.oid(0, "tbl");
    let table = protectable(tbl);
    let request = Request {
        col: args.name(1, "col"),
        class: args.text(2, "class"),
        mode: match args.opt_text(3) {
            Some(mode) => {
                Mode::parse(&mode).unwrap_or_else(|| raise(Error::BadMode { name: &mode }))
            }
            // A jsonb column stays jsonb unless asked: the application writing documents
            // into it goes on doing so.
            None if attribute(&table, &args.name(1, "col")).type_oid == pg_sys::JSONBOID => {
                Mode::Jsonb
            }
            None => Mode::Bytea,
        },
        bind_row: args.bool(4, "bind_row"),
        blind_index: args.bool(5, "blind_index"),
        normalization: args.text(6, "normalization"),
        unique_index: args.bool(7, "unique_index"),
        migrate: args.bool(8, "migrate"),
    };
    registry::forget_dropped_tables();
    if let Some(existing) = registry::column(tbl, &request.col) {
        let same = existing.class == request.class
            && existing.mode == request.mode
            && existing.bind_row == request.bind_row
            && existing.bidx_col.is_some() == request.blind_index;
        if !same {
            raise(Error::AlreadyProtected {
                column: &ident(&request.col),
                table: &table.sql,
            });
        }
        if existing.migrating && request.migrate {
            migrate_finish(&table);
        }
        return state_of(&table, &request.col);
    }
    let (att, plain, bidx) = checked(&table, &request);
    let class = classes::parse(&request.class);
    privileges::require(Privilege::Seal, Some(class));
    // What protect finds in the table decides what it does (an empty bytea-mode column
    // changes type with every value NULL): writers wait until it is done, a transaction still
    // writing is waited for first. Bytea mode changes the column's type, so it takes at once
    // the lock it would take then; jsonb mode needs writers out until the trigger is in place.
    table.run(&format!(
        "LOCK TABLE ONLY {} IN {} MODE",
        table.sql,
        match request.mode {
            Mode::Bytea | Mode::Text => "ACCESS EXCLUSIVE",
            Mode::Jsonb => "SHARE ROW EXCLUSIVE",
        }
    ));
    if matches!(request.mode, Mode::Jsonb | Mode::Text) {
        // Nothing protect did not seal may pass for sealed: the trigger authenticates every
        // envelope written from now on, and the ones already there nobody authenticated.
        let found = envelopes_already_there(&table, &request.col, request.mode);
        if found > 0 {
            raise(Error::EnvelopesBeforeProtect {
                column: &ident(&request.col),
                table: &table.sql,
                count: found,
            });
        }
    }

    let populated = has_rows(&table);
    if populated {
        require_owner_seals(&table, class);
    }

    views::set_aside(&table);
    let col = ident(&request.col);
    let stored_type = match request.mode {
        Mode::Text => "pg_catalog.text",
        _ => "pg_catalog.bytea",
    };
    // A text column in text mode keeps its type: nothing to change.
    let retype = request.mode.is_scalar() && att.type_oid != request.mode.stored_type();
    let plain = match (request.mode, populated) {
        (Mode::Bytea | Mode::Text, false) => {
            // An empty table changes type at once and keeps the column's place.
            if retype {
                table.run(&format!(
                    "ALTER TABLE {} ALTER COLUMN {col} TYPE {stored_type} USING NULL",
                    table.sql
                ));
            }
            None
        }
        (Mode::Bytea | Mode::Text, true) if request.migrate => {
            // Migrated at once, under this lock: the column changes type in place, keeping
            // its place in the table (and the view), its values becoming their text (UTF-8
            // bytes in bytea mode), which the migration below has the trigger seal before
            // anyone else can read it.
            if retype {
                let as_text = format!("{col}::pg_catalog.text");
                table.run(&format!(
                    "ALTER TABLE {} ALTER COLUMN {col} TYPE {stored_type} USING {}",
                    table.sql,
                    match request.mode {
                        Mode::Text => as_text,
                        _ => format!("akko_crypt.utf8_bytes({as_text})"),
                    }
                ));
            }
            None
        }
        (Mode::Bytea | Mode::Text, true) => {
            // Only catalog changes: the plaintext stays in the renamed column until migrated.
            // The sealed column is added last, so it moves to the end of the table.
            let plain = plain.expect("bytea mode names a plaintext column");
            table.run(&format!(
                "ALTER TABLE {} RENAME COLUMN {col} TO {}",
                table.sql,
                ident(&plain)
            ));
            if att.not_null {
                table.run(&format!(
                    "ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL",
                    table.sql,
                    ident(&plain)
                ));
            }
            table.run(&format!(
                "ALTER TABLE {} ADD COLUMN {col} {stored_type}",
                table.sql
            ));
            Some(plain)
        }
        (Mode::Jsonb, _) => None,
    };
    if let Some(bidx) = &bidx {
        table.run(&format!(
            "ALTER TABLE {} ADD COLUMN {} pg_catalog.bytea",
            table.sql,
            ident(bidx)
        ));
        table.run(&format!(
            "CREATE {}INDEX ON {} ({})",
            if request.unique_index { "UNIQUE " } else { "" },
            table.sql,
            ident(bidx)
        ));
    }
    let binding_id = akko_crypt_core::column::new_binding_id()
        .unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
    registry::insert(&ProtectedColumn {
        tbl,
        col: request.col.clone(),
        class: request.class.clone(),
        mode: request.mode,
        original_type: att.type_oid,
        original_typmod: att.typmod,
        binding_id,
        bind_row: request.bind_row,
        bidx_key_version: bidx
            .is_some()
            .then(|| keyring::active_version(classes::blind_index()) as i32),
        bidx_normalize: bidx.is_some().then(|| request.normalization.clone()),
        bidx_col: bidx.clone(),
        restore_not_null: att.not_null && plain.is_some(),
        plain_col: plain.clone(),
        migrating: true,
        migrated: 0,
    });
    install_trigger(&table);
    if let (Some(bidx), Some(plain), true) = (&bidx, &plain, request.unique_index) {
        unique_while_migrating(&table, &request.col, bidx, plain);
    }
    if request.migrate {
        migrate_finish(&table);
    } else {
        // An interrupted migration of the table's other columns walks it again for this one.
        runs::walk_again(Job::Migrate, tbl);
    }
    views::rebuild(&table);
    state_of(&table, &request.col)
}

fn state_of(table: &Table, col: &str) -> String {
    match registry::column(table.oid, col) {
        Some(p) if p.migrating => "migrating".into(),
        Some(_) => "protected".into(),
        None => raise(Error::NotProtected {
            column: &ident(col),
            table: &table.sql,
        }),
    }
}

/// The indexes of `table` that use its column `col`, qualified and quoted.
fn indexes_on(table: &Table, col: &str) -> Vec<String> {
    read_row(
        "look up the column's indexes",
        "SELECT pg_catalog.array_agg(pg_catalog.format('%I.%I', n.nspname, c.relname)) \
         FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attname = $2::pg_catalog.name \
         WHERE i.indrelid = $1 AND EXISTS (SELECT FROM pg_catalog.pg_depend d \
             WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = i.indexrelid \
               AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum)",
        &[table.oid.into(), col.into()],
        |row| row.get::<Vec<String>>(1),
    )
    .flatten()
    .unwrap_or_default()
}

fn unprotect(args: &Args) {
    let tbl = args.oid(0, "tbl");
    let col = args.name(1, "col");
    let table = protectable(tbl);
    let p = registry::column(tbl, &col).unwrap_or_else(|| {
        raise(Error::NotProtected {
            column: &ident(&col),
            table: &table.sql,
        })
    });
    if !column_exists(&table, &p.col) {
        // Dropped since (DROP COLUMN ... CASCADE): there is nothing to open, only the
        // protection to forget, so that writes to the table work again.
        views::set_aside(&table);
        registry::delete(tbl, &col);
        install_trigger(&table);
        views::rebuild(&table);
        return;
    }
    // Opening the values back needs the right to open them, and hands them in clear to the
    // table's owner, who must be allowed to read them: else an owner could fill the column
    // with envelopes copied from elsewhere (its trigger disabled) and have them opened.
    let class = sealing::value_class(&p.class);
    privileges::require(Privilege::Open, Some(class));
    // Rebuilding an index or checking a constraint over the plaintext would quote values in
    // its errors (a duplicate key names both).
    if let Some(blocker) = blocker(&table, attribute(&table, &p.col).attnum) {
        raise(Error::ColumnUsedBy {
            column: &ident(&p.col),
            table: &table.sql,
            blocker: &blocker,
            protecting: false,
        });
    }
    if !privileges::held_by(table.owner, Privilege::Open, Some(class)) {
        raise(Error::OwnerMayNotOpen {
            column: &ident(&p.col),
            table: &table.sql,
            class: class.as_str(),
        });
    }
    views::set_aside(&table);
    if let Some(plain) = &p.plain_col {
        // The migration's second unique index (over the plaintext column, which goes) would
        // be rebuilt by the rewrite below, after its column has left the registry.
        for index in indexes_on(&table, plain) {
            table.run(&format!("DROP INDEX {index}"));
        }
    }
    registry::delete(tbl, &col);
    install_trigger(&table);
    match p.mode {
        Mode::Bytea | Mode::Text => {
            table.run_over_plaintext(&format!(
                "ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}",
                table.sql,
                ident(&p.col),
                type_sql(p.original_type, p.original_typmod),
                read_expression(&table, &p, "")
            ));
            drop_plain_column(&table, &p);
        }
        Mode::Jsonb => {
            table.run_over_plaintext(&format!(
                "UPDATE ONLY {} SET {1} = {2} WHERE {1} IS NOT NULL",
                table.sql,
                ident(&p.col),
                read_expression(&table, &p, "")
            ));
        }
    }
    if let Some(bidx) = &p.bidx_col {
        table.run(&format!(
            "ALTER TABLE {} DROP COLUMN {}",
            table.sql,
            ident(bidx)
        ));
    }
    views::rebuild(&table);
}

/// The type a restored column held: one the caller may use, and no pseudo-type.
fn require_original_type(type_oid: pg_sys::Oid) {
    let usable = read_row(
        "look up the type",
        "SELECT t.typtype <> 'p' AND has_type_privilege(t.oid, 'USAGE') FROM pg_type t WHERE t.oid = $1",
        &[type_oid.into()],
        |row| row.get_one::<bool>(),
    )
    .flatten()
    .unwrap_or(false);
    if !usable {
        raise(Error::RestoredTypeUnusable {
            type_name: &crate::pg::sql::type_display(type_oid, -1),
        });
    }
}

/// A column of `table` that `p`'s protection needs, of type `wanted`.
fn require_column(table: &Table, col: &str, wanted: pg_sys::Oid) {
    let att = attribute(table, col);
    if att.type_oid != wanted {
        raise(Error::ColumnTypeNotAsProtected {
            column: &ident(col),
            table: &table.sql,
            wanted: &crate::pg::sql::type_display(wanted, -1),
        });
    }
}

/// Registers again the protected columns of a table restored without the registry (from a
/// table-level or schema-only dump), from what its trigger carries, after the checks that
/// protect makes; returns how many it registered (none when the registry has them).
fn restore_protection(args: &Args) -> i32 {
    let table = owned_protectable(args.oid(0, "tbl"));
    registry::forget_dropped_tables();
    table.run(&format!(
        "LOCK TABLE ONLY {} IN SHARE ROW EXCLUSIVE MODE",
        table.sql
    ));
    let carried = registry::trigger_arguments(table.oid)
        .filter(|carried| !carried.is_empty())
        .unwrap_or_else(|| raise(Error::NothingToRestore { table: &table.sql }));
    if !registry::columns_of(table.oid).is_empty() {
        if registry::disagreements(table.oid, &carried).is_empty() {
            return 0;
        }
        raise(Error::RegistryDiffersFromTrigger { table: &table.sql });
    }
    if in_inheritance(&table) {
        raise(Error::TableInInheritance {
            table: &table.sql,
            migrates: false,
        });
    }
    let mut columns = registry::carried_columns(table.oid, &carried);
    for p in &mut columns {
        let class = classes::parse(&p.class);
        if class.as_str() == classes::BLIND_INDEX {
            raise(Error::UnknownClass {
                class: class.as_str(),
            });
        }
        classes::require_registered(class);
        privileges::require(Privilege::Seal, Some(class));
        require_owner_seals(&table, class);
        require_original_type(p.original_type);
        let att = attribute(&table, &p.col);
        let stored_as = p.mode.stored_type();
        if att.type_oid != stored_as {
            raise(Error::ColumnTypeNotAsProtected {
                column: &ident(&p.col),
                table: &table.sql,
                wanted: &crate::pg::sql::type_display(stored_as, -1),
            });
        }
        // What protect refuses (a generated value would replace the sealed one).
        if att.identity_or_generated || generated_from(&table, att.attnum).is_some() {
            raise(Error::RestoredGeneratedColumn {
                column: &ident(&p.col),
                table: &table.sql,
            });
        }
        if let Some(bidx) = &p.bidx_col {
            require_column(&table, bidx, pg_sys::BYTEAOID);
            // Its blind-index key lets whoever holds the column test guesses against the
            // table's stored blind indexes, which needs the right to open.
            privileges::require(Privilege::Open, Some(class));
            let normalization = p.bidx_normalize.as_deref().unwrap_or("none");
            if akko_crypt_core::column::Normalization::parse(normalization).is_none() {
                raise(Error::BadNormalization {
                    name: normalization,
                });
            }
            let version = p.bidx_key_version.unwrap_or(1);
            if !registry::blind_index_version_exists(version) {
                if has_rows(&table) {
                    raise(Error::BlindIndexKeyMissing {
                        column: &ident(&p.col),
                        table: &table.sql,
                        version,
                    });
                }
                // An empty table restored into a database without that key: the current one.
                p.bidx_key_version = Some(keyring::active_version(classes::blind_index()) as i32);
            }
        }
        if let Some(plain) = &p.plain_col {
            attribute(&table, plain);
        }
        if p.bind_row && !has_primary_key(&table) {
            raise(Error::RowBindingNeedsPrimaryKey { table: &table.name });
        }
        if let Some(other) = registry::binding_user(&p.binding_id, table.oid) {
            raise(Error::BindingInUse {
                column: &ident(&p.col),
                table: &table.sql,
                other: &crate::pg::sql::relation_name(other),
            });
        }
        registry::insert(p);
    }
    install_trigger(&table);
    // The table's decrypting views, if the restore brought them, are akko_crypt's again:
    // rebuilt now, and by refresh_views after the next ALTER TABLE.
    let caller = crate::pg::unguarded::user_id();
    for (schema, name, view) in registry::restored_views(table.oid, [table.owner, caller]) {
        registry::register_view(&schema, &name, table.oid);
        registry::remember_view(&schema, &name, view);
    }
    views::rebuild(&table);
    columns.len() as i32
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_protect(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    text_datum(&pinned(|| protect(&Args::new(fcinfo))))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_unprotect(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    pinned(|| unprotect(&Args::new(fcinfo)));
    pg_sys::Datum::from(0)
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_restore_protection(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(pinned(|| restore_protection(&Args::new(fcinfo))))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_protection_disagreements(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let tbl = Args::new(fcinfo).oid(0, "tbl");
    match pinned(|| crate::tables::spec::disagreements(tbl)) {
        Some(columns) => columns.into_datum().unwrap_or(pg_sys::Datum::from(0)),
        None => {
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0)
        }
    }
}

/// Used only by sql/akko_crypt--0.2.0--0.3.0.sql.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_upgrade_install_trigger(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let tbl = Args::new(fcinfo).oid(0, "tbl");
    pinned(|| install_trigger(&Table::owned(tbl)));
    pg_sys::Datum::from(0)
}
