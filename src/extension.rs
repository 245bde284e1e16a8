//! The extension's own objects, as every module reaches them: its tables, its owner and
//! running as the owner on a caller's behalf (its tables are readable by nobody else), the
//! role that called, the audit log, and the generation that tells a backend its cached keyring
//! state is stale.
//!
//! The queries that run as the owner run with search_path pinned to pg_catalog, so that
//! nothing the caller created can stand in for a function, operator or type they use.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::pg::settings::as_role_restricted;
use crate::pg::spi::read_row;
use crate::session_cache::{get_or_load, settle_at_transaction_ends, Generation, SessionCache};

thread_local! {
    /// Bumped whenever the keyring or subjects table may have changed, here or in another
    /// backend; every cache tagged with an older generation is stale.
    static GENERATION: Generation = const { Generation::new() };
    /// The tables whose relcache invalidations bump the generation, once looked up.
    static WATCHED: Cell<[pg_sys::Oid; 2]> = const { Cell::new([pg_sys::InvalidOid; 2]) };
    static OWNER: RefCell<SessionCache<(), pg_sys::Oid>> = const { RefCell::new(SessionCache::new(1)) };
    /// The role that called into akko_crypt, while `as_owner` runs as the extension owner.
    static CALLER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

pub fn generation() -> u64 {
    GENERATION.with(Generation::get)
}

fn bump_generation() {
    GENERATION.with(Generation::move_on);
}

pub fn init() {
    // SAFETY: registered once, from _PG_init; the callback has the C ABI PostgreSQL calls it
    // with and only marks caches stale, raising nothing.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        )
    };
    settle_at_transaction_ends(&GENERATION);
}

/// Other backends' key changes arrive as relcache invalidations of the keyring tables
/// (sent by `announce_change`) when they commit, and are read at the next transaction
/// start. Only cells change here: this can run in the middle of a cache lookup. The
/// tables' OIDs are looked up again next time: dropping a table invalidates it too, and an
/// extension dropped and created again has new ones, whose changes would otherwise go
/// unnoticed (and `announce_change` would name a relation that is gone).
#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || WATCHED.with(Cell::get).contains(&relid) {
        WATCHED.with(|w| w.set([pg_sys::InvalidOid; 2]));
        bump_generation();
    }
}

/// The OID of the extension's table `name`.
pub fn extension_table(name: &CStr) -> pg_sys::Oid {
    // SAFETY: catalog lookups of static NUL-terminated names; both return InvalidOid rather
    // than raise when the name is missing (missing_ok is true).
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"akko_crypt".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            raise(Error::ExtensionMissing);
        }
        pg_sys::get_relname_relid(name.as_ptr(), schema)
    }
}

fn watch_tables() {
    if WATCHED.with(Cell::get)[0] != pg_sys::InvalidOid {
        return;
    }
    let oids = [extension_table(c"keyring"), extension_table(c"subjects")];
    WATCHED.with(|w| w.set(oids));
}

/// Makes every backend drop its cached keyring state when this transaction commits.
pub fn announce_change() {
    watch_tables();
    for oid in WATCHED.with(Cell::get) {
        // SAFETY: queues a relcache invalidation for a relation OID, sent at commit; the OIDs
        // are the extension's own tables (watch_tables), and one that is gone raises through
        // pgrx's guard.
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
    bump_generation();
}

/// The extension owner. Refuses to go on (55000) when the extension in this database is at
/// another version than this library: its tables and functions are not the ones this code
/// reads and guards until `ALTER EXTENSION akko_crypt UPDATE` has run.
fn extension_owner() -> pg_sys::Oid {
    get_or_load(&OWNER, generation(), &(), || {
        let (owner, version) = read_row(
            "find the extension owner",
            "SELECT extowner, extversion FROM pg_catalog.pg_extension \
             WHERE extname OPERATOR(pg_catalog.=) 'akko_crypt'",
            &[],
            |row| row.get_two::<pg_sys::Oid, String>(),
        )
        .unwrap_or_else(|| raise(Error::ExtensionMissing));
        let owner = owner.unwrap_or_else(|| raise(Error::ExtensionMissing));
        let version = version.unwrap_or_default();
        if version != env!("CARGO_PKG_VERSION") {
            raise(Error::ExtensionOutdated {
                installed: &version,
                library: env!("CARGO_PKG_VERSION"),
            });
        }
        owner
    })
}

/// The role on whose behalf akko_crypt runs: the current user, or inside [`as_owner`] the
/// one who called it. Privilege checks and the audit log name this role.
pub fn caller() -> pg_sys::Oid {
    CALLER
        .with(Cell::get)
        .unwrap_or_else(crate::pg::unguarded::user_id)
}

/// Puts back the recorded caller when the privileged section returns, on an error too
/// (`as_role_restricted` puts back the user).
struct RestoreCaller(Option<pg_sys::Oid>);

impl Drop for RestoreCaller {
    fn drop(&mut self) {
        CALLER.with(|c| c.set(self.0));
    }
}

/// Runs `f` as the extension owner, the only role that can read the keyring tables, in a
/// security-restricted operation with search_path = pg_catalog, pg_temp (as PostgreSQL
/// does for maintenance commands).
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    watch_tables();
    let owner = extension_owner();
    let user = crate::pg::unguarded::user_id();
    let _restore = RestoreCaller(CALLER.with(|c| c.replace(Some(c.get().unwrap_or(user)))));
    as_role_restricted(owner, &[(c"search_path", c"pg_catalog, pg_temp")], true, f)
}

fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId with noerr false raises (through pgrx's guard) for a role that
    // is gone, and otherwise returns a palloc'd NUL-terminated name.
    unsafe {
        CStr::from_ptr(pg_sys::GetUserNameFromId(role, false))
            .to_string_lossy()
            .into_owned()
    }
}

/// Appends to akko_crypt.audit_log (as the owner, since nobody else may write it) and to
/// the server log, which also keeps what a rolled-back transaction loses. The role recorded
/// is the one that called akko_crypt, even from inside a section that runs as the owner.
pub fn audit(
    operation: &str,
    class: Option<&str>,
    version: Option<u32>,
    detail: Option<&str>,
    outcome: &str,
) {
    let role = role_name(caller());
    let session_role = role_name(crate::pg::unguarded::session_user_id());
    pgrx::log!(
        "{}{operation} class={} version={} by {role} (session {session_role}): {outcome}{}",
        crate::hooks::log_redaction::AUDIT_PREFIX,
        class.unwrap_or("-"),
        version.map_or("-".to_owned(), |v| v.to_string()),
        detail.map_or(String::new(), |d| format!(" ({d})"))
    );
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO akko_crypt.audit_log (role, session_role, operation, class, version, detail, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                role.as_str().into(),
                session_role.as_str().into(),
                operation.into(),
                class.into(),
                version.map(|v| v as i32).into(),
                detail.into(),
                outcome.into(),
            ],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("write the audit log", e))
    });
}
