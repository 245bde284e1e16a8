//! The Vault settings: where Vault is, how akko_crypt logs in, where the root key is, and how
//! long a request may take. Those that name a credential or where one is sent are for
//! superusers; a secret is read from the file a setting names, never from the setting.

use std::ffi::{CStr, CString};
use std::time::Duration;

use akko_crypt_vault::{Login, Settings};
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use zeroize::Zeroizing;

use crate::errors::{raise, Error};

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

/// Defines the settings, from _PG_init.
pub fn define() {
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
pub fn login() -> (Login, String) {
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

/// Where Vault is and how to reach it.
pub fn connection() -> Settings {
    Settings {
        addr: required(&ADDR, "akko_crypt.vault_addr"),
        namespace: setting(&NAMESPACE),
        ca_file: setting(&CA_FILE).map(Into::into),
        timeout: timeout(),
        allow_http: ALLOW_HTTP.get(),
    }
}

pub fn timeout() -> Duration {
    Duration::from_millis(TIMEOUT_MS.get().max(1) as u64)
}

/// The Transit key that wraps the root key, when Transit mode is set.
pub fn transit_key() -> Option<String> {
    setting(&TRANSIT_KEY)
}

pub fn required_transit_key() -> String {
    required(&TRANSIT_KEY, "akko_crypt.vault_transit_key")
}

/// The KV v2 secret that holds the root key: its API path and field.
pub fn kv_secret() -> (String, String) {
    (
        required(&KV_PATH, "akko_crypt.vault_kv_path"),
        required(&KV_FIELD, "akko_crypt.vault_kv_field"),
    )
}
