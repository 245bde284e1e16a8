//! The operator's key lifecycle: rotate, retire, destroy, forget a subject, move to a new
//! root, unlock and lock. A data key goes
//! active -> decrypt_only (rotate_key) -> retired (retire_key) -> destroyed (destroy_key).
//! Each needs akko_crypt's admin privilege (unlock needs unlock) and none is executable by
//! PUBLIC, but `lock`, which only drops the caller's own keys. README.md, "Roles", has the
//! model.

use std::time::Duration;

use akko_crypt_core::{ClassName, RootKey};
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{announce_change, as_owner, audit};
use crate::keys::keyring::{new_wrapped_key, require_keyring_root};
use crate::pg::spi::first_row;
use crate::privileges::{self, Privilege};
use crate::{
    hooks::log_redaction, keys::classes, keys::custody, keys::keyring, keys::subjects, keys::vault,
};

extension_sql!(
    r#"
REVOKE ALL ON FUNCTION rotate_key(text), retire_key(text, integer, boolean),
    destroy_key(text, integer, boolean), forget_subject(text), rewrap(text), unlock(), add_class(text)
    FROM PUBLIC;
-- lock() only ever drops the caller's own session key.
GRANT EXECUTE ON FUNCTION lock() TO PUBLIC;
-- So that everyone can reach lock(), row_context, utf8_bytes and data_class; every other
-- object refuses PUBLIC.
GRANT USAGE ON SCHEMA akko_crypt TO PUBLIC;
"#,
    name = "key_lifecycle_grants",
    requires = [
        rotate_key,
        retire_key,
        destroy_key,
        forget_subject,
        rewrap,
        unlock,
        lock,
        add_class,
        "keyring"
    ]
);

fn key_state(class: ClassName<'_>, version: i32) -> Option<String> {
    keyring::lock_for_writes();
    first_row(
        "read the keyring",
        Spi::get_one_with_args::<String>(
            "SELECT state FROM akko_crypt.keyring WHERE class = $1 AND version = $2 FOR UPDATE",
            &[class.as_str().into(), version.into()],
        ),
    )
    .flatten()
}

fn set_state(class: ClassName<'_>, version: i32, state: &str) {
    Spi::run_with_args(
        "UPDATE akko_crypt.keyring SET state = $3, state_changed_at = now(), \
           wrapped_key = CASE WHEN $3 = 'destroyed' THEN NULL ELSE wrapped_key END \
         WHERE class = $1 AND version = $2",
        &[class.as_str().into(), version.into(), state.into()],
    )
    .unwrap_or_else(|e| errors::catalog_query_failed("update the keyring", e));
}

/// Starts a new key version of `class`; every new seal, in every session, uses it from the
/// next transaction on. Older versions become decrypt_only and keep opening.
#[pg_extern(volatile, parallel_unsafe)]
fn rotate_key(class: &str) -> i32 {
    privileges::require(Privilege::Admin, None);
    let class = classes::registered(class);
    let version = as_owner(|| {
        require_keyring_root();
        keyring::lock_for_writes();
        let version = Spi::get_one_with_args::<i32>(
            "SELECT coalesce(max(version), 0) + 1 \
             FROM akko_crypt.keyring WHERE class = $1",
            &[class.as_str().into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("read the keyring", e))
        .unwrap_or(1);
        let (wrapped, fingerprint) = new_wrapped_key(class, version as u32);
        Spi::run_with_args(
            "UPDATE akko_crypt.keyring SET state = 'decrypt_only', state_changed_at = now() \
             WHERE class = $1 AND state = 'active'",
            &[class.as_str().into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("update the keyring", e));
        Spi::run_with_args(
            "INSERT INTO akko_crypt.keyring (class, version, wrapped_key, root_fingerprint) \
             VALUES ($1, $2, $3, $4)",
            &[
                class.as_str().into(),
                version.into(),
                wrapped.into(),
                fingerprint.into(),
            ],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("add the key", e));
        version
    });
    announce_change();
    audit(
        "rotate_key",
        Some(class.as_str()),
        Some(version as u32),
        None,
        "ok",
    );
    version
}

/// Moves key `class`/`version` to the state `next` picks from its current one (None: leave
/// it), then tells every backend and the audit log. `next` raises for refused moves.
fn change_state(
    operation: &str,
    class: &str,
    version: i32,
    next: impl FnOnce(ClassName<'_>, &str) -> Option<&'static str>,
) {
    privileges::require(Privilege::Admin, None);
    let class = classes::registered(class);
    as_owner(|| match key_state(class, version) {
        None => raise(Error::UnknownKeyVersion {
            class: class.as_str(),
            version: version as u32,
        }),
        Some(state) => {
            if let Some(target) = next(class, &state) {
                set_state(class, version, target);
            }
        }
    });
    announce_change();
    audit(
        operation,
        Some(class.as_str()),
        Some(version as u32),
        None,
        "ok",
    );
}

/// Stops a decrypt_only version from opening anything; it stays in the keyring.
#[pg_extern(volatile, parallel_unsafe)]
fn retire_key(class: &str, version: i32, force: default!(bool, false)) {
    change_state("retire_key", class, version, |class, state| match state {
        "active" => raise(Error::ActiveKeyNotRetirable {
            class: class.as_str(),
            version: version as u32,
        }),
        "destroyed" => raise(Error::KeyDestroyed {
            class: class.as_str(),
            version: version as u32,
        }),
        _ if !force => raise(Error::RetireMayLeaveValues {
            class: class.as_str(),
            version: version as u32,
        }),
        _ => Some("retired"),
    });
}

/// Cryptographic erasure of one key version: its wrapped key is deleted, so every value
/// sealed under it, wherever its bytes remain, can never be opened again.
#[pg_extern(volatile, parallel_unsafe)]
fn destroy_key(class: &str, version: i32, force: default!(bool, false)) {
    change_state("destroy_key", class, version, |class, state| match state {
        "active" => raise(Error::ActiveKeyNotDestroyable {
            class: class.as_str(),
            version: version as u32,
        }),
        "destroyed" => None,
        "retired" => Some("destroyed"),
        _ if !force => raise(Error::KeyNotRetired {
            class: class.as_str(),
            version: version as u32,
        }),
        _ => Some("destroyed"),
    });
}

/// Deletes a subject's salt: every value sealed for it, in every table, can never be
/// opened again. Returns false if the subject was unknown. The audit log names the subject
/// by its random id, never by the name given.
#[pg_extern(volatile, parallel_unsafe)]
fn forget_subject(subject: &str) -> bool {
    privileges::require(Privilege::Admin, None);
    let forgotten = subjects::forget_subject(subject.as_bytes());
    let detail = forgotten.map(|id| {
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        format!("subject id {id}")
    });
    let outcome = if forgotten.is_some() {
        "ok"
    } else {
        "unknown subject"
    };
    audit("forget_subject", None, None, detail.as_deref(), outcome);
    forgotten.is_some()
}

/// Moves the keyring to a new root key: every data key is unwrapped with the session's
/// root and wrapped again under `new_key`, in this transaction; no sealed value changes.
/// Pass the new key as a bind parameter; statements naming rewrap are kept out of the log.
#[pg_extern(volatile, parallel_unsafe)]
fn rewrap(new_key: &str) -> i64 {
    log_redaction::current_statement_carries_secret(new_key.as_bytes());
    privileges::require(Privilege::Admin, None);
    let new_root =
        RootKey::parse(new_key).unwrap_or_else(|e| raise(Error::InvalidNewKey { error: e }));
    let old = custody::require_fingerprint();
    let rewrapped = keyring::rewrap_keyring(&new_root);
    let detail = format!("root {old} -> {}, {rewrapped} keys", new_root.fingerprint());
    audit("rewrap", None, None, Some(&detail), "ok");
    rewrapped
}

/// Checks that the session's root is the one that wrapped the keyring (by fingerprint),
/// records the unlock in the audit log, and returns the root's fingerprint.
#[pg_extern(volatile, parallel_unsafe)]
fn unlock() -> String {
    privileges::require(Privilege::Unlock, None);
    let (source, took) = if vault::configured() {
        vault::unlock()
    } else {
        (
            custody::source().unwrap_or("akko_crypt.key"),
            Duration::ZERO,
        )
    };
    let fingerprint = custody::require_fingerprint();
    as_owner(require_keyring_root);
    let detail = format!(
        "root {fingerprint}, source {source}, {} ms",
        took.as_millis()
    );
    audit("unlock", None, None, Some(&detail), "ok");
    fingerprint.to_string()
}

/// Adds a data class; returns false if it already existed. Its first key version is
/// created by its first seal (or by rotate_key).
#[pg_extern(parallel_unsafe)]
fn add_class(name: &str) -> bool {
    privileges::require(Privilege::Admin, None);
    let class = classes::parse(name);
    let added = as_owner(|| {
        Spi::get_one_with_args::<bool>(
            "WITH added AS (INSERT INTO akko_crypt.data_class (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1) \
             SELECT count(*) > 0 FROM added",
            &[class.as_str().into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("add the data class", e))
        .unwrap_or_default()
    });
    if added {
        audit("add_class", Some(class.as_str()), None, None, "ok");
    }
    added
}

/// Drops every key this session holds, at once and for good: even if the surrounding
/// transaction rolls back, the keys stay gone and must be set again, in this backend and in
/// the workers of any later parallel query.
#[pg_extern(volatile, parallel_unsafe)]
fn lock() {
    custody::forget_all_keys();
    vault::lock();
}
