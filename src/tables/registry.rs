//! The registries of protected columns and decrypting views, and every read and write of
//! them. Only the extension writes them (as its owner, after checking that the caller owns
//! the table and holds the privilege to protect it), so what they hold is what akko_crypt
//! put there; and every name or type they hold reaches generated SQL only as a quoted
//! identifier or through the catalog (a regtype, rendered by `format_type`), never as text
//! pasted in.

use akko_crypt_core::column::BindingId;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::as_owner;
use crate::pg::majors::parse_type_string;

extension_sql!(
    r#"
-- Columns that akko_crypt.protect keeps sealed. pg_dump carries it, so a restored database
-- keeps its protected columns; nobody but the extension writes it.
CREATE TABLE protected_columns (
    tbl              regclass NOT NULL,
    col              name NOT NULL,
    class            text NOT NULL REFERENCES data_class (name),
    mode             text NOT NULL CHECK (mode IN ('bytea', 'text', 'jsonb')),
    original_type    regtype NOT NULL,
    original_typmod  integer NOT NULL DEFAULT -1,
    binding_id       bytea NOT NULL UNIQUE CHECK (length(binding_id) = 16),
    bind_row         boolean NOT NULL DEFAULT false,
    bidx_col         name,
    bidx_key_version integer,
    bidx_normalize   text CHECK (bidx_normalize IN ('none', 'lower', 'trim_lower')),
    plain_col        name,
    restore_not_null boolean NOT NULL DEFAULT false,
    state            text NOT NULL CHECK (state IN ('migrating', 'protected')),
    migrated         bigint NOT NULL DEFAULT 0,
    protected_at     timestamptz NOT NULL DEFAULT now(),
    migrated_at      timestamptz,
    PRIMARY KEY (tbl, col)
);
COMMENT ON TABLE protected_columns IS
    'Columns that akko_crypt.protect keeps sealed, how, and whether they still migrate (a migration''s progress is in batch_runs)';
COMMENT ON COLUMN protected_columns.original_type IS 'The column''s type before protect (with original_typmod); the decrypting view casts back to it';
COMMENT ON COLUMN protected_columns.binding_id IS 'Random id that row-bound values are bound to, with the row''s primary key';
COMMENT ON COLUMN protected_columns.plain_col IS 'While a bytea-mode column migrates: the renamed column that still holds plaintext';
SELECT pg_catalog.pg_extension_config_dump('protected_columns', '');

CREATE TABLE decrypted_views (
    view_schema name NOT NULL,
    view_name   name NOT NULL,
    tbl         regclass NOT NULL,
    view_oid    oid,
    view_owner  name,
    view_grants jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (view_schema, view_name)
);
COMMENT ON TABLE decrypted_views IS
    'Views made by akko_crypt.create_view; akko_crypt.refresh_views rebuilds them, keeping their owner and grants';
COMMENT ON COLUMN decrypted_views.view_oid IS 'The view akko_crypt built last: only it (or, after a restore, a view with akko_crypt''s comment and the owner below) is ever dropped';
COMMENT ON COLUMN decrypted_views.view_grants IS 'The view''s grants when it was last set aside: [{"grantee": role name or null for PUBLIC, "privilege": ..., "grantable": ...}]';
SELECT pg_catalog.pg_extension_config_dump('decrypted_views', '');

REVOKE ALL ON protected_columns, decrypted_views FROM PUBLIC;
"#,
    name = "registry",
    requires = ["keyring"]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The column becomes bytea holding envelopes; plaintext is its original type's text.
    Bytea,
    /// The column becomes (or stays) text holding `$akko:` envelopes; plaintext is written
    /// as its original type's text, so applications keep writing the table as before.
    Text,
    /// A jsonb column stays jsonb holding `{"$akko": ...}` envelopes.
    Jsonb,
}

impl Mode {
    pub fn parse(name: &str) -> Option<Mode> {
        match name {
            "bytea" => Some(Mode::Bytea),
            "text" => Some(Mode::Text),
            "jsonb" => Some(Mode::Jsonb),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bytea => "bytea",
            Mode::Text => "text",
            Mode::Jsonb => "jsonb",
        }
    }

    /// The type the column holds its envelopes in.
    pub fn stored_type(self) -> pg_sys::Oid {
        match self {
            Mode::Bytea => pg_sys::BYTEAOID,
            Mode::Text => pg_sys::TEXTOID,
            Mode::Jsonb => pg_sys::JSONBOID,
        }
    }

    /// Whether values are sealed as their original type's text, read back in that type,
    /// and may have a blind index (every mode but jsonb's).
    pub fn is_scalar(self) -> bool {
        self != Mode::Jsonb
    }
}

/// One row of `akko_crypt.protected_columns`.
#[derive(Debug, Clone)]
pub struct ProtectedColumn {
    pub tbl: pg_sys::Oid,
    pub col: String,
    pub class: String,
    pub mode: Mode,
    pub original_type: pg_sys::Oid,
    pub original_typmod: i32,
    pub binding_id: BindingId,
    pub bind_row: bool,
    pub bidx_col: Option<String>,
    pub bidx_key_version: Option<i32>,
    pub bidx_normalize: Option<String>,
    pub plain_col: Option<String>,
    pub restore_not_null: bool,
    pub migrating: bool,
    pub migrated: i64,
}

const COLUMNS: &str = "tbl::oid, col::text, class, mode, original_type::oid, original_typmod, \
    binding_id, bind_row, bidx_col::text, bidx_key_version, bidx_normalize, plain_col::text, \
    restore_not_null, state = 'migrating', migrated";

fn read_columns(filter: &str, args: &[DatumWithOid<'_>]) -> Vec<ProtectedColumn> {
    let query =
        format!("SELECT {COLUMNS} FROM akko_crypt.protected_columns WHERE {filter} ORDER BY col");
    as_owner(|| {
        Spi::connect(|client| {
            client
                .select(&query, None, args)?
                .map(|row| {
                    let binding: Vec<u8> = row.get(7)?.unwrap_or_default();
                    Ok(ProtectedColumn {
                        tbl: row.get(1)?.unwrap_or(pg_sys::InvalidOid),
                        col: row.get(2)?.unwrap_or_default(),
                        class: row.get(3)?.unwrap_or_default(),
                        mode: row
                            .get::<String>(4)?
                            .as_deref()
                            .and_then(Mode::parse)
                            .unwrap_or(Mode::Bytea),
                        original_type: row.get(5)?.unwrap_or(pg_sys::InvalidOid),
                        original_typmod: row.get(6)?.unwrap_or(-1),
                        binding_id: binding.try_into().unwrap_or_else(|b: Vec<u8>| {
                            raise(Error::BadBindingId { len: b.len() })
                        }),
                        bind_row: row.get(8)?.unwrap_or(false),
                        bidx_col: row.get(9)?,
                        bidx_key_version: row.get(10)?,
                        bidx_normalize: row.get(11)?,
                        plain_col: row.get(12)?,
                        restore_not_null: row.get(13)?.unwrap_or(false),
                        migrating: row.get(14)?.unwrap_or(false),
                        migrated: row.get(15)?.unwrap_or(0),
                    })
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.protected_columns", e))
    })
    .into_iter()
    .inspect(require_original_type)
    .collect()
}

/// Raises 42704 when the type a column held before protect has been dropped since (nothing
/// in the catalog ties the two): every use of the column needs it.
fn require_original_type(p: &ProtectedColumn) {
    // SAFETY: a syscache existence test of an OID key: false for a type that is gone.
    let exists = unsafe {
        pg_sys::SearchSysCacheExists(
            pg_sys::SysCacheIdentifier::TYPEOID as i32,
            pg_sys::Datum::from(p.original_type),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    };
    if !exists {
        let table = crate::pg::sql::relation_name(p.tbl);
        raise(Error::OriginalTypeMissing {
            table: &table,
            column: &p.col,
            type_oid: p.original_type.to_u32(),
        });
    }
}

/// The protected columns of table `tbl`, in column name order.
pub fn columns_of(tbl: pg_sys::Oid) -> Vec<ProtectedColumn> {
    read_columns("tbl = $1", &[tbl.into()])
}

pub fn column(tbl: pg_sys::Oid, col: &str) -> Option<ProtectedColumn> {
    read_columns("tbl = $1 AND col = $2::name", &[tbl.into(), col.into()])
        .into_iter()
        .next()
}

/// What a protected column's trigger carries of it, as one JSON object: every setting, and
/// whether it still migrates, but not how far. The trigger's arguments travel with the table in every dump,
/// the registry only in a full one, so the trigger refuses to write unless the two agree,
/// and `restore_protection` rebuilds the registry from them. The type is kept by name, to
/// be parsed back on restore; it is not compared, so renaming a type changes nothing.
const CARRIED: &str = "pg_catalog.jsonb_build_object('column', col, 'class', class, 'mode', mode, \
    'type', pg_catalog.format_type(original_type, original_typmod), \
    'binding_id', pg_catalog.encode(binding_id, 'hex'), 'bind_row', bind_row, \
    'blind_index', bidx_col, 'blind_index_key_version', bidx_key_version, \
    'normalization', bidx_normalize, 'plaintext_column', plain_col, \
    'restore_not_null', restore_not_null, 'migrating', state = 'migrating')";

/// The trigger arguments that carry the protected columns of `tbl`, in column name order,
/// each quoted as an SQL literal.
pub fn carried_arguments(tbl: pg_sys::Oid) -> Vec<String> {
    as_owner(|| {
        crate::pg::spi::read_one::<Vec<String>>(
            "read akko_crypt.protected_columns",
            &format!(
                "SELECT coalesce(array_agg(pg_catalog.quote_literal({CARRIED}::text) ORDER BY col), '{{}}') \
                 FROM akko_crypt.protected_columns WHERE tbl = $1"
            ),
            &[tbl.into()],
        )
    })
    .unwrap_or_default()
}

/// The OID of akko_crypt.protect_row(), the function of every sealing trigger.
pub fn protect_row_function() -> pg_sys::Oid {
    crate::pg::spi::read_one::<pg_sys::Oid>(
        "look up akko_crypt.protect_row()",
        "SELECT pg_catalog.to_regprocedure('akko_crypt.protect_row()')::pg_catalog.oid",
        &[],
    )
    .unwrap_or(pg_sys::InvalidOid)
}

/// The arguments of the sealing trigger of `tbl` as pg_trigger holds them now (no lock on
/// the table: status() must not wait for a migration), None when it has none.
pub fn trigger_arguments(tbl: pg_sys::Oid) -> Option<Vec<String>> {
    let args = crate::pg::spi::read_one::<Vec<u8>>(
        "read the table's trigger",
        "SELECT g.tgargs FROM pg_catalog.pg_trigger g WHERE g.tgrelid = $1 \
            AND g.tgname = 'zz_akko_crypt_protect' \
            AND g.tgfoid = pg_catalog.to_regprocedure('akko_crypt.protect_row()')",
        &[tbl.into()],
    )?;
    // Each argument ends in a NUL.
    Some(
        args.split(|&b| b == 0)
            .take(args.iter().filter(|&&b| b == 0).count())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// What stands for trigger arguments that are not what akko_crypt writes (a trigger made by
/// hand): they agree with nothing.
const UNREADABLE: &str = "(arguments not written by akko_crypt)";

/// The columns on which the registry and the arguments `carried` by the trigger of `tbl`
/// disagree (one of them lacks the column, or holds other settings for it), in name order.
pub fn disagreements(tbl: pg_sys::Oid, carried: &[String]) -> Vec<String> {
    let query = format!(
        "WITH registered AS (SELECT col::text, {CARRIED} - 'type' AS settings \
                               FROM akko_crypt.protected_columns WHERE tbl = $1), \
              carried AS (SELECT coalesce(a::jsonb ->> 'column', '{UNREADABLE}') AS col, \
                                 CASE WHEN pg_catalog.jsonb_typeof(a::jsonb) = 'object' THEN a::jsonb - 'type' END AS settings \
                            FROM pg_catalog.unnest($2::text[]) a) \
         SELECT coalesce(array_agg(coalesce(r.col, c.col) ORDER BY coalesce(r.col, c.col)), '{{}}') \
         FROM registered r FULL JOIN carried c ON c.col = r.col \
         WHERE r.settings IS DISTINCT FROM c.settings OR c.settings IS NULL"
    );
    // Arguments that are no JSON at all raise an error: they agree with nothing either. Run
    // as a query that may write, so that it sees what this statement wrote before: a
    // subtransaction has no transaction id yet, and a read-only query would read with the
    // statement's snapshot.
    crate::pg::sql::in_subtransaction(|| {
        as_owner(|| {
            Spi::connect_mut(|client| {
                client
                    .update(&query, Some(1), &[tbl.into(), carried.to_vec().into()])?
                    .first()
                    .get_one::<Vec<String>>()
            })
        })
        .unwrap_or_else(|e| {
            errors::catalog_query_failed(
                "compare akko_crypt.protected_columns with the table's trigger",
                e,
            )
        })
        .unwrap_or_default()
    })
    .unwrap_or_else(|_| vec![UNREADABLE.to_owned()])
}

/// The protected columns that the trigger arguments `carried` describe, for `tbl`, with
/// their original types parsed from their names (never executed).
pub fn carried_columns(tbl: pg_sys::Oid, carried: &[String]) -> Vec<ProtectedColumn> {
    let rows: Vec<CarriedRow> = as_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT c ->> 'column', c ->> 'class', c ->> 'mode', c ->> 'type', \
                            pg_catalog.decode(c ->> 'binding_id', 'hex'), (c ->> 'bind_row')::boolean, \
                            c ->> 'blind_index', (c ->> 'blind_index_key_version')::integer, \
                            c ->> 'normalization', c ->> 'plaintext_column', \
                            coalesce((c ->> 'restore_not_null')::boolean, false), \
                            coalesce((c ->> 'migrating')::boolean, true) \
                     FROM (SELECT a::jsonb AS c FROM pg_catalog.unnest($1::text[]) a) s",
                    None,
                    &[carried.to_vec().into()],
                )?
                .map(|row| {
                    Ok(CarriedRow {
                        col: row.get(1)?.unwrap_or_default(),
                        class: row.get(2)?.unwrap_or_default(),
                        mode: row.get(3)?.unwrap_or_default(),
                        type_name: row.get(4)?.unwrap_or_default(),
                        binding_id: row.get(5)?.unwrap_or_default(),
                        bind_row: row.get(6)?.unwrap_or(false),
                        bidx_col: row.get(7)?,
                        bidx_key_version: row.get(8)?,
                        bidx_normalize: row.get(9)?,
                        plain_col: row.get(10)?,
                        restore_not_null: row.get(11)?.unwrap_or(false),
                        migrating: row.get(12)?.unwrap_or(true),
                    })
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the table's trigger", e))
    });
    rows.into_iter()
        .map(|r| {
            let (original_type, original_typmod) =
                type_from_name(&r.type_name).unwrap_or_else(|| {
                    raise(Error::CarriedTypeUnknown {
                        column: &r.col,
                        type_name: &r.type_name,
                    })
                });
            ProtectedColumn {
                tbl,
                mode: Mode::parse(&r.mode)
                    .unwrap_or_else(|| raise(Error::BadMode { name: &r.mode })),
                binding_id: r
                    .binding_id
                    .try_into()
                    .unwrap_or_else(|b: Vec<u8>| raise(Error::BadBindingId { len: b.len() })),
                col: r.col,
                class: r.class,
                original_type,
                original_typmod,
                bind_row: r.bind_row,
                bidx_col: r.bidx_col,
                bidx_key_version: r.bidx_key_version,
                bidx_normalize: r.bidx_normalize,
                migrating: r.migrating,
                plain_col: r.plain_col,
                restore_not_null: r.restore_not_null,
                migrated: 0,
            }
        })
        .collect()
}

struct CarriedRow {
    col: String,
    class: String,
    mode: String,
    type_name: String,
    binding_id: Vec<u8>,
    bind_row: bool,
    bidx_col: Option<String>,
    bidx_key_version: Option<i32>,
    bidx_normalize: Option<String>,
    plain_col: Option<String>,
    restore_not_null: bool,
    migrating: bool,
}

/// A table other than `tbl` whose protected column uses `binding_id`, in the registry or in
/// what its sealing trigger carries (trigger arguments anyone can read: a table restored
/// without its registry rows keeps its bindings all the same), if one does.
pub fn binding_user(binding_id: &BindingId, tbl: pg_sys::Oid) -> Option<pg_sys::Oid> {
    as_owner(|| {
        crate::pg::spi::read_one::<pg_sys::Oid>(
            "read akko_crypt.protected_columns",
            "SELECT tbl::oid FROM akko_crypt.protected_columns WHERE binding_id = $1 AND tbl <> $2 \
             UNION ALL \
             SELECT g.tgrelid FROM pg_catalog.pg_trigger g \
              WHERE g.tgfoid = pg_catalog.to_regprocedure('akko_crypt.protect_row()') AND g.tgrelid <> $2 \
                AND position(pg_catalog.convert_to(pg_catalog.encode($1, 'hex'), 'UTF8') IN g.tgargs) > 0 \
             LIMIT 1",
            &[binding_id.to_vec().into(), tbl.into()],
        )
    })
}

/// Whether `version` of the `blind_index` class is in the keyring and not destroyed.
pub fn blind_index_version_exists(version: i32) -> bool {
    as_owner(|| {
        crate::pg::spi::read_one::<bool>(
            "read the keyring",
            "SELECT EXISTS (SELECT FROM akko_crypt.keyring WHERE class = 'blind_index' \
                             AND version = $1 AND state <> 'destroyed')",
            &[version.into()],
        )
    })
    .unwrap_or(false)
}

fn write(what: &str, query: &str, args: &[DatumWithOid<'_>]) {
    as_owner(|| {
        Spi::run_with_args(query, args).unwrap_or_else(|e| errors::catalog_query_failed(what, e))
    });
}

/// Registers a column as protected.
pub fn insert(p: &ProtectedColumn) {
    write(
        "register the protected column",
        "INSERT INTO akko_crypt.protected_columns \
           (tbl, col, class, mode, original_type, original_typmod, binding_id, bind_row, bidx_col, \
            bidx_key_version, bidx_normalize, plain_col, restore_not_null, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                 CASE WHEN $14 THEN 'migrating' ELSE 'protected' END)",
        &[
            p.tbl.into(),
            p.col.as_str().into(),
            p.class.as_str().into(),
            p.mode.name().into(),
            p.original_type.into(),
            p.original_typmod.into(),
            p.binding_id.to_vec().into(),
            p.bind_row.into(),
            p.bidx_col.as_deref().into(),
            p.bidx_key_version.into(),
            p.bidx_normalize.as_deref().into(),
            p.plain_col.as_deref().into(),
            p.restore_not_null.into(),
            p.migrating.into(),
        ],
    );
}

pub fn delete(tbl: pg_sys::Oid, col: &str) {
    write(
        "unregister the protected column",
        "DELETE FROM akko_crypt.protected_columns WHERE tbl = $1 AND col = $2::name",
        &[tbl.into(), col.into()],
    );
}

/// Records a migration batch: `touched` more rows of the table's migrating columns sealed.
pub fn add_migrated(tbl: pg_sys::Oid, touched: i64) {
    write(
        "record the migration's progress",
        "UPDATE akko_crypt.protected_columns SET migrated = migrated + $2 \
          WHERE tbl = $1 AND state = 'migrating'",
        &[tbl.into(), touched.into()],
    );
}

pub fn mark_migrated(tbl: pg_sys::Oid, col: &str) {
    write(
        "record the end of the migration",
        "UPDATE akko_crypt.protected_columns \
            SET state = 'protected', plain_col = NULL, restore_not_null = false, migrated_at = now() \
          WHERE tbl = $1 AND col = $2::name",
        &[tbl.into(), col.into()],
    );
}

/// Tables in the registries (and the runs) that no longer exist; their rows are removed.
pub fn forget_dropped_tables() {
    write(
        "remove the rows of dropped tables",
        "WITH gone AS (DELETE FROM akko_crypt.decrypted_views d \
                       WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = d.tbl)), \
              gone_runs AS (DELETE FROM akko_crypt.batch_runs r \
                       WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = r.tbl)) \
         DELETE FROM akko_crypt.protected_columns p \
          WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl)",
        &[],
    );
}

/// One row of `akko_crypt.decrypted_views`.
pub struct DecryptedView {
    pub schema: String,
    pub name: String,
    pub oid: Option<pg_sys::Oid>,
    pub owner: Option<String>,
    pub grants: Vec<ViewGrant>,
}

pub struct ViewGrant {
    /// None for PUBLIC.
    pub grantee: Option<String>,
    pub privilege: String,
    pub grantable: bool,
}

/// The registered views of `tbl`, in name order.
pub fn views_of(tbl: pg_sys::Oid) -> Vec<DecryptedView> {
    type Row = (
        String,
        String,
        Option<pg_sys::Oid>,
        Option<String>,
        Vec<(Option<String>, String, bool)>,
    );
    let rows: Vec<Row> = as_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT d.view_schema::text, d.view_name::text, d.view_oid, d.view_owner::text, \
                            coalesce((SELECT array_agg(g.value ->> 'grantee') FROM jsonb_array_elements(d.view_grants) g), '{}'), \
                            coalesce((SELECT array_agg(g.value ->> 'privilege') FROM jsonb_array_elements(d.view_grants) g), '{}'), \
                            coalesce((SELECT array_agg((g.value ->> 'grantable')::boolean) FROM jsonb_array_elements(d.view_grants) g), '{}') \
                     FROM akko_crypt.decrypted_views d WHERE d.tbl = $1 ORDER BY 1, 2",
                    None,
                    &[tbl.into()],
                )?
                .map(|row| {
                    let grantees: Vec<Option<String>> = row.get(5)?.unwrap_or_default();
                    let privileges: Vec<Option<String>> = row.get(6)?.unwrap_or_default();
                    let grantable: Vec<Option<bool>> = row.get(7)?.unwrap_or_default();
                    let grants = grantees
                        .into_iter()
                        .zip(privileges)
                        .zip(grantable)
                        .map(|((g, p), o)| (g, p.unwrap_or_default(), o.unwrap_or(false)))
                        .collect();
                    Ok((
                        row.get(1)?.unwrap_or_default(),
                        row.get(2)?.unwrap_or_default(),
                        row.get(3)?,
                        row.get(4)?,
                        grants,
                    ))
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.decrypted_views", e))
    });
    rows.into_iter()
        .map(|(schema, name, oid, owner, grants)| DecryptedView {
            schema,
            name,
            oid,
            owner,
            grants: grants
                .into_iter()
                .map(|(grantee, privilege, grantable)| ViewGrant {
                    grantee,
                    privilege,
                    grantable,
                })
                .collect(),
        })
        .collect()
}

/// The table a registered view decrypts, if `schema`.`name` is registered.
pub fn view_table(schema: &str, name: &str) -> Option<pg_sys::Oid> {
    as_owner(|| {
        crate::pg::spi::read_one::<pg_sys::Oid>(
            "read akko_crypt.decrypted_views",
            "SELECT tbl::oid FROM akko_crypt.decrypted_views WHERE view_schema = $1::name AND view_name = $2::name",
            &[schema.into(), name.into()],
        )
    })
}

/// Views over `tbl` that a restore brought back without their registry rows: akko_crypt's
/// comment on them, owned by one of `owners` itself (not through membership: a superuser
/// is a member of every role), not registered. As (schema, name, OID).
pub fn restored_views(
    tbl: pg_sys::Oid,
    owners: [pg_sys::Oid; 2],
) -> Vec<(String, String, pg_sys::Oid)> {
    as_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT n.nspname::text, c.relname::text, c.oid \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE c.relkind = 'v' AND c.relowner IN ($2, $3) \
                       AND obj_description(c.oid, 'pg_class') LIKE 'Decrypting view of % made by akko_crypt.create_view%' \
                       AND EXISTS (SELECT FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
                                   WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = c.oid \
                                     AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1) \
                       AND NOT EXISTS (SELECT FROM akko_crypt.decrypted_views v \
                                       WHERE v.view_schema = n.nspname AND v.view_name = c.relname) \
                     ORDER BY 1, 2",
                    None,
                    &[tbl.into(), owners[0].into(), owners[1].into()],
                )?
                .map(|row| {
                    Ok((
                        row.get(1)?.unwrap_or_default(),
                        row.get(2)?.unwrap_or_default(),
                        row.get(3)?.unwrap_or(pg_sys::InvalidOid),
                    ))
                })
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("look up the restored views", e))
    })
}

pub fn register_view(schema: &str, name: &str, tbl: pg_sys::Oid) {
    write(
        "register the view",
        "INSERT INTO akko_crypt.decrypted_views (view_schema, view_name, tbl) VALUES ($1, $2, $3)",
        &[schema.into(), name.into(), tbl.into()],
    );
}

/// Remembers a view's OID, owner and grants, as they are in the catalog now: after it is
/// built, and before it is dropped.
pub fn remember_view(schema: &str, name: &str, view: pg_sys::Oid) {
    write(
        "remember the view's owner and grants",
        "UPDATE akko_crypt.decrypted_views d SET view_oid = $3, \
            view_owner = (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = $3), \
            view_grants = coalesce((SELECT jsonb_agg(jsonb_build_object( \
                              'grantee', (SELECT r.rolname FROM pg_roles r WHERE r.oid = a.grantee), \
                              'privilege', a.privilege_type, 'grantable', a.is_grantable)) \
                          FROM pg_class c, aclexplode(c.relacl) a \
                          WHERE c.oid = $3 AND a.grantee <> c.relowner), '[]') \
          WHERE d.view_schema = $1::name AND d.view_name = $2::name",
        &[schema.into(), name.into(), view.into()],
    );
}

v1_function_info!(
    pg_finfo_akko_upgrade_type_oid,
    pg_finfo_akko_upgrade_type_modifier
);

/// The type and modifier a type name written by `format_type` stands for, if it names one
/// type in this database: how the update from 0.2.0, which kept `original_type` as text,
/// and `restore_protection`, which reads it from a trigger's arguments, get a regtype and a
/// modifier. Parsed, never executed.
fn type_from_name(text: &str) -> Option<(pg_sys::Oid, i32)> {
    let c_text = std::ffi::CString::new(text).ok()?;
    let (mut oid, mut typmod) = (pg_sys::InvalidOid, -1);
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        // SAFETY: parse_type_string reads the NUL-terminated copy above and writes two locals;
        // its errors are caught by the PgTryBuilder around it.
        unsafe { parse_type_string(&c_text, &mut oid, &mut typmod) };
        Some((oid, typmod))
    }))
    .catch_others(|_| None)
    .execute()
}

/// For the update from 0.2.0: text that is not one type name stops it with 22023.
unsafe fn parse_stored_type(fcinfo: pg_sys::FunctionCallInfo) -> (pg_sys::Oid, i32) {
    let text = crate::pg::datum::Args::new(fcinfo).text(0, "original_type");
    type_from_name(&text).unwrap_or_else(|| raise(Error::StoredTypeUnreadable { text: &text }))
}

/// Used only by sql/akko_crypt--0.2.0--0.3.0.sql.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_upgrade_type_oid(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(parse_stored_type(fcinfo).0)
}

/// Used only by sql/akko_crypt--0.2.0--0.3.0.sql.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_upgrade_type_modifier(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(parse_stored_type(fcinfo).1)
}
