//! The keyring: which key version of a class is active, unwrapping data keys on first use,
//! per-subject keys, and noticing when another backend changed any of it.
//!
//! The tables are readable only by the extension owner, so the queries here run as the
//! owner on the caller's behalf, with search_path pinned to pg_catalog so that nothing the
//! caller created can stand in for a function, operator or type they use.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;

use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::wrap::{new_subject, SUBJECT_SALT_LEN};
use akko_crypt_core::{ClassName, DataKeyMaterial, UnwrapError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::custody::KeyEntry;
use crate::local_settings::as_role_restricted;
use crate::privileges::{self, Privilege};
use crate::{blind_index, classes, custody, errors};

/// Sessions that seal for many subjects would otherwise remember every subject's id forever.
const MAX_CACHED_SUBJECTS: usize = 4096;

thread_local! {
    /// Bumped whenever the keyring or subjects table may have changed, here or in another
    /// backend; every cache tagged with an older generation is stale.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    /// The tables whose relcache invalidations bump the generation, once looked up.
    static WATCHED: Cell<[pg_sys::Oid; 2]> = const { Cell::new([pg_sys::InvalidOid; 2]) };
    static ACTIVE: RefCell<ActiveVersions> = RefCell::new(ActiveVersions::default());
    static OWNER: Cell<(u64, pg_sys::Oid)> = const { Cell::new((0, pg_sys::InvalidOid)) };
    /// The role that called into akko_crypt, while `as_owner` runs as the extension owner.
    static CALLER: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

#[derive(Default)]
struct ActiveVersions {
    generation: u64,
    versions: Vec<(String, u32)>,
    subjects: HashMap<Vec<u8>, SubjectId>,
    /// The blind_index key versions that subject lookups are keyed under.
    lookup_versions: Option<Vec<u32>>,
}

impl ActiveVersions {
    fn current(&mut self) -> &mut Self {
        let generation = generation();
        if self.generation != generation {
            self.versions.clear();
            self.subjects.clear();
            self.lookup_versions = None;
            self.generation = generation;
        }
        self
    }
}

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

pub fn generation() -> u64 {
    GENERATION.with(Cell::get)
}

fn bump_generation() {
    GENERATION.with(|g| g.set(g.get() + 1));
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
}

/// Other backends' key changes arrive as relcache invalidations of the keyring tables
/// (sent by `announce_change`) when they commit, and are read at the next transaction
/// start. Only a counter changes here: this can run in the middle of a cache lookup.
#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || WATCHED.with(Cell::get).contains(&relid) {
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
            errors::extension_missing();
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
    let generation = generation();
    let (cached_at, owner) = OWNER.with(Cell::get);
    if cached_at == generation {
        return owner;
    }
    let (owner, version) = read_row(
        "find the extension owner",
        "SELECT extowner, extversion FROM pg_catalog.pg_extension \
         WHERE extname OPERATOR(pg_catalog.=) 'akko_crypt'",
        &[],
        |row| row.get_two::<pg_sys::Oid, String>(),
    )
    .unwrap_or_else(|| errors::extension_missing());
    let owner = owner.unwrap_or_else(|| errors::extension_missing());
    let version = version.unwrap_or_default();
    if version != env!("CARGO_PKG_VERSION") {
        errors::extension_outdated(&version);
    }
    OWNER.with(|o| o.set((generation, owner)));
    owner
}

/// The role on whose behalf akko_crypt runs: the current user, or inside [`as_owner`] the
/// one who called it. Privilege checks and the audit log name this role.
pub fn caller() -> pg_sys::Oid {
    CALLER
        .with(Cell::get)
        .unwrap_or_else(crate::unguarded::user_id)
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
    let user = crate::unguarded::user_id();
    let _restore = RestoreCaller(CALLER.with(|c| c.replace(Some(c.get().unwrap_or(user)))));
    as_role_restricted(owner, &[(c"search_path", c"pg_catalog, pg_temp")], true, f)
}

/// The key version new seals of `class` use, and so the one check a seal needs: only a
/// registered class has one. The first seal of a class creates its version 1.
pub fn active_version(class: ClassName<'_>) -> u32 {
    let cached = ACTIVE.with(|a| {
        a.borrow_mut()
            .current()
            .versions
            .iter()
            .find(|(name, _)| name == class.as_str())
            .map(|&(_, version)| version)
    });
    if let Some(version) = cached {
        return version;
    }
    let generation = generation();
    let version = as_owner(|| {
        select_active_version(class).unwrap_or_else(|| {
            classes::require_registered(class);
            create_first_version(class)
        })
    });
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        if a.generation == generation {
            a.versions.push((class.as_str().to_owned(), version));
        }
    });
    version
}

/// Whether one of `classes` has no active key version yet, so that its first seal would
/// write one.
pub fn some_class_without_key(classes: &[String]) -> bool {
    as_owner(|| {
        read_one::<bool>(
            "read the keyring",
            "SELECT EXISTS (SELECT FROM unnest($1::text[]) c(name) WHERE NOT EXISTS \
                 (SELECT FROM akko_crypt.keyring k WHERE k.class = c.name AND k.state = 'active'))",
            &[classes.to_vec().into()],
        )
    })
    .unwrap_or(false)
}

fn select_active_version(class: ClassName<'_>) -> Option<u32> {
    read_one::<i32>(
        "read the keyring",
        "SELECT version FROM akko_crypt.keyring WHERE class = $1 AND state = 'active'",
        &[class.as_str().into()],
    )
    .map(|v| v as u32)
}

/// Refuses to add a key under a root other than the one the keyring already uses: data
/// sealed under two roots would need both to open. The first key of an empty keyring fixes
/// its root, so only a key administrator may write it: otherwise a role that may seal could
/// claim a new database's keyring with a key of its own.
pub fn require_keyring_root() {
    let session = custody::require_fingerprint();
    let (other, any) = read_row(
        "read the keyring",
        "SELECT (SELECT root_fingerprint FROM akko_crypt.keyring \
                 WHERE state <> 'destroyed' AND root_fingerprint <> $1 LIMIT 1), \
                EXISTS (SELECT FROM akko_crypt.keyring WHERE state <> 'destroyed')",
        &[session.to_string().into()],
        |row| row.get_two::<String, bool>(),
    )
    .unwrap_or((None, None));
    if let Some(other) = other {
        errors::wrong_root(&session.to_string(), &other);
    }
    if any != Some(true) && !privileges::held(Privilege::Admin, None) {
        errors::keyring_claim_needs_admin();
    }
}

/// Generates a data key for `class` at `version` and returns it wrapped under the
/// session's root, with the root's fingerprint.
pub fn new_wrapped_key(class: ClassName<'_>, version: u32) -> (Vec<u8>, String) {
    let material = DataKeyMaterial::generate().unwrap_or_else(|_| errors::randomness_unavailable());
    custody::with_root(|root| {
        let wrapped = root
            .wrap(class, version, &material)
            .unwrap_or_else(|_| errors::randomness_unavailable());
        (wrapped.to_vec(), root.fingerprint().to_string())
    })
}

/// Takes the lock that every writer of the keyring takes before it touches a row: a first
/// seal, a rotation, a retirement or destruction, a rewrap, of any class. Each waits for the
/// other's whole transaction rather than each holding one class's new row while it waits
/// for the other's (a transaction that first-sealed two classes met a rotation of both the
/// other way round, and they deadlocked), and no writer upgrades a lock it holds. Plain seals
/// and opens never write the keyring and never take it.
pub fn lock_for_writes() {
    Spi::run("LOCK TABLE akko_crypt.keyring IN SHARE ROW EXCLUSIVE MODE")
        .unwrap_or_else(|e| errors::catalog_query_failed("lock the keyring", e));
}

fn create_first_version(class: ClassName<'_>) -> u32 {
    // SAFETY: reads the backend's parallel-mode flag; it cannot raise.
    if unsafe { pg_sys::IsInParallelMode() } {
        errors::keyring_write_in_parallel_query(format!(
            "the first seal of data class \"{}\" writes its key to the keyring",
            class.as_str()
        ));
    }
    require_keyring_root();
    lock_for_writes();
    let (wrapped, fingerprint) = new_wrapped_key(class, 1);
    let created = Spi::get_one_with_args::<bool>(
        "WITH created AS (\
           INSERT INTO akko_crypt.keyring (class, version, wrapped_key, root_fingerprint) \
           SELECT $1, 1, $2, $3 WHERE NOT EXISTS (SELECT FROM akko_crypt.keyring WHERE class = $1) \
           ON CONFLICT DO NOTHING RETURNING 1) \
         SELECT count(*) > 0 FROM created",
        &[class.as_str().into(), wrapped.into(), fingerprint.into()],
    )
    .unwrap_or_else(|e| errors::catalog_query_failed("create the first key of the class", e));
    if created == Some(true) {
        audit("create_key", Some(class.as_str()), Some(1), None, "ok");
        announce_change();
    }
    select_active_version(class).unwrap_or_else(|| errors::no_active_version(class.as_str()))
}

/// Runs `f` with the key entry of `class`/`version` (and `subject`): the data key, or the
/// subject's key, and the keys derived from it. Unwrapped and derived on first use in this
/// session.
pub fn with_entry<R>(
    class: ClassName<'_>,
    version: u32,
    subject: Option<&SubjectId>,
    f: impl FnOnce(&mut KeyEntry) -> R,
) -> R {
    match subject {
        None => cached_or_made(
            class,
            version,
            None,
            || unwrap_from_keyring(class, version),
            f,
        ),
        Some(id) => {
            let subject_key = || {
                let salt = subject_salt(id);
                let from_data_key =
                    |data_key: &mut KeyEntry| data_key.material().subject_material(id, &salt);
                cached_or_made(
                    class,
                    version,
                    None,
                    || unwrap_from_keyring(class, version),
                    from_data_key,
                )
            };
            cached_or_made(class, version, subject, subject_key, f)
        }
    }
}

/// Runs `f` with the cached entry, or with one made from `material` and then cached.
fn cached_or_made<R>(
    class: ClassName<'_>,
    version: u32,
    subject: Option<&SubjectId>,
    material: impl FnOnce() -> DataKeyMaterial,
    f: impl FnOnce(&mut KeyEntry) -> R,
) -> R {
    let generation = generation();
    let f = match custody::with_cached_entry(class.as_str(), version, subject, generation, f) {
        Ok(result) => return result,
        Err(f) => f,
    };
    let mut entry = KeyEntry::new(class.as_str(), version, subject.copied(), material());
    let result = f(&mut entry);
    custody::remember_entry(generation, entry);
    result
}

/// Runs `f` with the data key material of `class`/`version`, unwrapping it on first use in
/// this session.
pub fn with_material<R>(
    class: ClassName<'_>,
    version: u32,
    f: impl FnOnce(&DataKeyMaterial) -> R,
) -> R {
    with_entry(class, version, None, |entry| f(entry.material()))
}

fn unwrap_from_keyring(class: ClassName<'_>, version: u32) -> DataKeyMaterial {
    let (state, wrapped, wrapped_by) = as_owner(|| {
        read_row(
            "read the keyring",
            "SELECT state, wrapped_key, root_fingerprint FROM akko_crypt.keyring \
             WHERE class = $1 AND version = $2",
            &[class.as_str().into(), (version as i32).into()],
            |row| row.get_three::<String, Vec<u8>, String>(),
        )
        .unwrap_or((None, None, None))
    });
    match state.as_deref() {
        None => errors::unknown_key_version(class.as_str(), version),
        Some("destroyed") => errors::key_destroyed(class.as_str(), version),
        Some("retired") => errors::key_retired(class.as_str(), version),
        _ => {}
    }
    let wrapped = wrapped.unwrap_or_else(|| errors::key_destroyed(class.as_str(), version));
    let unwrapped = custody::with_root(|root| root.unwrap(class, version, &wrapped));
    unwrapped.unwrap_or_else(|e| match e {
        UnwrapError::NotWrappedByThisRoot => {
            let session = custody::fingerprint().map(|f| f.to_string());
            errors::wrong_root(
                session.as_deref().unwrap_or("none"),
                wrapped_by.as_deref().unwrap_or("unknown"),
            )
        }
        other => errors::corrupt_keyring(class.as_str(), version, other),
    })
}

/// The blind_index key versions subject lookups are keyed under: those of the stored
/// subjects, and the active one, which new subjects use.
fn lookup_versions() -> Vec<u32> {
    let cached = ACTIVE.with(|a| a.borrow_mut().current().lookup_versions.clone());
    if let Some(versions) = cached {
        return versions;
    }
    let generation = generation();
    let active = active_version(blind_index::class());
    let mut versions: Vec<u32> = as_owner(|| {
        read_one::<Vec<i32>>(
            "read the subjects",
            "SELECT array_agg(DISTINCT lookup_version) FROM akko_crypt.subjects \
             WHERE lookup_version IS NOT NULL",
            &[],
        )
    })
    .unwrap_or_default()
    .into_iter()
    .map(|v| v as u32)
    .collect();
    versions.retain(|&v| v != active);
    versions.insert(0, active);
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        if a.generation == generation {
            a.lookup_versions = Some(versions.clone());
        }
    });
    versions
}

/// The lookup hash of subject name `name` (in the database encoding) under each lookup
/// version, the active one first. The hash is of the name's UTF-8 form, whatever the
/// database encoding.
fn subject_lookups(name: &[u8]) -> Vec<(u32, Vec<u8>)> {
    // SAFETY: utf8_of converts from the database encoding with PostgreSQL's converter, which
    // raises through pgrx's guard on bytes it cannot convert.
    let utf8 = unsafe { utf8_of(name) };
    lookup_versions()
        .into_iter()
        .map(|version| {
            let lookup = with_material(blind_index::class(), version, |m| m.subject_lookup(&utf8));
            (version, lookup.to_vec())
        })
        .collect()
}

/// Text in the database encoding, as UTF-8.
unsafe fn utf8_of(server: &[u8]) -> Vec<u8> {
    if crate::sealing::database_is_utf8() {
        return server.to_vec();
    }
    let utf8 = pg_sys::pg_server_to_any(
        server.as_ptr().cast(),
        server.len() as i32,
        pg_sys::pg_enc::PG_UTF8 as i32,
    );
    CStr::from_ptr(utf8).to_bytes().to_vec()
}

/// The id of `subject` (text in the database encoding), created with a fresh random salt
/// on first use. The subjects table keeps a keyed hash of the name, never the name.
pub fn subject_id(subject: &[u8]) -> SubjectId {
    let cached = ACTIVE.with(|a| a.borrow_mut().current().subjects.get(subject).copied());
    if let Some(id) = cached {
        return id;
    }
    let generation = generation();
    let lookups = subject_lookups(subject);
    let stored = find_subject(subject, &lookups).or_else(|| {
        // SAFETY: reads the backend's parallel-mode flag; it cannot raise.
        if unsafe { pg_sys::IsInParallelMode() } {
            errors::keyring_write_in_parallel_query(
                "the first seal for a new subject registers it in the keyring".to_owned(),
            )
        }
        register_subject(&lookups[0])
    });
    let id: SubjectId = stored
        .and_then(|bytes| bytes.try_into().ok())
        .unwrap_or_else(|| errors::subject_forgotten());
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        if a.generation == generation {
            if a.subjects.len() >= MAX_CACHED_SUBJECTS {
                a.subjects.clear();
            }
            a.subjects.insert(subject.to_vec(), id);
        }
    });
    id
}

fn lookup_array(lookups: &[(u32, Vec<u8>)]) -> DatumWithOid<'static> {
    DatumWithOid::from(lookups.iter().map(|(_, l)| l.clone()).collect::<Vec<_>>())
}

/// The id of a stored subject, found by its lookup hash, or by the name a release before
/// 0.3.0 kept, which is then replaced by its hash (where the transaction may write).
fn find_subject(name: &[u8], lookups: &[(u32, Vec<u8>)]) -> Option<Vec<u8>> {
    let (id, legacy) = as_owner(|| {
        read_row(
            "read the subject",
            "SELECT id, lookup IS NULL FROM akko_crypt.subjects \
             WHERE lookup = ANY ($1) OR legacy_name = $2 LIMIT 1",
            &[lookup_array(lookups), text_datum(name)],
            |row| row.get_two::<Vec<u8>, bool>(),
        )
        .unwrap_or((None, None))
    });
    // SAFETY: reads the backend's parallel-mode flag; it cannot raise.
    if legacy == Some(true) && !unsafe { pg_sys::IsInParallelMode() } {
        hash_legacy_name(name, &lookups[0]);
    }
    id
}

fn hash_legacy_name(name: &[u8], (version, lookup): &(u32, Vec<u8>)) {
    as_owner(|| {
        Spi::run_with_args(
            "UPDATE akko_crypt.subjects SET lookup = $2, lookup_version = $3, legacy_name = NULL \
             WHERE legacy_name = $1",
            &[
                text_datum(name),
                lookup.clone().into(),
                (*version as i32).into(),
            ],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("hash the subject's name", e))
    });
}

/// Replaces every subject name a release before 0.3.0 kept by its keyed hash; returns how
/// many. Needs the root key, as the hash is keyed.
#[pg_extern(volatile, parallel_unsafe)]
fn hash_subject_names() -> i64 {
    privileges::require(Privilege::Admin, None);
    let names: Vec<Vec<u8>> = as_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT convert_to(legacy_name, getdatabaseencoding()) FROM akko_crypt.subjects \
                     WHERE legacy_name IS NOT NULL",
                    None,
                    &[],
                )?
                .map(|row| row.get::<Vec<u8>>(1).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the subjects", e))
    });
    for name in &names {
        hash_legacy_name(name, &subject_lookups(name)[0]);
    }
    announce_change();
    let hashed = names.len() as i64;
    audit(
        "hash_subject_names",
        None,
        None,
        Some(&format!("{hashed} names")),
        "ok",
    );
    hashed
}

/// Registers a subject with a fresh random id and salt under lookup hash `lookup`; returns
/// its id (another session's, if it registered the same subject first).
fn register_subject((version, lookup): &(u32, Vec<u8>)) -> Option<Vec<u8>> {
    let (id, salt) = new_subject().unwrap_or_else(|_| errors::randomness_unavailable());
    as_owner(|| {
        Spi::get_one_with_args::<Vec<u8>>(
            "WITH created AS (\
               INSERT INTO akko_crypt.subjects (lookup, lookup_version, id, salt) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (lookup) DO NOTHING RETURNING id) \
             SELECT id FROM created UNION ALL \
             SELECT id FROM akko_crypt.subjects WHERE lookup = $1 LIMIT 1",
            &[
                lookup.clone().into(),
                (*version as i32).into(),
                id.to_vec().into(),
                salt.to_vec().into(),
            ],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("register the subject", e))
    })
}

/// Deletes the salt of subject `name`; returns the subject's id if it existed.
pub fn forget_subject(name: &[u8]) -> Option<SubjectId> {
    let lookups = subject_lookups(name);
    let id = as_owner(|| {
        first_row(
            "forget the subject",
            Spi::get_one_with_args::<Vec<u8>>(
                "WITH gone AS (DELETE FROM akko_crypt.subjects \
                               WHERE lookup = ANY ($1) OR legacy_name = $2 RETURNING id) \
                 SELECT id FROM gone LIMIT 1",
                &[lookup_array(&lookups), text_datum(name)],
            ),
        )
        .flatten()
    });
    announce_change();
    id.and_then(|bytes| bytes.try_into().ok())
}

/// Text in the database encoding as a query argument, without a UTF-8 round trip.
fn text_datum<'a>(bytes: &[u8]) -> DatumWithOid<'a> {
    // SAFETY: cstring_to_text_with_len copies len bytes into a palloc'd text in the current
    // memory context, which outlives the query that takes it as an argument.
    unsafe {
        let text = pg_sys::cstring_to_text_with_len(bytes.as_ptr().cast(), bytes.len() as i32);
        DatumWithOid::new(pg_sys::Datum::from(text), pg_sys::TEXTOID)
    }
}

fn subject_salt(id: &SubjectId) -> [u8; SUBJECT_SALT_LEN] {
    let salt = as_owner(|| {
        read_one::<Vec<u8>>(
            "read the subject",
            "SELECT salt FROM akko_crypt.subjects WHERE id = $1",
            &[DatumWithOid::from(id.to_vec())],
        )
    });
    salt.and_then(|bytes| bytes.try_into().ok())
        .unwrap_or_else(|| errors::subject_forgotten())
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
    let session_role = role_name(crate::unguarded::session_user_id());
    pgrx::log!(
        "{}{operation} class={} version={} by {role} (session {session_role}): {outcome}{}",
        crate::log_redaction::AUDIT_PREFIX,
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
