//! The keyring: which key version of a class is active, unwrapping data keys on first use,
//! deriving per-subject keys from them (the subjects themselves are `subjects`), and
//! rewrapping them under a new root.
//!
//! The tables are readable only by the extension owner, so the queries here run as the
//! owner on the caller's behalf, with search_path pinned to pg_catalog so that nothing the
//! caller created can stand in for a function, operator or type they use.

use std::cell::RefCell;

use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::wrap::SUBJECT_SALT_LEN;
use akko_crypt_core::{ClassName, DataKeyMaterial, RootKey, UnwrapError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{announce_change, as_owner, audit, generation};
use crate::keys::custody::{EntryKey, KeyEntry};
use crate::pg::spi::{read_one, read_row};
use crate::privileges::{self, Privilege};
use crate::session_cache::{get_or_load, SessionCache};
use crate::{keys::classes, keys::custody};

/// Data classes a session remembers the active version of; a database has a handful.
const MAX_CACHED_CLASSES: usize = 1024;

thread_local! {
    /// The active key version of each class.
    static ACTIVE_VERSIONS: RefCell<SessionCache<String, u32>> = const { RefCell::new(SessionCache::new(MAX_CACHED_CLASSES)) };
}

/// The key version new seals of `class` use, and so the one check a seal needs: only a
/// registered class has one. The first seal of a class creates its version 1.
pub fn active_version(class: ClassName<'_>) -> u32 {
    get_or_load(&ACTIVE_VERSIONS, generation(), class.as_str(), || {
        as_owner(|| {
            select_active_version(class).unwrap_or_else(|| {
                classes::require_registered(class);
                create_first_version(class)
            })
        })
    })
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
        raise(Error::WrongRoot {
            session: &session.to_string(),
            keyring: &other,
        });
    }
    if any != Some(true) && !privileges::held(Privilege::Admin, None) {
        raise(Error::KeyringClaimNeedsAdmin);
    }
}

/// Generates a data key for `class` at `version` and returns it wrapped under the
/// session's root, with the root's fingerprint.
pub fn new_wrapped_key(class: ClassName<'_>, version: u32) -> (Vec<u8>, String) {
    let material =
        DataKeyMaterial::generate().unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
    custody::with_root(|root| {
        let wrapped = root
            .wrap(class, version, &material)
            .unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
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
        raise(Error::KeyringWriteInParallelQuery {
            class: Some(class.as_str()),
        });
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
    select_active_version(class).unwrap_or_else(|| {
        raise(Error::NoActiveVersion {
            class: class.as_str(),
        })
    })
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
    let key = EntryKey::new(class, version, subject);
    let f = match custody::with_cached(generation, &key, f) {
        Ok(result) => return result,
        Err(f) => f,
    };
    let mut entry = KeyEntry::new(material());
    let result = f(&mut entry);
    custody::remember(generation, key, entry);
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
        None => raise(Error::UnknownKeyVersion {
            class: class.as_str(),
            version,
        }),
        Some("destroyed") => raise(Error::KeyDestroyed {
            class: class.as_str(),
            version,
        }),
        Some("retired") => raise(Error::KeyRetired {
            class: class.as_str(),
            version,
        }),
        _ => {}
    }
    let wrapped = wrapped.unwrap_or_else(|| {
        raise(Error::KeyDestroyed {
            class: class.as_str(),
            version,
        })
    });
    let unwrapped = custody::with_root(|root| root.unwrap(class, version, &wrapped));
    unwrapped.unwrap_or_else(|e| match e {
        UnwrapError::NotWrappedByThisRoot => {
            let session = custody::fingerprint().map(|f| f.to_string());
            raise(Error::WrongRoot {
                session: session.as_deref().unwrap_or("none"),
                keyring: wrapped_by.as_deref().unwrap_or("unknown"),
            })
        }
        other => raise(Error::CorruptKeyring {
            class: class.as_str(),
            version,
            error: other,
        }),
    })
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
        .unwrap_or_else(|| raise(Error::SubjectForgotten))
}

/// Rewraps every data key under `new_root` with the session's root (needed only if the
/// keyring holds a key), in this transaction. Returns how many.
pub fn rewrap_keyring(new_root: &RootKey) -> i64 {
    let rewrapped = as_owner(|| {
        lock_for_writes();
        let keys: Vec<(String, i32, Vec<u8>)> = Spi::connect_mut(|client| {
            client
                .update(
                    "SELECT class, version, wrapped_key FROM akko_crypt.keyring \
                     WHERE state <> 'destroyed' FOR UPDATE",
                    None,
                    &[],
                )?
                .map(|row| {
                    Ok((
                        row.get(1)?.unwrap_or_default(),
                        row.get(2)?.unwrap_or_default(),
                        row.get(3)?.unwrap_or_default(),
                    ))
                })
                .collect::<Result<_, pgrx::spi::Error>>()
        })
        .unwrap_or_else(|e| errors::catalog_query_failed("read the keyring", e));
        if !keys.is_empty() {
            require_keyring_root();
        }
        for (class_name, version, wrapped) in &keys {
            let class = ClassName::parse(class_name)
                .unwrap_or_else(|e| raise(Error::InvalidClassName { error: e }));
            let material = custody::with_root(|root| root.unwrap(class, *version as u32, wrapped))
                .unwrap_or_else(|e| {
                    raise(Error::CorruptKeyring {
                        class: class_name,
                        version: *version as u32,
                        error: e,
                    })
                });
            let rewrapped = new_root
                .wrap(class, *version as u32, &material)
                .unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
            Spi::run_with_args(
                "UPDATE akko_crypt.keyring SET wrapped_key = $3, root_fingerprint = $4 \
                 WHERE class = $1 AND version = $2",
                &[
                    class_name.as_str().into(),
                    (*version).into(),
                    rewrapped.to_vec().into(),
                    new_root.fingerprint().to_string().into(),
                ],
            )
            .unwrap_or_else(|e| errors::catalog_query_failed("update the keyring", e));
        }
        keys.len() as i64
    });
    announce_change();
    rewrapped
}
