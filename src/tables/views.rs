//! Decrypting views: `create_view` and `refresh_views`, and the rebuild that protect,
//! migrate and unprotect do when a table's columns change.
//!
//! A view is built from the catalog and the registry alone, and only a relation that is
//! the registered view (a view over its table, owned by the role it was left with) is ever
//! dropped: a registry row never makes akko_crypt drop or replace anybody else's object.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::as_owner;
use crate::pg::datum::Args;
use crate::pg::spi::{read_one, read_row};
use crate::pg::sql::{ident, literal, pinned, primary_key, run, Table};
use crate::privileges::{self, Privilege};
use crate::tables::owned::protectable;
use crate::tables::reading::{opened_type, read_expression};
use crate::tables::registry::{self, DecryptedView, Mode, ProtectedColumn};

extension_sql!(
    r#"
CREATE FUNCTION create_view(tbl regclass, view_name name DEFAULT NULL) RETURNS regclass
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_create_view';
COMMENT ON FUNCTION create_view(regclass, name) IS
    'Creates <table>_decrypted: protected columns opened and cast back to their types, security_invoker, writable; refresh_views() rebuilds it after ALTER TABLE';
CREATE FUNCTION refresh_views() RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_refresh_views';
COMMENT ON FUNCTION refresh_views() IS
    'Rebuilds every decrypting view of a table the caller owns from its table''s current columns, keeping owner and grants; returns how many';
REVOKE ALL ON FUNCTION create_view(regclass, name), refresh_views() FROM PUBLIC;
"#,
    name = "views",
    requires = ["registry", "columns"]
);

v1_function_info!(pg_finfo_akko_create_view, pg_finfo_akko_refresh_views);

const PRIVILEGES: [&str; 7] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
];

fn view_sql(view: &DecryptedView) -> String {
    format!("{}.{}", ident(&view.schema), ident(&view.name))
}

fn role_exists(name: &str) -> bool {
    read_one::<bool>(
        "look up the role",
        "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1::name)",
        &[name.into()],
    )
    .unwrap_or(false)
}

/// The relation now at a registered view's name: its OID, and whether it is that view: a
/// view over the table that is the one akko_crypt built last, or (after a restore, which
/// gives it another OID) one with akko_crypt's comment, owned by the role the registry
/// last saw owning it.
fn relation_at(view: &DecryptedView, table: &Table) -> Option<(pg_sys::Oid, bool)> {
    read_row(
        "look up the view",
        "SELECT c.oid, c.relkind = 'v' \
                AND EXISTS (SELECT FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid \
                            WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = c.oid \
                              AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $3) \
                AND (c.oid = $5 \
                     OR obj_description(c.oid, 'pg_class') LIKE 'Decrypting view of % made by akko_crypt.create_view%' \
                        AND ($4::name IS NULL OR (SELECT rolname FROM pg_roles WHERE oid = c.relowner) = $4::name)) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1::name AND c.relname = $2::name",
        &[
            view.schema.as_str().into(),
            view.name.as_str().into(),
            table.oid.into(),
            view.owner.as_deref().into(),
            view.oid.unwrap_or(pg_sys::InvalidOid).into(),
        ],
        |row| Ok((row.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::InvalidOid), row.get::<bool>(2)?.unwrap_or(false))),
    )
}

/// Drops the table's registered views, remembering their owner and grants for the rebuild.
/// A view that other objects depend on (a user's view over it) is kept, emptied of every
/// reference to the table's columns, and replaced in place by the rebuild.
pub fn set_aside(table: &Table) {
    for view in registry::views_of(table.oid) {
        match relation_at(&view, table) {
            None => {}
            Some((oid, true)) => {
                registry::remember_view(&view.schema, &view.name, oid);
                match placeholder_columns(oid) {
                    Some(columns) => {
                        let target = view_sql(&view);
                        for rule in rules_of(oid) {
                            run(&format!("DROP RULE {} ON {target}", ident(&rule)));
                        }
                        // It still reads the table (so it stays known as the table's view),
                        // but no column: the column's type can change under it.
                        run(&format!(
                            "CREATE OR REPLACE VIEW {target} WITH (security_invoker = true) AS \
                             SELECT {columns} FROM {} AS t WHERE false",
                            table.sql
                        ));
                    }
                    None => {
                        run(&format!("DROP VIEW {}", view_sql(&view)));
                    }
                }
            }
            Some((_, false)) => pgrx::warning!(
                "akko_crypt: {} is not the decrypting view of {} that akko_crypt made; it is left as it is",
                view_sql(&view),
                table.sql
            ),
        }
    }
}

/// For a view that other objects depend on: its columns as typed NULLs (names, types,
/// modifiers and collations from the catalog); None when nothing depends on it.
fn placeholder_columns(view: pg_sys::Oid) -> Option<String> {
    if dependents_of(view).is_empty() {
        return None;
    }
    read_one::<String>(
        "read the view's columns",
        "SELECT string_agg(pg_catalog.format('NULL::%s%s AS %I', \
                    pg_catalog.format_type(a.atttypid, a.atttypmod), \
                    CASE WHEN a.attcollation <> 0 THEN pg_catalog.format(' COLLATE %I.%I', cn.nspname, co.collname) ELSE '' END, \
                    a.attname), ', ' ORDER BY a.attnum) \
         FROM pg_attribute a \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation \
         LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped",
        &[view.into()],
    )
}

/// The rules akko_crypt gave a view that are there.
fn rules_of(view: pg_sys::Oid) -> Vec<String> {
    read_one::<Vec<String>>(
        "look up the view's rules",
        "SELECT array_agg(r.rulename::text) FROM pg_rewrite r WHERE r.ev_class = $1 \
           AND r.rulename IN ('akko_crypt_insert', 'akko_crypt_update', 'akko_crypt_delete')",
        &[view.into()],
    )
    .unwrap_or_default()
}

/// What depends on a view (but its own rules), as PostgreSQL describes it; empty if nothing.
fn dependents_of(view: pg_sys::Oid) -> String {
    read_one::<String>(
        "look up what depends on the view",
        "SELECT string_agg(DISTINCT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ') \
         FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = $1 AND d.deptype = 'n' \
           AND NOT (d.classid = 'pg_rewrite'::regclass \
                    AND d.objid IN (SELECT r.oid FROM pg_rewrite r WHERE r.ev_class = $1))",
        &[view.into()],
    )
    .unwrap_or_default()
}

/// Rebuilds the table's registered views from its current columns; returns how many.
pub fn rebuild(table: &Table) -> i32 {
    set_aside(table);
    registry::views_of(table.oid)
        .iter()
        .filter(|view| build(table, view))
        .count() as i32
}

/// A column of the view.
struct ViewColumn {
    name: String,
    read: String,
    write: String,
    is_key: bool,
    generated: bool,
    always_identity: bool,
    default: Option<String>,
    /// Whether the type the view shows has an equality operator.
    has_equality: bool,
}

fn view_columns(table: &Table) -> Vec<ViewColumn> {
    let protected = registry::columns_of(table.oid);
    let hidden: Vec<&str> = protected
        .iter()
        .flat_map(|p| p.plain_col.iter().chain(p.bidx_col.iter()))
        .map(String::as_str)
        .collect();
    let key: Vec<i16> = primary_key(table.oid)
        .into_iter()
        .map(|(attnum, _)| attnum)
        .collect();
    // attnum, name, generated, identity kind, identity sequence, default expression, type
    type ColumnRow = (
        i16,
        String,
        bool,
        String,
        Option<String>,
        Option<String>,
        pg_sys::Oid,
    );
    let rows: Vec<ColumnRow> = Spi::connect(|client| {
        client
            .select(
                "SELECT a.attnum, a.attname::text, a.attgenerated <> '', a.attidentity::text, \
                        CASE WHEN a.attidentity <> '' THEN pg_get_serial_sequence($2, a.attname) END, \
                        CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END, a.atttypid \
                 FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
                 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                None,
                &[table.oid.into(), table.sql.as_str().into()],
            )?
            .map(|row| {
                Ok((
                    row.get(1)?.unwrap_or(0),
                    row.get(2)?.unwrap_or_default(),
                    row.get(3)?.unwrap_or(false),
                    row.get(4)?.unwrap_or_default(),
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?.unwrap_or(pg_sys::InvalidOid),
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .unwrap_or_else(|e| errors::catalog_query_failed("read the table's columns", e));
    // A protected column renamed since would otherwise show its envelopes as plain bytea.
    if let Some(missing) = protected
        .iter()
        .find(|p| !rows.iter().any(|(_, name, ..)| *name == p.col))
    {
        raise(Error::ProtectedColumnMissing {
            table: &table.name,
            column: &missing.col,
        });
    }
    // The view names the stored columns as they are: one of another type would be read
    // through whatever cast its owner made from it (their code, run by every reader).
    for p in &protected {
        let wanted = [
            Some((p.col.as_str(), p.mode.stored_type())),
            p.plain_col.as_deref().map(|plain| (plain, p.original_type)),
        ];
        for (col, type_oid) in wanted.into_iter().flatten() {
            if rows
                .iter()
                .any(|(_, name, .., stored_as)| name == col && *stored_as != type_oid)
            {
                raise(Error::ColumnTypeNotAsProtected {
                    column: &ident(col),
                    table: &table.sql,
                    wanted: &crate::pg::sql::type_display(type_oid, -1),
                });
            }
        }
    }
    rows.into_iter()
        .filter(|(_, name, ..)| !hidden.contains(&name.as_str()))
        .map(
            |(attnum, name, generated, identity, sequence, default, stored_as)| {
                let column = ident(&name);
                let p: Option<&ProtectedColumn> = protected.iter().find(|p| p.col == name);
                let shown_as = match p {
                    Some(p) if p.mode.is_scalar() => opened_type(table, p).0,
                    _ => stored_as,
                };
                ViewColumn {
                    // SAFETY: lookup_type_cache returns a valid, never-freed entry for an
                    // existing type OID (shown_as comes from the catalog) or raises through
                    // pgrx's guard.
                    has_equality: unsafe {
                        (*pg_sys::lookup_type_cache(shown_as, pg_sys::TYPECACHE_EQ_OPR as i32))
                            .eq_opr
                            != pg_sys::InvalidOid
                    },
                    read: p.map_or(format!("t.{column}"), |p| read_expression(table, p, "t.")),
                    write: match p.map(|p| p.mode) {
                        Some(Mode::Bytea) => {
                            format!("akko_crypt.utf8_bytes(NEW.{column}::pg_catalog.text)")
                        }
                        Some(Mode::Text) => format!("NEW.{column}::pg_catalog.text"),
                        _ => format!("NEW.{column}"),
                    },
                    is_key: key.contains(&attnum),
                    generated,
                    always_identity: identity == "a",
                    default: match sequence {
                        Some(sequence) => Some(format!(
                            "pg_catalog.nextval({}::pg_catalog.regclass)",
                            literal(&sequence)
                        )),
                        None => default,
                    },
                    name: column,
                }
            },
        )
        .collect()
}

/// Builds one registered view; false (with a warning) if its name is taken by another
/// relation.
fn build(table: &Table, view: &DecryptedView) -> bool {
    let target = view_sql(view);
    // Still there only when set_aside kept it for what depends on it: replaced in place.
    let kept = match relation_at(view, table) {
        None => None,
        Some((oid, true)) => Some(oid),
        Some((_, false)) => {
            pgrx::warning!("akko_crypt: {target} already exists and is not rebuilt");
            return false;
        }
    };
    let columns = view_columns(table);
    let select_list = columns
        .iter()
        .map(|c| format!("{} AS {}", c.read, c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let definition = format!(
        "VIEW {target} WITH (security_invoker = true) AS SELECT {select_list} FROM {} AS t",
        table.sql
    );
    match kept {
        None => {
            run(&format!("CREATE {definition}"));
        }
        Some(oid) => {
            // CREATE OR REPLACE keeps the columns' names, types and order, or refuses; the
            // view keeps its grants and the defaults set on it.
            if let Err(failure) = crate::pg::sql::in_subtransaction(|| {
                run(&format!("CREATE OR REPLACE {definition}"))
            }) {
                raise(Error::ViewKeptByDependents {
                    view: &target,
                    dependents: &dependents_of(oid),
                    reason: &failure.message,
                });
            }
        }
    }
    run(&format!(
        "COMMENT ON VIEW {target} IS {}",
        literal(&format!(
            "Decrypting view of {} made by akko_crypt.create_view; rebuild it with akko_crypt.refresh_views()",
            table.sql
        ))
    ));
    for column in &columns {
        if let Some(default) = &column.default {
            run(&format!(
                "ALTER VIEW {target} ALTER COLUMN {} SET DEFAULT {default}",
                column.name
            ));
        }
    }
    // Writable through rules, one set-based statement each, when rows have a key.
    let key_match = columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| format!("t.{0} = OLD.{0}", c.name))
        .collect::<Vec<_>>()
        .join(" AND ");
    if !key_match.is_empty() {
        let writable: Vec<&ViewColumn> = columns.iter().filter(|c| !c.generated).collect();
        let insert_columns = writable
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let insert_values = writable
            .iter()
            .map(|c| c.write.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let overriding = if writable.iter().any(|c| c.always_identity) {
            " OVERRIDING SYSTEM VALUE"
        } else {
            ""
        };
        // Only what the statement changed is written: OLD and NEW are the row as the view
        // read it, t the row as it is when the update takes it (READ COMMITTED re-reads a
        // row another transaction changed meanwhile), so a column this statement leaves alone
        // keeps what the other committed, and an untouched protected column its envelope.
        // Unchanged means equal and equal as text: text alone misses what a setting rounds
        // (extra_float_digits), equality alone what it does not tell (numeric's scale); a
        // type without equality is compared as text.
        let update_list = writable
            .iter()
            .filter(|c| !c.always_identity)
            .map(|c| {
                let equal = if c.has_equality {
                    format!("NEW.{0} IS NOT DISTINCT FROM OLD.{0} AND ", c.name)
                } else {
                    String::new()
                };
                format!(
                    "{0} = CASE WHEN {equal}NEW.{0}::pg_catalog.text IS NOT DISTINCT FROM OLD.{0}::pg_catalog.text \
                     THEN t.{0} ELSE {1} END",
                    c.name, c.write
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        run(&format!(
            "CREATE RULE akko_crypt_insert AS ON INSERT TO {target} DO INSTEAD \
             INSERT INTO {} AS t ({insert_columns}){overriding} VALUES ({insert_values}) RETURNING {select_list}",
            table.sql
        ));
        run(&format!(
            "CREATE RULE akko_crypt_update AS ON UPDATE TO {target} DO INSTEAD \
             UPDATE {} AS t SET {update_list} WHERE {key_match} RETURNING {select_list}",
            table.sql
        ));
        run(&format!(
            "CREATE RULE akko_crypt_delete AS ON DELETE TO {target} DO INSTEAD \
             DELETE FROM {} AS t WHERE {key_match} RETURNING {select_list}",
            table.sql
        ));
    }
    restore_owner_and_grants(&target, view);
    let oid = relation_at(view, table).map_or(pg_sys::InvalidOid, |(oid, _)| oid);
    registry::remember_view(&view.schema, &view.name, oid);
    true
}

fn restore_owner_and_grants(target: &str, view: &DecryptedView) {
    if let Some(owner) = &view.owner {
        // SAFETY: GetUserNameFromId with noerr false raises (through pgrx's guard) for a role
        // that is gone, and otherwise returns a palloc'd NUL-terminated name, copied at once.
        let current = unsafe {
            std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(
                crate::pg::unguarded::user_id(),
                false,
            ))
            .to_string_lossy()
            .into_owned()
        };
        if *owner != current {
            if role_exists(owner) {
                run(&format!("ALTER VIEW {target} OWNER TO {}", ident(owner)));
            } else {
                pgrx::warning!(
                    "akko_crypt: the owner of {target}, role {}, does not exist; it keeps owner {}",
                    ident(owner),
                    ident(&current)
                );
            }
        }
    }
    for grant in &view.grants {
        if !PRIVILEGES.contains(&grant.privilege.as_str()) {
            continue;
        }
        let grantee = match &grant.grantee {
            None => "PUBLIC".to_owned(),
            Some(role) if role_exists(role) => ident(role),
            Some(role) => {
                pgrx::warning!("akko_crypt: grant of {} on {target} to role {} not restored: the role does not exist", grant.privilege, ident(role));
                continue;
            }
        };
        run(&format!(
            "GRANT {} ON {target} TO {grantee}{}",
            grant.privilege,
            if grant.grantable {
                " WITH GRANT OPTION"
            } else {
                ""
            }
        ));
    }
}

/// The first `limit` bytes of `name` at most, cut at a character boundary.
fn cut(name: &str, limit: usize) -> &str {
    let mut end = name.len().min(limit);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn create_view(args: &Args) -> pg_sys::Oid {
    let table = protectable(args.oid(0, "tbl"));
    // A dropped table's rows would still claim the view's name.
    registry::forget_dropped_tables();
    let name = match args.opt_name(1) {
        Some(name) if name.is_empty() => raise(Error::EmptyViewName),
        Some(name) => name,
        None => format!("{}_decrypted", cut(&table.name, 53)),
    };
    match registry::view_table(&table.schema, &name) {
        None => {
            let exists = read_one::<bool>(
                "look up the view",
                "SELECT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                                WHERE n.nspname = $1::name AND c.relname = $2::name)",
                &[table.schema.as_str().into(), name.as_str().into()],
            )
            .unwrap_or(false);
            if exists {
                raise(Error::ViewNameTaken {
                    schema: &ident(&table.schema),
                    name: &ident(&name),
                });
            }
            registry::register_view(&table.schema, &name, table.oid);
        }
        Some(tbl) if tbl != table.oid => raise(Error::ViewDecryptsOtherTable {
            schema: &ident(&table.schema),
            name: &ident(&name),
        }),
        Some(_) => {}
    }
    rebuild(&table);
    read_one::<pg_sys::Oid>(
        "look up the view",
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1::name AND c.relname = $2::name",
        &[table.schema.as_str().into(), name.as_str().into()],
    )
    .unwrap_or_else(|| {
        raise(Error::ViewNameTaken {
            schema: &ident(&table.schema),
            name: &ident(&name),
        })
    })
}

fn refresh_views() -> i32 {
    privileges::require(Privilege::Protect, None);
    registry::forget_dropped_tables();
    let tables: Vec<pg_sys::Oid> = as_owner(|| {
        read_one::<Vec<pg_sys::Oid>>(
            "read akko_crypt.decrypted_views",
            "SELECT array_agg(DISTINCT d.tbl::oid) FROM akko_crypt.decrypted_views d",
            &[],
        )
    })
    .unwrap_or_default();
    tables
        .into_iter()
        .filter(|&tbl| {
            read_one::<bool>(
                "look up the table",
                "SELECT pg_has_role(c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = $1",
                &[tbl.into()],
            )
            .unwrap_or(false)
        })
        // One table's views that cannot be rebuilt (a view another role owns, a type
        // dropped since) leave the others to be rebuilt.
        .map(|tbl| {
            crate::pg::sql::in_subtransaction(|| rebuild(&Table::owned(tbl))).unwrap_or_else(
                |failure| {
                    let table = crate::pg::sql::relation_name(tbl);
                    pgrx::warning!(
                        "akko_crypt: the views of table {table} were not rebuilt: {}",
                        failure.message
                    );
                    0
                },
            )
        })
        .sum()
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_create_view(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(pinned(|| create_view(&Args::new(fcinfo))))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_refresh_views(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(pinned(refresh_views))
}
