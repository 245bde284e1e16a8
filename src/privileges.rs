//! akko_crypt's privileges: who may seal and open each data class, protect tables, unlock
//! from Vault, and administer keys. None is held by PUBLIC; superusers hold them all.
//!
//! They live in `akko_crypt.privileges`, which only the extension writes, and follow role
//! membership as PostgreSQL privileges do (a member of a role that holds one holds it too,
//! unless NOINHERIT). `grant_privilege` also grants EXECUTE on the functions the privilege
//! uses (and `revoke_privilege` takes back what no remaining privilege needs), so a role
//! reaches a function only with both; every function checks the privilege itself too.
//!
//! Checks run on every value sealed or opened, so each session keeps the privileges of its
//! current role, resolved once, until the table, a role's membership or a role's superuser
//! flag changes (cache invalidations tell).

use std::cell::{Cell, RefCell};
use std::ffi::CStr;
use std::rc::Rc;

use akko_crypt_core::ClassName;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{as_owner, audit, caller};
use crate::keys::classes;
use crate::pg::datum::Args;
use crate::pg::spi::read_one;
use crate::session_cache::{get_or_load, settle_at_transaction_ends, Generation, SessionCache};

extension_sql!(
    r#"
-- Who holds which akko_crypt privilege. class is NULL for every class (seal, open) and for
-- the privileges that have no class (protect, unlock, admin). Written only by
-- akko_crypt.grant_privilege and akko_crypt.revoke_privilege; pg_dump carries it.
CREATE TABLE privileges (
    grantee    regrole NOT NULL,
    privilege  text NOT NULL CHECK (privilege IN ('seal', 'open', 'protect', 'unlock', 'admin')),
    class      text REFERENCES data_class (name) ON DELETE CASCADE,
    granted_by regrole NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (grantee, privilege, class),
    CHECK (class IS NULL OR privilege IN ('seal', 'open'))
);
COMMENT ON TABLE privileges IS 'akko_crypt privileges of each role; change them with akko_crypt.grant_privilege and akko_crypt.revoke_privilege';
SELECT pg_catalog.pg_extension_config_dump('privileges', '');
REVOKE ALL ON privileges FROM PUBLIC;

CREATE FUNCTION grant_privilege(privilege text, grantee regrole, class text DEFAULT NULL)
    RETURNS boolean LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_grant_privilege';
COMMENT ON FUNCTION grant_privilege(text, regrole, text) IS
    'Grants an akko_crypt privilege (seal, open, protect, unlock, admin) to a role, for one data class or (NULL) all; returns false if it was held already';
CREATE FUNCTION revoke_privilege(privilege text, grantee regrole, class text DEFAULT NULL)
    RETURNS boolean LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_revoke_privilege';
COMMENT ON FUNCTION revoke_privilege(text, regrole, text) IS
    'Revokes an akko_crypt privilege granted with grant_privilege; returns false if the role did not hold it';
-- Keeps each role's EXECUTE and SELECT grants in step with its rows, however they change:
-- grant_privilege, revoke_privilege, or a restore of pg_dump's copy of the table.
CREATE FUNCTION privileges_changed() RETURNS trigger LANGUAGE c
    AS 'MODULE_PATHNAME', 'akko_privileges_changed';
CREATE TRIGGER grants_follow AFTER INSERT OR UPDATE OR DELETE ON privileges
    FOR EACH ROW EXECUTE FUNCTION privileges_changed();
REVOKE ALL ON FUNCTION grant_privilege(text, regrole, text), revoke_privilege(text, regrole, text),
    privileges_changed() FROM PUBLIC;
"#,
    name = "privileges",
    requires = ["keyring"]
);

v1_function_info!(
    pg_finfo_akko_grant_privilege,
    pg_finfo_akko_revoke_privilege,
    pg_finfo_akko_privileges_changed
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Seal,
    Open,
    Protect,
    Unlock,
    Admin,
}

impl Privilege {
    const ALL: [Privilege; 5] = [
        Privilege::Seal,
        Privilege::Open,
        Privilege::Protect,
        Privilege::Unlock,
        Privilege::Admin,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Privilege::Seal => "seal",
            Privilege::Open => "open",
            Privilege::Protect => "protect",
            Privilege::Unlock => "unlock",
            Privilege::Admin => "admin",
        }
    }

    fn parse(name: &str) -> Option<Privilege> {
        Privilege::ALL.into_iter().find(|p| p.name() == name)
    }

    fn per_class(self) -> bool {
        matches!(self, Privilege::Seal | Privilege::Open)
    }

    /// The objects a holder needs to reach: each is granted with the privilege, and revoked
    /// when no privilege of the role needs it any more.
    fn objects(self) -> &'static [&'static str] {
        match self {
            Privilege::Seal => &[
                "FUNCTION akko_crypt.seal_pii(jsonb, text, bytea, text)",
                "PROCEDURE akko_crypt.reencrypt(regclass, name, integer, text, bigint)",
                "FUNCTION akko_crypt.reencrypt_start(oid, text, integer, text)",
                "FUNCTION akko_crypt.reencrypt_step(bigint)",
                "FUNCTION akko_crypt.migrating_blind_index(regclass, name, anyelement)",
                "TABLE akko_crypt.batch_runs",
            ],
            Privilege::Open => &[
                "FUNCTION akko_crypt.open_pii(bytea, bytea)",
                "FUNCTION akko_crypt.open_pii(jsonb, bytea)",
                "FUNCTION akko_crypt.open_text(bytea, bytea)",
                "FUNCTION akko_crypt.open_value(bytea, bytea, anyelement)",
                "FUNCTION akko_crypt.blind_index(text, regclass, name)",
            ],
            Privilege::Protect => &[
                "FUNCTION akko_crypt.protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean)",
                "FUNCTION akko_crypt.unprotect(regclass, name)",
                "FUNCTION akko_crypt.restore_protection(regclass)",
                "FUNCTION akko_crypt.create_view(regclass, name)",
                "FUNCTION akko_crypt.refresh_views()",
                "PROCEDURE akko_crypt.migrate(regclass, integer, bigint)",
                "FUNCTION akko_crypt.migrate_start(regclass, integer)",
                "FUNCTION akko_crypt.migrate_step(bigint)",
                "FUNCTION akko_crypt.migrate_finish(regclass)",
                "FUNCTION akko_crypt.protect_row()",
                "TABLE akko_crypt.protected_columns",
                "TABLE akko_crypt.decrypted_views",
                "TABLE akko_crypt.batch_runs",
            ],
            Privilege::Unlock => &["FUNCTION akko_crypt.unlock()"],
            Privilege::Admin => &[
                "FUNCTION akko_crypt.add_class(text)",
                "FUNCTION akko_crypt.rotate_key(text)",
                "FUNCTION akko_crypt.retire_key(text, integer, boolean)",
                "FUNCTION akko_crypt.destroy_key(text, integer, boolean)",
                "FUNCTION akko_crypt.forget_subject(text)",
                "FUNCTION akko_crypt.rewrap(text)",
                "FUNCTION akko_crypt.status()",
                "FUNCTION akko_crypt.hash_subject_names()",
                "FUNCTION akko_crypt.vault_init_transit()",
                "FUNCTION akko_crypt.grant_privilege(text, regrole, text)",
                "FUNCTION akko_crypt.revoke_privilege(text, regrole, text)",
                "TABLE akko_crypt.audit_log",
                "TABLE akko_crypt.batch_runs",
                "TABLE akko_crypt.protected_columns",
                "TABLE akko_crypt.decrypted_views",
                "TABLE akko_crypt.privileges",
            ],
        }
    }
}

/// One privilege a role holds: for one class, or for every class (None).
struct Held {
    privilege: Privilege,
    class: Option<String>,
}

/// The privileges of one role.
struct Resolved {
    superuser: bool,
    held: Vec<Held>,
    /// What the role could hold by `SET ROLE`: the privileges of every role it is a member
    /// of, inherited or not. Separation of duties looks at these.
    reachable: Vec<Privilege>,
    /// CREATEROLE (without superuser): the role can make a role that opens, and log in as it.
    creates_roles: bool,
}

/// The duty that `privilege` may not be joined with: a key administrator opens nothing,
/// and a role that may open administers no key.
fn other_duty(privilege: Privilege) -> Option<Privilege> {
    match privilege {
        Privilege::Open => Some(Privilege::Admin),
        Privilege::Admin => Some(Privilege::Open),
        _ => None,
    }
}

impl Resolved {
    fn holds(&self, privilege: Privilege, class: Option<&str>) -> bool {
        self.held.iter().any(|held| {
            held.privilege == privilege && (held.class.is_none() || held.class.as_deref() == class)
        })
    }

    /// The duty this role could take up (by a grant, a membership, a role it may SET ROLE
    /// to) that `privilege` may not be joined with. Superusers hold everything.
    /// A role that may create roles could create one that opens: it counts as one that may.
    fn conflicting_duty(&self, privilege: Privilege) -> Option<&'static str> {
        let other = other_duty(privilege)?;
        if self.superuser {
            None
        } else if self.reachable.contains(&other) {
            Some(other.name())
        } else if other == Privilege::Open && self.creates_roles {
            Some("createrole")
        } else {
            None
        }
    }

    fn allows(&self, privilege: Privilege, class: Option<&str>) -> bool {
        self.conflicting_duty(privilege).is_none()
            && (self.superuser || self.holds(privilege, class))
    }
}

/// How many roles' privileges a session keeps resolved: its current role, its session user
/// (see `duty_conflict`), and the owner of a table whose statements it runs as that owner
/// (see `sql::as_table_owner`).
const RESOLVED_ROLES: usize = 4;

thread_local! {
    static GENERATION: Generation = const { Generation::new() };
    static TABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static RESOLVED: RefCell<SessionCache<pg_sys::Oid, Rc<Resolved>>> =
        const { RefCell::new(SessionCache::new(RESOLVED_ROLES)) };
}

pub fn init() {
    // SAFETY: registered once, from _PG_init; the callbacks have the C ABI PostgreSQL calls
    // them with and only bump a generation, raising nothing.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        );
        // Role membership and the superuser flag decide what a role holds.
        for cache in [
            pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM,
            pg_sys::SysCacheIdentifier::AUTHMEMMEMROLE,
            pg_sys::SysCacheIdentifier::AUTHOID,
        ] {
            pg_sys::CacheRegisterSyscacheCallback(
                cache as i32,
                Some(on_role_invalidation),
                pg_sys::Datum::from(0),
            );
        }
    }
    settle_at_transaction_ends(&GENERATION);
}

fn forget() {
    GENERATION.with(Generation::move_on);
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || relid == TABLE.with(Cell::get) {
        // Looked up again: the table dropped with its extension, and made again, is another.
        TABLE.with(|t| t.set(pg_sys::InvalidOid));
        forget();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_role_invalidation(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    forget();
}

fn resolve(role: pg_sys::Oid) -> Resolved {
    // SAFETY: superuser_arg reads the role's pg_authid row through the syscache; a role that is
    // gone counts as no superuser.
    let superuser = unsafe { pg_sys::superuser_arg(role) };
    let rows = if superuser {
        Vec::new()
    } else {
        as_owner(|| {
            TABLE.with(|t| {
                if t.get() == pg_sys::InvalidOid {
                    t.set(crate::extension::extension_table(c"privileges"));
                }
            });
            Spi::connect(|client| {
                client
                    .select(
                        "SELECT p.privilege, p.class, pg_has_role($1, p.grantee, 'USAGE') \
                         FROM akko_crypt.privileges p WHERE pg_has_role($1, p.grantee, 'MEMBER')",
                        None,
                        &[role.into()],
                    )?
                    .map(|row| {
                        Ok((
                            row.get::<String>(1)?,
                            row.get::<String>(2)?,
                            row.get::<bool>(3)?.unwrap_or(false),
                        ))
                    })
                    .collect::<Result<Vec<_>, pgrx::spi::Error>>()
            })
            .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.privileges", e))
        })
    };
    let mut held = Vec::new();
    let mut reachable = Vec::new();
    for (privilege, class, inherited) in rows {
        let Some(privilege) = privilege.as_deref().and_then(Privilege::parse) else {
            continue;
        };
        reachable.push(privilege);
        if inherited {
            held.push(Held { privilege, class });
        }
    }
    let creates_roles = !superuser
        && read_one::<bool>(
            "look up the role",
            "SELECT rolcreaterole FROM pg_catalog.pg_roles WHERE oid OPERATOR(pg_catalog.=) $1",
            &[role.into()],
        )
        .unwrap_or(false);
    Resolved {
        superuser,
        held,
        reachable,
        creates_roles,
    }
}

/// `f` of `role`'s privileges, resolved once per generation. Resolving runs queries, whose
/// planning can come back here (a hook asking what the caller may do): no borrow of the
/// cache is held meanwhile.
fn with_resolved<R>(role: pg_sys::Oid, f: impl FnOnce(&Resolved) -> R) -> R {
    let generation = GENERATION.with(Generation::get);
    let resolved = get_or_load(&RESOLVED, generation, &role, || Rc::new(resolve(role)));
    f(&resolved)
}

/// The role and duty that keep a session whose current role is `role` from `privilege`:
/// the role's own, or its session user's (a key administrator that SET ROLEs to a role that
/// may open is still a key administrator).
fn duty_conflict(role: pg_sys::Oid, privilege: Privilege) -> Option<(pg_sys::Oid, &'static str)> {
    let session = crate::pg::unguarded::session_user_id();
    [role, session].into_iter().find_map(|r| {
        with_resolved(r, |resolved| resolved.conflicting_duty(privilege)).map(|d| (r, d))
    })
}

/// The last answer `held_by` gave: every value a statement seals or opens asks the same.
struct LastAnswer {
    generation: u64,
    role: pg_sys::Oid,
    session: pg_sys::Oid,
    privilege: Privilege,
    class: Option<String>,
    allowed: bool,
}

thread_local! {
    static LAST_ANSWER: RefCell<Option<LastAnswer>> = const { RefCell::new(None) };
}

/// Whether `role` holds `privilege` (for `class`, when it is per class).
pub fn held_by(role: pg_sys::Oid, privilege: Privilege, class: Option<ClassName<'_>>) -> bool {
    let generation = GENERATION.with(Generation::get);
    let session = crate::pg::unguarded::session_user_id();
    let class = class.map(|c| c.as_str());
    let remembered = LAST_ANSWER.with(|last| {
        last.borrow().as_ref().and_then(|a| {
            (a.generation == generation
                && a.role == role
                && a.session == session
                && a.privilege == privilege
                && a.class.as_deref() == class)
                .then_some(a.allowed)
        })
    });
    if let Some(allowed) = remembered {
        return allowed;
    }
    let allowed = with_resolved(role, |r| r.allows(privilege, class))
        && duty_conflict(role, privilege).is_none();
    LAST_ANSWER.with(|last| {
        *last.borrow_mut() = Some(LastAnswer {
            generation,
            role,
            session,
            privilege,
            class: class.map(str::to_owned),
            allowed,
        })
    });
    allowed
}

/// Whether the calling role holds `privilege` (for `class`, when it is per class).
pub fn held(privilege: Privilege, class: Option<ClassName<'_>>) -> bool {
    held_by(caller(), privilege, class)
}

/// Raises 42501 unless `role` holds `privilege` (for `class`).
pub fn require_by(role: pg_sys::Oid, privilege: Privilege, class: Option<ClassName<'_>>) {
    if held_by(role, privilege, class) {
        return;
    }
    if let Some((holder, duty)) = duty_conflict(role, privilege) {
        raise(Error::DutiesSeparated {
            role: &display_name(holder),
            wanted: privilege.name(),
            duty,
        });
    }
    raise(Error::PrivilegeMissing {
        privilege: privilege.name(),
        class: class.map(|c| c.as_str()),
        role: &display_name(role),
    });
}

/// Raises 42501 unless the calling role holds `privilege` (for `class`).
pub fn require(privilege: Privilege, class: Option<ClassName<'_>>) {
    require_by(caller(), privilege, class);
}

/// The role's name, or None if no role has that OID.
fn role_name(role: pg_sys::Oid) -> Option<String> {
    // SAFETY: GetUserNameFromId with noerr true returns NULL for a role that is gone, else a
    // palloc'd NUL-terminated name.
    unsafe {
        let name = pg_sys::GetUserNameFromId(role, true);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}

fn display_name(role: pg_sys::Oid) -> String {
    role_name(role).unwrap_or_else(|| format!("OID {}", role.to_u32()))
}

fn quoted_role(role: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId with noerr false raises (through pgrx's guard) for a role that
    // is gone; quote_identifier returns it or a palloc'd quoted copy, NUL-terminated either
    // way.
    unsafe {
        let name = pg_sys::GetUserNameFromId(role, false);
        CStr::from_ptr(pg_sys::quote_identifier(name))
            .to_string_lossy()
            .into_owned()
    }
}

/// The privilege and class arguments of grant_privilege and revoke_privilege, checked.
fn parse_arguments(args: &Args) -> (Privilege, pg_sys::Oid, Option<String>) {
    let name = args.text(0, "privilege");
    let privilege =
        Privilege::parse(&name).unwrap_or_else(|| raise(Error::UnknownPrivilege { name: &name }));
    let grantee = args.oid(1, "grantee");
    if role_name(grantee).is_none() {
        raise(Error::NoSuchRole {
            oid: grantee.to_u32(),
        });
    }
    let class = args.opt_text(2);
    match &class {
        Some(_) if !privilege.per_class() => raise(Error::PrivilegeHasNoClass {
            privilege: privilege.name(),
        }),
        Some(class) => {
            let parsed = classes::parse(class);
            if parsed.as_str() == crate::keys::classes::BLIND_INDEX {
                raise(Error::ReservedClass);
            }
            classes::require_registered(parsed);
        }
        None => {}
    }
    (privilege, grantee, class)
}

/// Grants and revokes EXECUTE and SELECT so that `grantee` reaches exactly the objects its
/// own privileges need (as the extension owner, who owns them).
fn sync_object_grants(grantee: pg_sys::Oid) {
    let role = quoted_role(grantee);
    as_owner(|| {
        let held: Vec<String> = Spi::connect(|client| {
            client
                .select(
                    "SELECT DISTINCT privilege FROM akko_crypt.privileges WHERE grantee = $1",
                    None,
                    &[grantee.into()],
                )?
                .map(|row| row.get::<String>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.privileges", e));
        let needed: Vec<&str> = held
            .iter()
            .filter_map(|name| Privilege::parse(name))
            .flat_map(|p| p.objects().iter().copied())
            .collect();
        let mut statements = Vec::new();
        let every_object = Privilege::ALL
            .into_iter()
            .flat_map(|p| p.objects().iter().copied());
        let mut seen = Vec::new();
        for object in every_object {
            if seen.contains(&object) {
                continue;
            }
            seen.push(object);
            let what = if object.starts_with("TABLE ") {
                "SELECT"
            } else {
                "EXECUTE"
            };
            statements.push(if needed.contains(&object) {
                format!("GRANT {what} ON {object} TO {role}")
            } else {
                format!("REVOKE {what} ON {object} FROM {role}")
            });
        }
        for statement in statements {
            Spi::run(&statement).unwrap_or_else(|e| {
                errors::catalog_query_failed("grant the privilege's objects", e)
            });
        }
    });
}

/// Separation of duties, said at the grant: `open` to a role that administers keys, or
/// `admin` to one that may open, would be refused at every use (see `Resolved::allows`).
fn refuse_joined_duties(privilege: Privilege, grantee: pg_sys::Oid) {
    let Some(other) = other_duty(privilege) else {
        return;
    };
    // Any role that could become the grantee (itself, its members, roles that may SET ROLE
    // to it) and could take up the other duty too (for admin: by CREATEROLE, too).
    let joined = as_owner(|| {
        read_one::<String>(
            "read akko_crypt.privileges",
            "SELECT m.rolname::text FROM pg_roles m \
             WHERE NOT m.rolsuper AND pg_has_role(m.oid, $1, 'MEMBER') \
               AND ((m.rolcreaterole AND $2 = 'open') \
                    OR EXISTS (SELECT FROM akko_crypt.privileges p \
                               WHERE p.privilege = $2 AND pg_has_role(m.oid, p.grantee, 'MEMBER'))) \
             ORDER BY m.oid <> $1, m.rolname LIMIT 1",
            &[grantee.into(), other.name().into()],
        )
    });
    if let Some(role) = joined {
        raise(Error::DutiesJoined {
            privilege: privilege.name(),
            grantee: &display_name(grantee),
            role: &role,
            duty: other.name(),
        });
    }
}

fn change(args: &Args, grant: bool) -> bool {
    require(Privilege::Admin, None);
    let (privilege, grantee, class) = parse_arguments(args);
    if grant {
        refuse_joined_duties(privilege, grantee);
    }
    let by = caller();
    let changed = as_owner(|| {
        // Rows of roles dropped since go first: a new role could one day get their OID.
        Spi::run(
            "DELETE FROM akko_crypt.privileges p \
             WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = p.grantee)",
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("change akko_crypt.privileges", e));
        let query = if grant {
            "WITH added AS (INSERT INTO akko_crypt.privileges (grantee, privilege, class, granted_by) \
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT count(*) > 0 FROM added"
        } else {
            "WITH gone AS (DELETE FROM akko_crypt.privileges \
               WHERE grantee = $1 AND privilege = $2 AND class IS NOT DISTINCT FROM $3 RETURNING 1) \
             SELECT count(*) > 0 FROM gone"
        };
        let mut args = vec![
            grantee.into(),
            privilege.name().into(),
            class.as_deref().into(),
        ];
        if grant {
            args.push(by.into());
        }
        Spi::get_one_with_args::<bool>(query, &args)
            .unwrap_or_else(|e| errors::catalog_query_failed("change akko_crypt.privileges", e))
            .unwrap_or(false)
    });
    forget();
    let scope = match (&class, privilege.per_class()) {
        (Some(class), _) => format!(", class {class}"),
        (None, true) => ", every class".to_owned(),
        (None, false) => String::new(),
    };
    let detail = format!(
        "{} {} {}{scope}{}",
        privilege.name(),
        if grant { "to" } else { "from" },
        display_name(grantee),
        if changed { "" } else { ", unchanged" }
    );
    audit(
        if grant {
            "grant_privilege"
        } else {
            "revoke_privilege"
        },
        class.as_deref(),
        None,
        Some(&detail),
        "ok",
    );
    changed
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_grant_privilege(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(change(&Args::new(fcinfo), true))
}

#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_revoke_privilege(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(change(&Args::new(fcinfo), false))
}

/// The trigger on `akko_crypt.privileges`: grants and revokes what the changed rows' roles
/// now need.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn akko_privileges_changed(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let trigger = crate::pg::datum::trigger_data(fcinfo);
    let relation = (*trigger).tg_relation;
    let grantee_of = |tuple: pg_sys::HeapTuple| -> Option<pg_sys::Oid> {
        if tuple.is_null() {
            return None;
        }
        let mut is_null = false;
        let datum = pg_sys::heap_getattr(tuple, 1, (*relation).rd_att, &mut is_null);
        (!is_null).then(|| pg_sys::Oid::from(datum.value() as u32))
    };
    let event = (*trigger).tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
    let old = grantee_of((*trigger).tg_trigtuple);
    let new = if event == pg_sys::TRIGGER_EVENT_UPDATE {
        grantee_of((*trigger).tg_newtuple)
    } else {
        None
    };
    for grantee in [old, new].into_iter().flatten() {
        if role_name(grantee).is_some() {
            sync_object_grants(grantee);
        }
    }
    forget();
    pg_sys::Datum::from(0)
}
