//! The keyring's cryptography. Data keys are random and stored only wrapped: sealed with
//! AES-256-GCM under a wrapping key that HKDF-SHA256 derives per class from the root key,
//! so rewrapping under a new root rewrites no data. Subject keys are derived from a data
//! key and a per-subject salt, so deleting the salt erases one subject's values. Values are
//! sealed under value keys derived from either, one per subkey id (see `envelope`).

use std::fmt;

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use crate::class::ClassName;
use crate::column::{BindingId, BlindIndexKey};
use crate::envelope::{
    Envelope, SealingKey, SubjectId, SubkeyId, NONCE_LEN, SUBJECT_ID_LEN, SUBKEY_ID_LEN, TAG_LEN,
};
use crate::key::{DataKey, RootKey, HKDF_SALT};

pub const DATA_KEY_LEN: usize = 32;
pub const SUBJECT_SALT_LEN: usize = 32;
pub const WRAP_FORMAT_V1: u8 = 1;
/// format (1) | nonce (12) | wrapped data key (32) | tag (16)
pub const WRAPPED_KEY_LEN: usize = 1 + NONCE_LEN + DATA_KEY_LEN + TAG_LEN;

const WRAPPING_KEY_INFO_PREFIX: &[u8] = b"akko_crypt wrapping key\0";
const WRAPPED_KEY_AAD_PREFIX: &[u8] = b"akko_crypt wrapped key\0";
const SUBJECT_KEY_INFO_PREFIX: &[u8] = b"akko_crypt subject key\0";
const BLIND_INDEX_KEY_INFO_PREFIX: &[u8] = b"akko_crypt blind index key\0";
const VALUE_KEY_SALT: &[u8] = b"akko_crypt/v2";
const VALUE_KEY_INFO_PREFIX: &[u8] = b"akko_crypt value key\0";
const SUBJECT_LOOKUP_KEY_INFO: &[u8] = b"akko_crypt subject lookup key\0";

/// Length of a subject's lookup hash in `akko_crypt.subjects`.
pub const SUBJECT_LOOKUP_LEN: usize = 32;

/// A data key's 32 raw bytes; zeroized on drop.
#[derive(ZeroizeOnDrop)]
pub struct DataKeyMaterial {
    bytes: [u8; DATA_KEY_LEN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnwrapError {
    Malformed(usize),
    UnsupportedFormat(u8),
    /// The tag did not verify: a different root wrapped it, or the bytes were altered.
    NotWrappedByThisRoot,
}

impl fmt::Display for UnwrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnwrapError::Malformed(n) => write!(
                f,
                "wrapped key is {n} bytes; a wrapped key is {WRAPPED_KEY_LEN} bytes"
            ),
            UnwrapError::UnsupportedFormat(v) => {
                write!(f, "unsupported wrapped-key format {v}")
            }
            UnwrapError::NotWrappedByThisRoot => write!(
                f,
                "the session's root key did not wrap this key (or the wrapped key was altered)"
            ),
        }
    }
}

impl DataKeyMaterial {
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKeyMaterial { bytes }
    }

    /// A fresh data key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; DATA_KEY_LEN];
        getrandom::getrandom(&mut bytes)?;
        Ok(DataKeyMaterial { bytes })
    }

    pub fn cipher(&self) -> DataKey {
        DataKey::from_bytes(&self.bytes)
    }

    /// The key of one subject: HKDF-SHA256(salt = subject salt, ikm = data key,
    ///                                      info = "akko_crypt subject key\0" || subject id)
    pub fn subject_material(
        &self,
        subject: &SubjectId,
        salt: &[u8; SUBJECT_SALT_LEN],
    ) -> DataKeyMaterial {
        let okm = hkdf_sha256(salt, &self.bytes, &[SUBJECT_KEY_INFO_PREFIX, subject]);
        DataKeyMaterial { bytes: *okm }
    }

    /// The key a version 2 envelope with `subkey` is sealed under:
    /// HKDF-SHA256(salt = "akko_crypt/v2", ikm = this key, info = "akko_crypt value key\0" || subkey id)
    pub fn value_key(&self, subkey: &SubkeyId) -> DataKey {
        let okm = hkdf_sha256(
            VALUE_KEY_SALT,
            &self.bytes,
            &[VALUE_KEY_INFO_PREFIX, subkey],
        );
        DataKey::from_bytes(&okm)
    }

    /// A value key under a fresh random subkey id, with a full budget of seals.
    pub fn new_sealing_key(&self) -> Result<SealingKey, getrandom::Error> {
        let mut subkey = [0u8; SUBKEY_ID_LEN];
        getrandom::getrandom(&mut subkey)?;
        Ok(SealingKey::new(subkey, self.value_key(&subkey)))
    }

    /// The key that opens `envelope`, if this is its data key (or subject key): the value key
    /// of its subkey id for version 2, this key itself for version 1.
    pub fn key_for(&self, envelope: &Envelope<'_>) -> DataKey {
        match envelope.subkey {
            Some(subkey) => self.value_key(subkey),
            None => self.cipher(),
        }
    }

    /// HKDF-SHA256(salt = "akko_crypt/v1", ikm = data key,
    ///             info = "akko_crypt blind index key\0" || column binding id)
    pub fn blind_index_key(&self, binding: &BindingId) -> BlindIndexKey {
        let okm = hkdf_sha256(
            HKDF_SALT,
            &self.bytes,
            &[BLIND_INDEX_KEY_INFO_PREFIX, binding],
        );
        BlindIndexKey::from_bytes(*okm)
    }

    /// What `akko_crypt.subjects` keeps of a subject's name instead of the name: HMAC-SHA256
    /// under HKDF-SHA256(salt = "akko_crypt/v1", ikm = this key, info = "akko_crypt subject
    /// lookup key\0"), this being a data key of the class `blind_index`.
    pub fn subject_lookup(&self, name: &[u8]) -> [u8; SUBJECT_LOOKUP_LEN] {
        let okm = hkdf_sha256(HKDF_SALT, &self.bytes, &[SUBJECT_LOOKUP_KEY_INFO]);
        BlindIndexKey::from_bytes(*okm).mac(name)
    }
}

/// A new subject: a random id, which envelopes carry, and a random salt, which only the
/// subjects table keeps.
pub fn new_subject() -> Result<(SubjectId, [u8; SUBJECT_SALT_LEN]), getrandom::Error> {
    let mut id = [0u8; SUBJECT_ID_LEN];
    let mut salt = [0u8; SUBJECT_SALT_LEN];
    getrandom::getrandom(&mut id)?;
    getrandom::getrandom(&mut salt)?;
    Ok((id, salt))
}

fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand_multi_info(info, &mut okm[..])
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

fn wrapped_key_aad(class: ClassName<'_>, version: u32) -> Vec<u8> {
    [
        WRAPPED_KEY_AAD_PREFIX,
        class.as_str().as_bytes(),
        &[0u8],
        &version.to_be_bytes(),
    ]
    .concat()
}

impl RootKey {
    /// HKDF-SHA256(salt = "akko_crypt/v1", ikm = root,
    ///             info = "akko_crypt wrapping key\0" || class)
    fn wrapping_key(&self, class: ClassName<'_>) -> DataKey {
        let okm = hkdf_sha256(
            HKDF_SALT,
            self.expose(),
            &[WRAPPING_KEY_INFO_PREFIX, class.as_str().as_bytes()],
        );
        DataKey::from_bytes(&okm)
    }

    /// Wraps the data key of `class` at `version` under a fresh random nonce. The class and
    /// version are authenticated, so a wrapped key moved to another keyring row fails to
    /// unwrap.
    pub fn wrap(
        &self,
        class: ClassName<'_>,
        version: u32,
        key: &DataKeyMaterial,
    ) -> Result<[u8; WRAPPED_KEY_LEN], getrandom::Error> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)?;
        Ok(self.wrap_with_nonce(class, version, key, nonce))
    }

    /// [`RootKey::wrap`] with a given nonce, for test vectors.
    pub fn wrap_with_nonce(
        &self,
        class: ClassName<'_>,
        version: u32,
        key: &DataKeyMaterial,
        nonce: [u8; NONCE_LEN],
    ) -> [u8; WRAPPED_KEY_LEN] {
        let mut out = [0u8; WRAPPED_KEY_LEN];
        out[0] = WRAP_FORMAT_V1;
        out[1..1 + NONCE_LEN].copy_from_slice(&nonce);
        let (ciphertext, tag_out) = out[1 + NONCE_LEN..].split_at_mut(DATA_KEY_LEN);
        let buffer = InOutBuf::new(&key.bytes[..], ciphertext).expect("same lengths");
        let tag = self
            .wrapping_key(class)
            .cipher
            .encrypt_inout_detached((&nonce).into(), &wrapped_key_aad(class, version), buffer)
            .expect("32 bytes is within AES-GCM's limits");
        tag_out.copy_from_slice(&tag);
        out
    }

    pub fn unwrap(
        &self,
        class: ClassName<'_>,
        version: u32,
        wrapped: &[u8],
    ) -> Result<DataKeyMaterial, UnwrapError> {
        if wrapped.len() != WRAPPED_KEY_LEN {
            return Err(UnwrapError::Malformed(wrapped.len()));
        }
        if wrapped[0] != WRAP_FORMAT_V1 {
            return Err(UnwrapError::UnsupportedFormat(wrapped[0]));
        }
        let nonce: &[u8; NONCE_LEN] = wrapped[1..1 + NONCE_LEN]
            .try_into()
            .expect("length checked");
        let (ciphertext, tag) = wrapped[1 + NONCE_LEN..].split_at(DATA_KEY_LEN);
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("length checked");
        let mut key = DataKeyMaterial::from_bytes([0u8; DATA_KEY_LEN]);
        let buffer = InOutBuf::new(ciphertext, &mut key.bytes[..]).expect("same lengths");
        self.wrapping_key(class)
            .cipher
            .decrypt_inout_detached(
                nonce.into(),
                &wrapped_key_aad(class, version),
                buffer,
                tag.into(),
            )
            .map_err(|_| UnwrapError::NotWrappedByThisRoot)?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{seal, Envelope, SealRequest};

    fn class(name: &str) -> ClassName<'_> {
        ClassName::parse(name).unwrap()
    }

    #[test]
    fn unwrap_gives_back_the_wrapped_key() {
        let root = RootKey::from_bytes([1; 32]);
        let key = DataKeyMaterial::generate().unwrap();
        let wrapped = root.wrap(class("identity"), 3, &key).unwrap();
        let unwrapped = root.unwrap(class("identity"), 3, &wrapped).unwrap();
        assert_eq!(unwrapped.bytes, key.bytes);
    }

    #[test]
    fn another_root_class_or_version_cannot_unwrap() {
        let root = RootKey::from_bytes([1; 32]);
        let key = DataKeyMaterial::generate().unwrap();
        let wrapped = root.wrap(class("identity"), 3, &key).unwrap();
        let refused = Err(UnwrapError::NotWrappedByThisRoot);
        let other_root = RootKey::from_bytes([2; 32]);
        assert_eq!(
            other_root
                .unwrap(class("identity"), 3, &wrapped)
                .map(|_| ()),
            refused
        );
        assert_eq!(
            root.unwrap(class("financial"), 3, &wrapped).map(|_| ()),
            refused
        );
        assert_eq!(
            root.unwrap(class("identity"), 4, &wrapped).map(|_| ()),
            refused
        );
        for i in 0..WRAPPED_KEY_LEN {
            let mut bad = wrapped;
            bad[i] ^= 0x10;
            assert!(root.unwrap(class("identity"), 3, &bad).is_err(), "byte {i}");
        }
        assert_eq!(
            root.unwrap(class("identity"), 3, &wrapped[1..]).map(|_| ()),
            Err(UnwrapError::Malformed(WRAPPED_KEY_LEN - 1))
        );
    }

    #[test]
    fn subject_keys_differ_by_subject_and_salt() {
        let key = DataKeyMaterial::from_bytes([5; 32]);
        let request = SealRequest {
            class: class("identity"),
            key_version: 1,
            subject: Some(&[1; 16]),
            subkey: &[3; 16],
            context: None,
            nonce: [0; NONCE_LEN],
        };
        let subject_key =
            |id: &[u8; 16], salt: &[u8; 32]| key.subject_material(id, salt).value_key(&[3; 16]);
        let sealed = seal(&subject_key(&[1; 16], &[7; 32]), &request, b"{}");
        let envelope = Envelope::parse(&sealed).unwrap();
        assert_eq!(envelope.subject, Some(&[1; 16]));
        assert!(envelope
            .open(&subject_key(&[1; 16], &[7; 32]), None)
            .is_ok());
        assert!(envelope
            .open(&subject_key(&[1; 16], &[8; 32]), None)
            .is_err());
        assert!(envelope
            .open(&subject_key(&[2; 16], &[7; 32]), None)
            .is_err());
        assert!(envelope.open(&key.key_for(&envelope), None).is_err());
    }

    #[test]
    fn value_keys_differ_by_subkey_id_and_never_equal_the_data_key() {
        let material = DataKeyMaterial::from_bytes([5; 32]);
        let request = |subkey| SealRequest {
            class: class("identity"),
            key_version: 1,
            subject: None,
            subkey,
            context: None,
            nonce: [0; NONCE_LEN],
        };
        let mut sealing = material.new_sealing_key().unwrap();
        let (subkey, value_key) = sealing.take().unwrap();
        let subkey = *subkey;
        let sealed = seal(value_key, &request(&subkey), b"{}");
        let envelope = Envelope::parse(&sealed).unwrap();
        assert_eq!(envelope.subkey, Some(&subkey));
        assert!(envelope.open(&material.key_for(&envelope), None).is_ok());
        assert!(envelope.open(&material.cipher(), None).is_err());
        assert!(envelope.open(&material.value_key(&[0; 16]), None).is_err());
        let other = material.new_sealing_key().unwrap();
        assert_ne!(other.remaining(), 0);
    }

    #[test]
    fn subject_lookups_are_keyed_and_differ_by_name() {
        let a = DataKeyMaterial::from_bytes([1; 32]);
        let b = DataKeyMaterial::from_bytes([2; 32]);
        assert_eq!(
            a.subject_lookup(b"customer:1"),
            a.subject_lookup(b"customer:1")
        );
        assert_ne!(
            a.subject_lookup(b"customer:1"),
            a.subject_lookup(b"customer:2")
        );
        assert_ne!(
            a.subject_lookup(b"customer:1"),
            b.subject_lookup(b"customer:1")
        );
    }
}
