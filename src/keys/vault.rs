//! The root key from Vault or OpenBao: configuration, login, the two sources (a KV v2 secret,
//! or a Transit-wrapped key kept in `akko_crypt.transit_root`), and waiting for HTTP without
//! blocking the backend.
//!
//! The HTTP call runs on a helper thread (`akko_crypt_vault` knows nothing of PostgreSQL, and
//! nothing here is called off the main thread); the backend waits on its latch and a socket
//! the helper writes to when done, so `statement_timeout` and `pg_cancel_backend` end the wait
//! at once, and `akko_crypt.vault_timeout` bounds it.

use std::cell::RefCell;
use std::ffi::{CStr, CString};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use akko_crypt_core::key::ROOT_KEY_LEN;
use akko_crypt_core::RootKey;
use akko_crypt_vault::{Login, Settings, Token, Vault, VaultError};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use zeroize::Zeroizing;

use crate::errors::{self, raise, Error};
use crate::extension::{as_owner, audit};
use crate::keys::custody;
use crate::pg::spi::read_one;
use crate::privileges::{self, Privilege};

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

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum VaultAuth {
    Token,
    Approle,
    Jwt,
}

static ADDR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static AUTH: GucSetting<VaultAuth> = GucSetting::<VaultAuth>::new(VaultAuth::Token);
static TOKEN_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static APPROLE_MOUNT: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"approle"));
static APPROLE_ROLE_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static APPROLE_SECRET_ID_FILE: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
static JWT_MOUNT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"jwt"));
static JWT_ROLE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static JWT_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KV_PATH: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static KV_FIELD: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"root_key"));
static TRANSIT_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CA_FILE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static NAMESPACE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ALLOW_HTTP: GucSetting<bool> = GucSetting::<bool>::new(false);
static TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(2000);

pub fn init() {
    custody::unlock_on_demand_with(lazy_unlock);
    // Everything that names a credential, or where a credential is sent, is for superusers
    // (and ALTER ROLE ... SET by one): a role that could point vault_addr elsewhere could
    // collect the token.
    let strings: [(&CStr, &CStr, &'static GucSetting<Option<CString>>); 13] = [
        (c"akko_crypt.vault_addr", c"Vault or OpenBao address, https://host:port (http only on loopback unless vault_allow_http).", &ADDR),
        (c"akko_crypt.vault_token_file", c"File holding the Vault token, for vault_auth = token.", &TOKEN_FILE),
        (c"akko_crypt.vault_approle_mount", c"Mount path of the AppRole auth method.", &APPROLE_MOUNT),
        (c"akko_crypt.vault_approle_role_id", c"AppRole role_id, for vault_auth = approle.", &APPROLE_ROLE_ID),
        (c"akko_crypt.vault_approle_secret_id_file", c"File holding the AppRole secret_id.", &APPROLE_SECRET_ID_FILE),
        (c"akko_crypt.vault_jwt_mount", c"Mount path of the JWT auth method.", &JWT_MOUNT),
        (c"akko_crypt.vault_jwt_role", c"JWT auth role, for vault_auth = jwt.", &JWT_ROLE),
        (c"akko_crypt.vault_jwt_file", c"File holding the JWT presented to Vault.", &JWT_FILE),
        (c"akko_crypt.vault_kv_path", c"KV v2 secret holding the root key, as an API path: mount/data/path.", &KV_PATH),
        (c"akko_crypt.vault_kv_field", c"Field of the KV secret that holds the root key (hex or base64).", &KV_FIELD),
        (c"akko_crypt.vault_transit_key", c"Transit key that wraps the root key; set, it selects Transit mode.", &TRANSIT_KEY),
        (c"akko_crypt.vault_ca_file", c"PEM file of the certificate authorities that sign Vault's certificate.", &CA_FILE),
        (c"akko_crypt.vault_namespace", c"Vault namespace, sent as X-Vault-Namespace.", &NAMESPACE),
    ];
    for (name, description, setting) in strings {
        GucRegistry::define_string_guc(
            name,
            description,
            c"",
            setting,
            GucContext::Suset,
            GucFlags::default(),
        );
    }
    GucRegistry::define_enum_guc(
        c"akko_crypt.vault_auth",
        c"How akko_crypt logs in to Vault: token, approle or jwt.",
        c"",
        &AUTH,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"akko_crypt.vault_allow_http",
        c"Allows plain http to a Vault address that is not loopback.",
        c"The token and the root key then cross the network in clear.",
        &ALLOW_HTTP,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"akko_crypt.vault_timeout",
        c"Longest wait for one Vault request, connection included.",
        c"statement_timeout and pg_cancel_backend end the wait sooner.",
        &TIMEOUT_MS,
        1,
        600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
}

fn setting(value: &GucSetting<Option<CString>>) -> Option<String> {
    value
        .get()
        .and_then(|v| v.into_string().ok())
        .filter(|v| !v.is_empty())
}

fn required(value: &GucSetting<Option<CString>>, name: &str) -> String {
    setting(value).unwrap_or_else(|| raise(Error::VaultSettingMissing { name }))
}

/// Whether the root key comes from Vault: akko_crypt.vault_addr is set.
pub fn configured() -> bool {
    setting(&ADDR).is_some()
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

fn read_secret_file(name: &str, path: &str) -> Zeroizing<String> {
    let text = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .unwrap_or_else(|e| {
            raise(Error::VaultFileUnreadable {
                name,
                path,
                error: &e,
            })
        });
    Zeroizing::new(text.trim().to_owned())
}

/// The login the settings describe, and a label of who logs in (never a secret), which
/// tells when a cached token no longer matches the settings.
fn login() -> (Login, String) {
    match AUTH.get() {
        VaultAuth::Token => {
            let file = required(&TOKEN_FILE, "akko_crypt.vault_token_file");
            let token = read_secret_file("akko_crypt.vault_token_file", &file);
            (Login::Token(token), format!("token file {file}"))
        }
        VaultAuth::Approle => {
            let mount = required(&APPROLE_MOUNT, "akko_crypt.vault_approle_mount");
            let role_id = required(&APPROLE_ROLE_ID, "akko_crypt.vault_approle_role_id");
            let file = required(
                &APPROLE_SECRET_ID_FILE,
                "akko_crypt.vault_approle_secret_id_file",
            );
            let secret_id = read_secret_file("akko_crypt.vault_approle_secret_id_file", &file);
            let identity = format!("approle {mount}/{role_id}");
            (
                Login::AppRole {
                    mount,
                    role_id,
                    secret_id,
                },
                identity,
            )
        }
        VaultAuth::Jwt => {
            let mount = required(&JWT_MOUNT, "akko_crypt.vault_jwt_mount");
            let role = required(&JWT_ROLE, "akko_crypt.vault_jwt_role");
            let file = required(&JWT_FILE, "akko_crypt.vault_jwt_file");
            let jwt = read_secret_file("akko_crypt.vault_jwt_file", &file);
            let identity = format!("jwt {mount}/{role}");
            (Login::Jwt { mount, role, jwt }, identity)
        }
    }
}

fn settings() -> Settings {
    Settings {
        addr: required(&ADDR, "akko_crypt.vault_addr"),
        namespace: setting(&NAMESPACE),
        ca_file: setting(&CA_FILE).map(Into::into),
        timeout: timeout(),
        allow_http: ALLOW_HTTP.get(),
    }
}

fn timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.get().max(1) as u64)
}

fn source() -> Source {
    match setting(&TRANSIT_KEY) {
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
        None => Source::Kv {
            path: required(&KV_PATH, "akko_crypt.vault_kv_path"),
            field: required(&KV_FIELD, "akko_crypt.vault_kv_field"),
        },
    }
}

/// Runs `work` with a token: the cached one if it matches and has not expired, else a new
/// login. A cached token that Vault refuses (revoked, expired early) is replaced once.
fn with_token<T: Send + 'static>(
    work: impl Fn(&Vault, &Token) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, VaultError> {
    let settings = settings();
    let (login, identity) = login();
    let cached = SESSION.with(|s| {
        let mut s = s.borrow_mut();
        match s.token.take() {
            Some(c) if c.identity == identity && c.expires.is_none_or(|at| at > Instant::now()) => {
                Some(c.token)
            }
            _ => None,
        }
    });
    let (result, token) = off_main_thread(move || {
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

/// Waits for `work` on a helper thread, on the latch and a socket the helper writes to when
/// done, so that interrupts (statement_timeout, pg_cancel_backend, shutdown) are served at
/// once. At akko_crypt.vault_timeout the wait ends; an abandoned helper ends by itself, as
/// its requests carry the same timeout.
fn off_main_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let deadline = Instant::now() + timeout();
    let (waiter, mut notifier) =
        UnixStream::pair().unwrap_or_else(|e| raise(Error::VaultThreadFailed { error: &e }));
    let (sender, receiver) = mpsc::channel();
    // The helper must not take the backend's signals: they belong to the main thread.
    // SAFETY: sigset_t is plain data that sigfillset initialises; the mask is changed on this
    // thread only and put back right after the spawn, so the new thread inherits a full mask
    // and the backend's own is as before.
    let spawned = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        let spawned = std::thread::Builder::new()
            .name("akko_crypt vault".into())
            .spawn(move || {
                let _ = sender.send(work());
                let _ = notifier.write_all(&[1]);
            });
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        spawned
    };
    spawned.unwrap_or_else(|e| raise(Error::VaultThreadFailed { error: &e }));
    loop {
        if let Ok(result) = receiver.try_recv() {
            let mut drained = [0u8; 1];
            let _ = (&waiter).read(&mut drained);
            return result;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            raise(Error::VaultFailed {
                what: "fetch the root key",
                error: &VaultError::TimedOut,
            });
        }
        // SAFETY: MyLatch is this backend's latch; the socket is the waiter end of a pair this
        // function owns for the whole wait; WL_EXIT_ON_PM_DEATH makes the postmaster's death
        // end the backend, not the wait.
        unsafe {
            let events = pg_sys::WaitLatchOrSocket(
                pg_sys::MyLatch,
                (pg_sys::WL_LATCH_SET
                    | pg_sys::WL_SOCKET_READABLE
                    | pg_sys::WL_TIMEOUT
                    | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
                waiter.as_raw_fd(),
                remaining.as_millis().max(1) as _,
                pg_sys::PG_WAIT_EXTENSION,
            );
            if events & pg_sys::WL_LATCH_SET as i32 != 0 {
                pg_sys::ResetLatch(pg_sys::MyLatch);
            }
        }
        pg_sys::check_for_interrupts!();
    }
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
    let key = required(&TRANSIT_KEY, "akko_crypt.vault_transit_key");
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
