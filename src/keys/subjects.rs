//! Subjects: the people values are sealed for, each with a random id and salt that their
//! keys are derived from. The subjects table keeps a keyed hash of each name (a lookup,
//! under the blind_index class's key), never the name; forgetting a subject deletes its salt,
//! so nothing sealed for it opens again.
//!
//! The table is readable only by the extension owner, so the queries here run as the owner
//! on the caller's behalf, with search_path pinned to pg_catalog.

use std::cell::RefCell;
use std::ffi::CStr;

use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::wrap::new_subject;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{announce_change, as_owner, audit, generation};
use crate::keys::classes;
use crate::keys::keyring::{active_version, with_material};
use crate::pg::spi::{first_row, read_one, read_row};
use crate::privileges::{self, Privilege};
use crate::session_cache::{get_or_load, SessionCache};

/// Sessions that seal for many subjects would otherwise remember every subject's id forever.
const MAX_CACHED_SUBJECTS: usize = 4096;

thread_local! {
    /// The id of each subject sealed for.
    static SUBJECT_IDS: RefCell<SessionCache<Vec<u8>, SubjectId>> =
        const { RefCell::new(SessionCache::new(MAX_CACHED_SUBJECTS)) };
    /// The blind_index key versions that subject lookups are keyed under.
    static LOOKUP_VERSIONS: RefCell<SessionCache<(), Vec<u32>>> = const { RefCell::new(SessionCache::new(1)) };
}

extension_sql!(
    "REVOKE ALL ON FUNCTION hash_subject_names() FROM PUBLIC;",
    name = "subjects_grants",
    requires = [hash_subject_names, "keyring"]
);

/// The blind_index key versions subject lookups are keyed under: those of the stored
/// subjects, and the active one, which new subjects use.
fn lookup_versions() -> Vec<u32> {
    get_or_load(&LOOKUP_VERSIONS, generation(), &(), || {
        let active = active_version(classes::blind_index());
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
        versions
    })
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
            let lookup =
                with_material(classes::blind_index(), version, |m| m.subject_lookup(&utf8));
            (version, lookup.to_vec())
        })
        .collect()
}

/// Text in the database encoding, as UTF-8.
unsafe fn utf8_of(server: &[u8]) -> Vec<u8> {
    if crate::pg::encoding::database_is_utf8() {
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
    get_or_load(&SUBJECT_IDS, generation(), subject, || {
        let lookups = subject_lookups(subject);
        let stored = find_subject(subject, &lookups).or_else(|| {
            // SAFETY: reads the backend's parallel-mode flag; it cannot raise.
            if unsafe { pg_sys::IsInParallelMode() } {
                raise(Error::KeyringWriteInParallelQuery { class: None })
            }
            register_subject(&lookups[0])
        });
        stored
            .and_then(|bytes| bytes.try_into().ok())
            .unwrap_or_else(|| raise(Error::SubjectForgotten))
    })
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
    let (id, salt) = new_subject().unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
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
