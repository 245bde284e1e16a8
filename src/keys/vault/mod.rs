//! The root key from Vault or OpenBao: login with a token cached for the session, the two
//! sources (a KV v2 secret, or a Transit-wrapped key kept in `akko_crypt.transit_root`),
//! lazy and explicit unlock, and `vault_init_transit`. Its settings are in `settings`; the
//! wait for HTTP, on a helper thread, in `wait`.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use akko_crypt_core::key::ROOT_KEY_LEN;
use akko_crypt_core::RootKey;
use akko_crypt_vault::{Token, Vault, VaultError};
use pgrx::prelude::*;

use crate::errors::{self, raise, Error};
use crate::extension::{as_owner, audit};
use crate::keys::custody;
use crate::pg::spi::read_one;
use crate::privileges::{self, Privilege};

mod settings;
mod wait;

pub use settings::configured;

extension_sql!(
    r#"
-- Transit mode: the root key, wrapped by a Transit key that never leaves Vault. pg_dump
-- carries it; restored elsewhere, it opens nothing without that Vault.
CREATE TABLE transit_root (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    transit_key  text NOT NULL,
    wrapped_root text NOT NULL CHECK (wrapped_root LIKE 'vault:v%'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE transit_root IS 'The root key wrapped by Vault Transit (akko_crypt.vault_init_transit)';
SELECT pg_catalog.pg_extension_config_dump('transit_root', '');
REVOKE ALL ON transit_root FROM PUBLIC;
REVOKE ALL ON FUNCTION vault_init_transit() FROM PUBLIC;
"#,
    name = "transit_root",
    requires = [vault_init_transit, "keyring"]
);

pub fn init() {
    custody::unlock_on_demand_with(lazy_unlock);
    settings::define();
}

/// A login token, kept for the session while it lives and the login settings stay the same.
struct CachedToken {
    token: Token,
    identity: String,
    expires: Option<Instant>,
}

#[derive(Default)]
struct Session {
    token: Option<CachedToken>,
    /// Set by akko_crypt.lock(): no lazy unlock until the next explicit unlock().
    locked: bool,
}

thread_local! {
    static SESSION: RefCell<Session> = RefCell::new(Session::default());
}

/// Turns lazy unlocking off until the session calls unlock() again, and forgets the token.
pub fn lock() {
    SESSION.with(|s| {
        let mut s = s.borrow_mut();
        s.locked = true;
        s.token = None;
    });
}

enum Source {
    Kv { path: String, field: String },
    Transit { key: String, wrapped_root: String },
}

impl Source {
    fn label(&self) -> &'static str {
        match self {
            Source::Kv { .. } => "vault kv",
            Source::Transit { .. } => "vault transit",
        }
    }
}

fn source() -> Source {
    match settings::transit_key() {
        Some(key) => {
            let wrapped_root = as_owner(|| {
                read_one::<String>(
                    "read akko_crypt.transit_root",
                    "SELECT wrapped_root FROM akko_crypt.transit_root",
                    &[],
                )
            })
            .unwrap_or_else(|| raise(Error::TransitNotInitialised));
            Source::Transit { key, wrapped_root }
        }
        None => {
            let (path, field) = settings::kv_secret();
            Source::Kv { path, field }
        }
    }
}

/// Runs `work` with a token: the cached one if it matches and has not expired, else a new
/// login. A cached token that Vault refuses (revoked, expired early) is replaced once.
fn with_token<T: Send + 'static>(
    work: impl Fn(&Vault, &Token) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, VaultError> {
    let settings = settings::connection();
    let (login, identity) = settings::login();
    let cached = SESSION.with(|s| {
        let mut s = s.borrow_mut();
        match s.token.take() {
            Some(c) if c.identity == identity && c.expires.is_none_or(|at| at > Instant::now()) => {
                Some(c.token)
            }
            _ => None,
        }
    });
    let (result, token) = wait::off_main_thread(move || {
        let vault = match Vault::new(&settings) {
            Ok(vault) => vault,
            Err(e) => return (Err(e), None),
        };
        let fresh_login = || vault.login(&login);
        let (token, was_cached) = match cached {
            Some(token) => (token, true),
            None => match fresh_login() {
                Ok(token) => (token, false),
                Err(e) => return (Err(e), None),
            },
        };
        match work(&vault, &token) {
            Err(VaultError::Status { status: 403, .. }) if was_cached => match fresh_login() {
                Ok(token) => {
                    let result = work(&vault, &token);
                    (result, Some(token))
                }
                Err(e) => (Err(e), None),
            },
            result => (result, Some(token)),
        }
    });
    if let Some(token) = token {
        // Renewed a little before Vault would expire it.
        let expires = token.lease.map(|lease| Instant::now() + lease.mul_f64(0.9));
        SESSION.with(|s| {
            s.borrow_mut().token = Some(CachedToken {
                token,
                identity,
                expires,
            })
        });
    }
    result
}

/// A root key as Transit returns it: 32 raw bytes.
fn root_from_bytes(bytes: &[u8]) -> Option<RootKey> {
    <[u8; ROOT_KEY_LEN]>::try_from(bytes)
        .ok()
        .map(RootKey::from_bytes)
}

fn fetch_root(source: Source) -> RootKey {
    let label = source.label();
    // None: Vault answered with something that is not a 32-byte key.
    let fetched = with_token(move |vault, token| match &source {
        Source::Kv { path, field } => vault
            .kv_field(token, path, field)
            .map(|text| RootKey::parse(&text).ok()),
        Source::Transit { key, wrapped_root } => vault
            .transit_decrypt(token, key, wrapped_root)
            .map(|bytes| root_from_bytes(&bytes)),
    });
    fetched
        .unwrap_or_else(|e| {
            pgrx::log!("akko_crypt audit: unlock from {label} failed: {e}");
            raise(Error::VaultFailed {
                what: "fetch the root key",
                error: &e,
            })
        })
        .unwrap_or_else(|| raise(Error::VaultKeyMalformed { source: label }))
}

/// Fetches the root key from Vault and loads it into the session; returns where it came
/// from and how long it took.
pub fn unlock() -> (&'static str, Duration) {
    let started = Instant::now();
    let source = source();
    let label = source.label();
    let root = fetch_root(source);
    custody::load(root, label);
    SESSION.with(|s| s.borrow_mut().locked = false);
    (label, started.elapsed())
}

/// Whether a seal or open without a key would fetch one from Vault: Vault is configured,
/// the session has not locked itself, and its role may unlock.
pub fn would_unlock_lazily() -> bool {
    configured()
        && !SESSION.with(|s| s.borrow().locked)
        && privileges::held(Privilege::Unlock, None)
}

/// The unlock a seal or open makes by itself when Vault is configured, no key is loaded and
/// the session has not locked itself. Returns whether it loaded one; a role that may not
/// unlock gets 42501, and Vault is never asked.
pub fn lazy_unlock() -> bool {
    if !configured() || SESSION.with(|s| s.borrow().locked) {
        return false;
    }
    privileges::require(Privilege::Unlock, None);
    let (label, took) = unlock();
    let fingerprint = custody::fingerprint().map_or(String::new(), |f| f.to_string());
    let detail = format!(
        "root {fingerprint}, source {label}, on first use, {} ms",
        took.as_millis()
    );
    audit("unlock", None, None, Some(&detail), "ok");
    true
}

/// Moves this database to Transit mode: asks Transit for a new root key, stored here only
/// wrapped by Transit key akko_crypt.vault_transit_key, rewraps the keyring under it (with
/// the session's current root), and loads it. Returns its fingerprint.
#[pg_extern(volatile, parallel_unsafe)]
fn vault_init_transit() -> String {
    privileges::require(Privilege::Admin, None);
    let key = settings::required_transit_key();
    let exists = as_owner(|| {
        Spi::get_one::<bool>("SELECT EXISTS (SELECT FROM akko_crypt.transit_root)")
            .unwrap_or_else(|e| errors::catalog_query_failed("read akko_crypt.transit_root", e))
    });
    if exists == Some(true) {
        raise(Error::TransitRootExists);
    }
    let transit_key = key.clone();
    let (wrapped_root, plain) = with_token(move |vault, token| {
        let wrapped = vault.transit_wrapped_data_key(token, &transit_key)?;
        let plain = vault.transit_decrypt(token, &transit_key, &wrapped)?;
        Ok((wrapped, plain))
    })
    .unwrap_or_else(|e| {
        raise(Error::VaultFailed {
            what: "create a Transit-wrapped root key",
            error: &e,
        })
    });
    let root = root_from_bytes(&plain).unwrap_or_else(|| {
        raise(Error::VaultKeyMalformed {
            source: "vault transit",
        })
    });
    as_owner(|| {
        Spi::run_with_args(
            "INSERT INTO akko_crypt.transit_root (transit_key, wrapped_root) VALUES ($1, $2)",
            &[key.as_str().into(), wrapped_root.as_str().into()],
        )
        .unwrap_or_else(|e| errors::catalog_query_failed("write akko_crypt.transit_root", e))
    });
    let rewrapped = crate::keys::keyring::rewrap_keyring(&root);
    let fingerprint = root.fingerprint().to_string();
    custody::load(root, "vault transit");
    let detail =
        format!("root {fingerprint} wrapped by Transit key {key}, {rewrapped} keys rewrapped");
    audit("vault_init_transit", None, None, Some(&detail), "ok");
    fingerprint
}
