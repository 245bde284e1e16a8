//! Root keys (what the session holds), their fingerprints, and ready-to-use AES-256-GCM
//! keys. Every type here that holds key material zeroizes it on drop and never prints it.

use std::fmt;

use aes_gcm::{Aes256Gcm, KeyInit};
use base64::engine::general_purpose::{
    GeneralPurpose, STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
};
use base64::Engine;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

pub const ROOT_KEY_LEN: usize = 32;

/// HKDF salt for keys derived from the root: fixed, so that a root always yields the same
/// wrapping keys.
pub const HKDF_SALT: &[u8] = b"akko_crypt/v1";
const FINGERPRINT_PREFIX: &[u8] = b"akko_crypt root fingerprint v1\0";

/// Longest key text accepted; anything longer cannot hold 32 bytes in hex or base64.
const MAX_KEY_TEXT_LEN: usize = 128;

#[derive(ZeroizeOnDrop)]
pub struct RootKey {
    bytes: [u8; ROOT_KEY_LEN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyParseError {
    Empty,
    NotHexOrBase64,
    WrongLength(usize),
}

impl fmt::Display for KeyParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyParseError::Empty => write!(f, "the key is empty"),
            KeyParseError::NotHexOrBase64 => {
                write!(f, "the key is neither 64 hexadecimal digits nor base64")
            }
            KeyParseError::WrongLength(n) => {
                write!(
                    f,
                    "the key decodes to {n} bytes; a root key is {ROOT_KEY_LEN} bytes"
                )
            }
        }
    }
}

/// The first 8 bytes of a domain-separated SHA-256 of the root key: enough to tell keys
/// apart in a status report or an audit row, useless for recovering the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl RootKey {
    pub fn from_bytes(bytes: [u8; ROOT_KEY_LEN]) -> Self {
        RootKey { bytes }
    }

    /// Generates a fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; ROOT_KEY_LEN];
        getrandom::getrandom(&mut bytes)?;
        Ok(RootKey { bytes })
    }

    /// Parses 64 hexadecimal digits, or base64 (standard or URL-safe alphabet, padding
    /// optional). Surrounding whitespace is ignored. Errors never contain the input.
    pub fn parse(text: &str) -> Result<Self, KeyParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyParseError::Empty);
        }
        if text.len() > MAX_KEY_TEXT_LEN {
            return Err(KeyParseError::NotHexOrBase64);
        }
        let mut decoded = Zeroizing::new([0u8; MAX_KEY_TEXT_LEN]);
        let len = if text.len() == 2 * ROOT_KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode_to_slice(text, &mut decoded[..ROOT_KEY_LEN])
                .map_err(|_| KeyParseError::NotHexOrBase64)?;
            ROOT_KEY_LEN
        } else {
            decode_base64(text, &mut decoded[..])?
        };
        if len != ROOT_KEY_LEN {
            return Err(KeyParseError::WrongLength(len));
        }
        let mut bytes = [0u8; ROOT_KEY_LEN];
        bytes.copy_from_slice(&decoded[..ROOT_KEY_LEN]);
        Ok(RootKey { bytes })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let mut hasher = Sha256::new();
        hasher.update(FINGERPRINT_PREFIX);
        hasher.update(self.bytes);
        let digest = hasher.finalize();
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&digest[..8]);
        Fingerprint(fp)
    }

    /// The encoding `make demo` and the docs hand out: standard base64 with padding.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.bytes))
    }

    pub(crate) fn expose(&self) -> &[u8; ROOT_KEY_LEN] {
        &self.bytes
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RootKey(fingerprint {})", self.fingerprint())
    }
}

fn decode_base64(text: &str, out: &mut [u8]) -> Result<usize, KeyParseError> {
    const ENGINES: [&GeneralPurpose; 4] =
        [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD];
    for engine in ENGINES {
        if let Ok(len) = engine.decode_slice(text, out) {
            return Ok(len);
        }
    }
    out.zeroize();
    Err(KeyParseError::NotHexOrBase64)
}

/// An AES-256-GCM key, ready for use (key schedule expanded); zeroized on drop.
pub struct DataKey {
    pub(crate) cipher: Aes256Gcm,
}

// Fails to compile if aes-gcm's "zeroize" feature is ever dropped.
impl ZeroizeOnDrop for DataKey where Aes256Gcm: ZeroizeOnDrop {}

impl DataKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        DataKey {
            cipher: Aes256Gcm::new(bytes.into()),
        }
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn hex_and_base64_give_the_same_key() {
        let a = RootKey::parse(HEX).unwrap();
        let b = RootKey::parse(B64).unwrap();
        let c = RootKey::parse(&format!("  {}\n", B64.trim_end_matches('='))).unwrap();
        let d = RootKey::parse(&HEX.to_uppercase()).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.bytes, c.bytes);
        assert_eq!(a.bytes, d.bytes);
        assert_eq!(a.to_base64().as_str(), B64);
    }

    #[test]
    fn rejects_bad_keys_without_echoing_them() {
        assert_eq!(RootKey::parse("").unwrap_err(), KeyParseError::Empty);
        assert_eq!(RootKey::parse("   ").unwrap_err(), KeyParseError::Empty);
        assert_eq!(
            RootKey::parse("not a key!").unwrap_err(),
            KeyParseError::NotHexOrBase64
        );
        assert_eq!(
            RootKey::parse("AAECAwQ=").unwrap_err(),
            KeyParseError::WrongLength(5)
        );
        assert_eq!(
            RootKey::parse(&"AAAA".repeat(12)).unwrap_err(),
            KeyParseError::WrongLength(36)
        );
        assert_eq!(
            RootKey::parse(&"A".repeat(500)).unwrap_err(),
            KeyParseError::NotHexOrBase64
        );
        let secretish = "c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
        let msg = RootKey::parse(secretish).unwrap_err().to_string();
        assert!(!msg.contains(secretish));
    }

    #[test]
    fn fingerprint_and_debug_do_not_reveal_the_key() {
        let key = RootKey::parse(HEX).unwrap();
        let fp = key.fingerprint().to_string();
        assert_eq!(fp.len(), 16);
        assert!(!HEX.contains(&fp));
        let debug = format!("{key:?}");
        assert!(debug.contains(&fp));
        assert!(!debug.contains("0001020304"));
        assert_ne!(
            key.fingerprint(),
            RootKey::parse(&"11".repeat(32)).unwrap().fingerprint()
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = RootKey::generate().unwrap();
        let b = RootKey::generate().unwrap();
        assert_ne!(a.bytes, b.bytes);
    }
}
