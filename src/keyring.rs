//! The keyring: which key version of a class is active, unwrapping data keys on first use,
//! per-subject keys, and noticing when another backend changed any of it.
//!
//! The tables are readable only by the extension owner, so the queries here run as the
//! owner on the caller's behalf, with search_path pinned to pg_catalog so that nothing the
//! caller created can stand in for a function, operator or type they use.

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::wrap::{new_subject, SUBJECT_SALT_LEN};
use akko_crypt_core::{ClassName, DataKey, DataKeyMaterial, UnwrapError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::local_settings::with_settings;
use crate::{classes, custody, errors};

thread_local! {
    /// Bumped whenever the keyring or subjects table may have changed, here or in another
    /// backend; every cache tagged with an older generation is stale.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    /// The tables whose relcache invalidations bump the generation, once looked up.
    static WATCHED: Cell<[pg_sys::Oid; 2]> = const { Cell::new([pg_sys::InvalidOid; 2]) };
    static ACTIVE: RefCell<ActiveVersions> = RefCell::new(ActiveVersions::default());
    static OWNER: Cell<(u64, pg_sys::Oid)> = const { Cell::new((0, pg_sys::InvalidOid)) };
}

#[derive(Default)]
struct ActiveVersions {
    generation: u64,
    versions: Vec<(String, u32)>,
    subjects: Vec<(Vec<u8>, SubjectId)>,
}

impl ActiveVersions {
    fn current(&mut self) -> &mut Self {
        let generation = generation();
        if self.generation != generation {
            self.versions.clear();
            self.subjects.clear();
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

fn watch_tables() {
    if WATCHED.with(Cell::get)[0] != pg_sys::InvalidOid {
        return;
    }
    let oids = unsafe {
        let schema = pg_sys::get_namespace_oid(c"akko_crypt".as_ptr(), false);
        [
            pg_sys::get_relname_relid(c"keyring".as_ptr(), schema),
            pg_sys::get_relname_relid(c"subjects".as_ptr(), schema),
        ]
    };
    WATCHED.with(|w| w.set(oids));
}

/// Makes every backend drop its cached keyring state when this transaction commits.
pub fn announce_change() {
    watch_tables();
    for oid in WATCHED.with(Cell::get) {
        unsafe { pg_sys::CacheInvalidateRelcacheByRelid(oid) };
    }
    bump_generation();
}

fn extension_owner() -> pg_sys::Oid {
    let generation = generation();
    let (cached_at, owner) = OWNER.with(Cell::get);
    if cached_at == generation {
        return owner;
    }
    let owner = read_one::<pg_sys::Oid>(
        "find the extension owner",
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'akko_crypt'",
        &[],
    )
    .unwrap_or_else(|| errors::extension_missing());
    OWNER.with(|o| o.set((generation, owner)));
    owner
}

/// Gives the caller back their identity when the privileged section returns. On an error,
/// transaction or subtransaction abort restores it, as it does for SECURITY DEFINER
/// functions.
struct RestoreCaller {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for RestoreCaller {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
        }
    }
}

/// Runs `f` as the extension owner, the only role that can read the keyring tables, in a
/// security-restricted operation with search_path = pg_catalog, pg_temp (as PostgreSQL
/// does for maintenance commands).
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    watch_tables();
    let owner = extension_owner();
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut user, &mut context) };
    let _restore = RestoreCaller { user, context };
    with_settings(&[(c"search_path", c"pg_catalog, pg_temp")], || {
        unsafe {
            pg_sys::SetUserIdAndSecContext(
                owner,
                context
                    | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                    | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
            )
        };
        f()
    })
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

fn select_active_version(class: ClassName<'_>) -> Option<u32> {
    read_one::<i32>(
        "read the keyring",
        "SELECT version FROM akko_crypt.keyring WHERE class = $1 AND state = 'active'",
        &[class.as_str().into()],
    )
    .map(|v| v as u32)
}

/// Refuses to add a key under a root other than the one the keyring already uses: data
/// sealed under two roots would need both to open.
pub fn require_keyring_root() {
    let session = custody::require_fingerprint();
    let other = read_one::<String>(
        "read the keyring",
        "SELECT root_fingerprint FROM akko_crypt.keyring \
         WHERE state <> 'destroyed' AND root_fingerprint <> $1 LIMIT 1",
        &[session.to_string().into()],
    );
    if let Some(other) = other {
        errors::wrong_root(&session.to_string(), &other);
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

fn create_first_version(class: ClassName<'_>) -> u32 {
    if unsafe { pg_sys::IsInParallelMode() } {
        errors::keyring_write_in_parallel_query(format!(
            "the first seal of data class \"{}\" writes its key to the keyring",
            class.as_str()
        ));
    }
    require_keyring_root();
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

/// Runs `f` with the key for `class`/`version` (and `subject`), unwrapping and deriving it
/// on first use in this session.
pub fn with_key<R>(
    class: ClassName<'_>,
    version: u32,
    subject: Option<&SubjectId>,
    f: impl FnOnce(&DataKey) -> R,
) -> R {
    let generation = generation();
    let f = match custody::with_cached_key(class.as_str(), version, subject, generation, f) {
        Ok(result) => return result,
        Err(f) => f,
    };
    let salt = subject.map(subject_salt);
    let key = with_material(class, version, |material| match (subject, &salt) {
        (Some(id), Some(salt)) => material.subject_key(id, salt),
        _ => material.cipher(),
    });
    let result = f(&key);
    custody::remember_key(class.as_str(), version, subject, generation, key);
    result
}

/// Runs `f` with the data key material of `class`/`version`, unwrapping it on first use in
/// this session.
pub fn with_material<R>(
    class: ClassName<'_>,
    version: u32,
    f: impl FnOnce(&DataKeyMaterial) -> R,
) -> R {
    let generation = generation();
    match custody::with_cached_material(class.as_str(), version, generation, f) {
        Ok(result) => result,
        Err(f) => {
            let material = unwrap_from_keyring(class, version);
            let result = f(&material);
            custody::remember_material(class.as_str(), version, generation, material);
            result
        }
    }
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

/// The id of `subject` (text in the database encoding), created with a fresh random salt
/// on first use.
pub fn subject_id(subject: &[u8]) -> SubjectId {
    let cached = ACTIVE.with(|a| {
        a.borrow_mut()
            .current()
            .subjects
            .iter()
            .find(|(name, _)| name == subject)
            .map(|(_, id)| *id)
    });
    if let Some(id) = cached {
        return id;
    }
    let generation = generation();
    let stored = if unsafe { pg_sys::IsInParallelMode() } {
        registered_subject(subject).or_else(|| {
            errors::keyring_write_in_parallel_query(
                "the first seal for a new subject registers it in the keyring".to_owned(),
            )
        })
    } else {
        register_subject(subject)
    };
    let id: SubjectId = stored
        .and_then(|bytes| bytes.try_into().ok())
        .unwrap_or_else(|| errors::subject_forgotten());
    ACTIVE.with(|a| {
        let mut a = a.borrow_mut();
        if a.generation == generation {
            a.subjects.push((subject.to_vec(), id));
        }
    });
    id
}

fn registered_subject(subject: &[u8]) -> Option<Vec<u8>> {
    as_owner(|| {
        read_one::<Vec<u8>>(
            "read the subject",
            "SELECT id FROM akko_crypt.subjects WHERE subject = $1",
            &[text_datum(subject)],
        )
    })
}

/// The id of `subject`, registered with a fresh random salt if it is new.
fn register_subject(subject: &[u8]) -> Option<Vec<u8>> {
    let (id, salt) = new_subject().unwrap_or_else(|_| errors::randomness_unavailable());
    as_owner(|| {
        Spi::get_one_with_args::<Vec<u8>>(
            "WITH created AS (\
               INSERT INTO akko_crypt.subjects (subject, id, salt) VALUES ($1, $2, $3) \
               ON CONFLICT (subject) DO NOTHING RETURNING id) \
             SELECT id FROM created UNION ALL \
             SELECT id FROM akko_crypt.subjects WHERE subject = $1 LIMIT 1",
            &[
                text_datum(subject),
                id.to_vec().into(),
                salt.to_vec().into(),
            ],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("register the subject", e))
    })
}

/// Text in the database encoding as a query argument, without a UTF-8 round trip.
fn text_datum<'a>(bytes: &[u8]) -> DatumWithOid<'a> {
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

/// Appends to akko_crypt.audit_log (as the owner, since nobody else may write it) and to
/// the server log, which also keeps what a rolled-back transaction loses.
pub fn audit(
    operation: &str,
    class: Option<&str>,
    version: Option<u32>,
    detail: Option<&str>,
    outcome: &str,
) {
    let (role, session_role) = unsafe {
        (
            CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false))
                .to_string_lossy()
                .into_owned(),
            CStr::from_ptr(pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), false))
                .to_string_lossy()
                .into_owned(),
        )
    };
    pgrx::log!(
        "akko_crypt audit: {operation} class={} version={} by {role} (session {session_role}): {outcome}{}",
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
