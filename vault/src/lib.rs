//! akko_crypt_vault: the few calls akko_crypt makes to Vault or OpenBao over HTTP: a login
//! (token, AppRole or JWT), a read of one KV v2 secret, and Transit's wrapped data keys and
//! decryption. Blocking, and free of PostgreSQL: the extension runs these calls on a helper
//! thread while the backend waits on its latch.
//!
//! Secrets (tokens, secret ids, JWTs, keys) are held in `Zeroizing` buffers, response bodies
//! included, and no error message carries one.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use ureq::Agent;
use zeroize::Zeroizing;

/// Where Vault is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `https://host:port`; `http://` only for a loopback address or with `allow_http`.
    pub addr: String,
    pub namespace: Option<String>,
    /// PEM file of the certificate authorities to trust, instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Bounds each whole request: connecting, sending, waiting, reading.
    pub timeout: Duration,
    pub allow_http: bool,
}

/// How to obtain a token.
pub enum Login {
    Token(Zeroizing<String>),
    AppRole {
        mount: String,
        role_id: String,
        secret_id: Zeroizing<String>,
    },
    Jwt {
        mount: String,
        role: String,
        jwt: Zeroizing<String>,
    },
}

/// A Vault token and how long it lives (None: as long as the token given in the first place).
pub struct Token {
    secret: Zeroizing<String>,
    pub lease: Option<Duration>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultError {
    /// The address is not https and not loopback, and plain http was not allowed.
    InsecureAddress,
    /// The CA file could not be read or holds no certificate.
    CaFile(String),
    /// Nothing answered: refused, unresolvable, reset, or a TLS failure.
    Unreachable(String),
    /// No complete answer within the timeout.
    TimedOut,
    /// Vault answered with an error status; `messages` are Vault's own.
    Status { status: u16, messages: Vec<String> },
    /// The AppRole or JWT login was refused; `messages` are Vault's own.
    LoginRefused { status: u16, messages: Vec<String> },
    /// Vault answered 2xx with a body that is not what the API documents.
    Malformed(&'static str),
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultError::InsecureAddress => write!(
                f,
                "the Vault address must use https unless it is a loopback address"
            ),
            VaultError::CaFile(why) => write!(f, "could not use the CA file: {why}"),
            VaultError::Unreachable(why) => write!(f, "could not reach Vault: {why}"),
            VaultError::TimedOut => write!(f, "Vault did not answer in time"),
            VaultError::Status { status, messages } if messages.is_empty() => {
                write!(f, "Vault answered HTTP {status}")
            }
            VaultError::Status { status, messages } => {
                write!(f, "Vault answered HTTP {status}: {}", messages.join("; "))
            }
            VaultError::LoginRefused { status, messages } => write!(
                f,
                "Vault refused the login (HTTP {status}): {}",
                messages.join("; ")
            ),
            VaultError::Malformed(what) => write!(f, "unexpected answer from Vault: {what}"),
        }
    }
}

impl std::error::Error for VaultError {}

fn is_loopback(addr: &str) -> bool {
    let rest = addr.strip_prefix("http://").unwrap_or(addr);
    let host = if let Some(bracketed) = rest.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        rest.split([':', '/']).next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub struct Vault {
    agent: Agent,
    addr: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct AuthBody {
    auth: Auth,
}

#[derive(Deserialize)]
struct Auth {
    client_token: Zeroizing<String>,
    #[serde(default)]
    lease_duration: u64,
}

#[derive(Deserialize)]
struct DataBody<T> {
    data: T,
}

#[derive(Deserialize)]
struct KvVersion {
    data: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct WrappedDataKey {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: Zeroizing<String>,
}

impl Vault {
    pub fn new(settings: &Settings) -> Result<Vault, VaultError> {
        let addr = settings.addr.trim_end_matches('/').to_owned();
        let https = addr.starts_with("https://");
        if !https && !(addr.starts_with("http://") && (settings.allow_http || is_loopback(&addr))) {
            return Err(VaultError::InsecureAddress);
        }
        let mut tls = TlsConfig::builder();
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| VaultError::CaFile(format!("{}: {e}", path.display())))?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect::<Vec<Certificate<'static>>>();
            if certs.is_empty() {
                return Err(VaultError::CaFile(format!(
                    "{}: no PEM certificate in it",
                    path.display()
                )));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let agent = Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls.build())
            .build()
            .new_agent();
        Ok(Vault {
            agent,
            addr,
            namespace: settings.namespace.clone(),
        })
    }

    fn with_headers<B>(
        &self,
        mut request: ureq::RequestBuilder<B>,
        token: Option<&Token>,
    ) -> ureq::RequestBuilder<B> {
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token.secret.as_str());
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        request
    }

    fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        token: Option<&Token>,
        body: Option<serde_json::Value>,
    ) -> Result<T, VaultError> {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let response = match body {
            Some(body) => {
                let body = Zeroizing::new(body.to_string());
                self.with_headers(self.agent.post(&url), token)
                    .header("Content-Type", "application/json")
                    .send(body.as_bytes())
            }
            None => self.with_headers(self.agent.get(&url), token).call(),
        };
        let mut response = response.map_err(transport_error)?;
        let status = response.status().as_u16();
        let mut bytes = Zeroizing::new(Vec::new());
        response
            .body_mut()
            .as_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| match transport_error(ureq::Error::Io(e)) {
                VaultError::TimedOut => VaultError::TimedOut,
                other => other,
            })?;
        if !(200..300).contains(&status) {
            let messages = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|body| body.errors)
                .unwrap_or_default();
            return Err(VaultError::Status { status, messages });
        }
        serde_json::from_slice(&bytes).map_err(|_| VaultError::Malformed("not the JSON expected"))
    }

    /// Logs in; a token given as such is used as it is.
    pub fn login(&self, login: &Login) -> Result<Token, VaultError> {
        let (mount, body) = match login {
            Login::Token(secret) => {
                return Ok(Token {
                    secret: secret.clone(),
                    lease: None,
                })
            }
            Login::AppRole {
                mount,
                role_id,
                secret_id,
            } => (
                mount,
                serde_json::json!({ "role_id": role_id, "secret_id": secret_id.as_str() }),
            ),
            Login::Jwt { mount, role, jwt } => (
                mount,
                serde_json::json!({ "role": role, "jwt": jwt.as_str() }),
            ),
        };
        let answer: AuthBody = self
            .call(&format!("auth/{mount}/login"), None, Some(body))
            .map_err(|e| match e {
                VaultError::Status { status, messages } if (400..=403).contains(&status) => {
                    VaultError::LoginRefused { status, messages }
                }
                other => other,
            })?;
        Ok(Token {
            secret: answer.auth.client_token,
            lease: (answer.auth.lease_duration > 0)
                .then(|| Duration::from_secs(answer.auth.lease_duration)),
        })
    }

    /// One field of the latest version of a KV v2 secret; `path` is the API path, with the
    /// `data/` segment after the mount (as in Vault policies): `secret/data/akko_crypt`.
    pub fn kv_field(
        &self,
        token: &Token,
        path: &str,
        field: &str,
    ) -> Result<Zeroizing<String>, VaultError> {
        let answer: DataBody<KvVersion> = self.call(path, Some(token), None)?;
        let mut data = answer.data.data.ok_or(VaultError::Malformed(
            "the secret's latest version was deleted",
        ))?;
        let value = match data.remove(field) {
            Some(serde_json::Value::String(value)) => Zeroizing::new(value),
            Some(_) => return Err(VaultError::Malformed("the secret's field is not a string")),
            None => return Err(VaultError::Malformed("the secret has no such field")),
        };
        // The other fields are dropped unread; the value is already in a wiping buffer.
        Ok(value)
    }

    /// A new 256-bit data key from Transit key `key`, in its wrapped form only
    /// (`vault:v1:...`): its plaintext never leaves Vault.
    pub fn transit_wrapped_data_key(&self, token: &Token, key: &str) -> Result<String, VaultError> {
        let answer: DataBody<WrappedDataKey> = self.call(
            &format!("transit/datakey/wrapped/{key}"),
            Some(token),
            Some(serde_json::json!({ "bits": 256 })),
        )?;
        Ok(answer.data.ciphertext)
    }

    /// Decrypts `ciphertext` with Transit key `key`.
    pub fn transit_decrypt(
        &self,
        token: &Token,
        key: &str,
        ciphertext: &str,
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let answer: DataBody<Plaintext> = self.call(
            &format!("transit/decrypt/{key}"),
            Some(token),
            Some(serde_json::json!({ "ciphertext": ciphertext })),
        )?;
        base64::engine::general_purpose::STANDARD
            .decode(answer.data.plaintext.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| VaultError::Malformed("the Transit plaintext is not base64"))
    }
}

fn transport_error(error: ureq::Error) -> VaultError {
    match error {
        ureq::Error::Timeout(_) => VaultError::TimedOut,
        ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => VaultError::TimedOut,
        other => VaultError::Unreachable(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token {
            secret: Zeroizing::new("t".into()),
            lease: None,
        }
    }

    fn settings(addr: &str) -> Settings {
        Settings {
            addr: addr.to_owned(),
            namespace: None,
            ca_file: None,
            timeout: Duration::from_millis(500),
            allow_http: false,
        }
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for addr in [
            "http://127.0.0.1:8200",
            "http://localhost:8200",
            "http://[::1]:8200/",
        ] {
            assert!(Vault::new(&settings(addr)).is_ok(), "{addr}");
        }
        for addr in [
            "http://vault.internal:8200",
            "http://10.0.0.1:8200",
            "ftp://127.0.0.1",
        ] {
            assert_eq!(
                Vault::new(&settings(addr)).err(),
                Some(VaultError::InsecureAddress),
                "{addr}"
            );
        }
        let allowed = Settings {
            allow_http: true,
            ..settings("http://vault.internal:8200")
        };
        assert!(Vault::new(&allowed).is_ok());
        assert!(Vault::new(&settings("https://vault.internal:8200")).is_ok());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join("akko_crypt_vault_empty_ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let with_ca = Settings {
            ca_file: Some(path),
            ..settings("https://vault.internal:8200")
        };
        assert!(matches!(Vault::new(&with_ca), Err(VaultError::CaFile(_))));
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let vault = Vault::new(&settings("http://127.0.0.1:9")).unwrap();
        let token = token();
        assert!(matches!(
            vault.kv_field(&token, "secret/data/x", "root_key"),
            Err(VaultError::Unreachable(_))
        ));
    }

    #[test]
    fn a_listener_that_never_answers_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let vault = Vault::new(&settings(&addr)).unwrap();
        let token = token();
        let started = std::time::Instant::now();
        assert_eq!(
            vault.kv_field(&token, "secret/data/x", "root_key").err(),
            Some(VaultError::TimedOut)
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    /// A listener that answers every request with `status` and `body`, then closes.
    fn answering(status: &'static str, body: &'static str) -> String {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                read_whole_request(&mut stream);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        addr
    }

    /// Reads a request's headers and body: closing a socket with bytes still unread makes
    /// the kernel reset the connection, and the client may then see the reset instead of
    /// the answer.
    fn read_whole_request(stream: &mut std::net::TcpStream) {
        use std::io::Read;
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                let headers = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                let body_len = headers
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|len| len.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if request.len() >= end + 4 + body_len {
                    return;
                }
            }
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&chunk[..n]),
            }
        }
    }

    #[test]
    fn answers_that_are_not_the_documented_json_are_malformed() {
        let token = token();
        for body in ["not json", r#"{"data": {"data": {"other": "x"}}}"#, "[]"] {
            let addr = answering("200 OK", body);
            let vault = Vault::new(&settings(&addr)).unwrap();
            assert!(
                matches!(
                    vault.kv_field(&token, "secret/data/x", "root_key"),
                    Err(VaultError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn an_error_status_carries_vaults_messages_and_a_refused_login_is_told_apart() {
        let addr = answering(
            "400 Bad Request",
            r#"{"errors": ["invalid role or secret ID"]}"#,
        );
        let vault = Vault::new(&settings(&addr)).unwrap();
        let login = Login::AppRole {
            mount: "approle".into(),
            role_id: "r".into(),
            secret_id: Zeroizing::new("s".into()),
        };
        let refused = VaultError::LoginRefused {
            status: 400,
            messages: vec!["invalid role or secret ID".into()],
        };
        assert_eq!(vault.login(&login).err(), Some(refused));
        let token = token();
        assert_eq!(
            vault.kv_field(&token, "secret/data/x", "root_key").err(),
            Some(VaultError::Status {
                status: 400,
                messages: vec!["invalid role or secret ID".into()],
            })
        );
    }
}
