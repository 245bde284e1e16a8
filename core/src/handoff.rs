//! Handing a session's root key to the parallel workers of one query.
//!
//! PostgreSQL gives a parallel worker its leader's settings through a shared memory
//! segment, as the text of each setting. The root key travels there only sealed with
//! AES-256-GCM under a key used for that one handoff: HKDF-SHA256 derives it from a server
//! key, drawn once at start and inherited by every server process, and a random salt that
//! the sealed text carries. The handoff is bound to the leader's process id and to the start
//! of the statement it was made for, so the segment holds ciphertext, and a sealed root is
//! of no use to another session or to a later statement of the same one.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::envelope::{NONCE_LEN, TAG_LEN};
use crate::key::{DataKey, RootKey, ROOT_KEY_LEN};

const INFO: &[u8] = b"akko_crypt root handoff v2\0";
const SALT_LEN: usize = 16;
const SEALED_LEN: usize = SALT_LEN + NONCE_LEN + ROOT_KEY_LEN + TAG_LEN;

/// The server-wide key that handoff keys are derived from; zeroized on drop.
pub struct HandoffKey {
    bytes: Zeroizing<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffError {
    /// Not base64 of the right length.
    Malformed,
    /// Sealed under another server key, for another leader or statement, or altered.
    NotAuthentic,
}

/// Whom a handoff is for: the leader's process id and the start of its statement
/// (PostgreSQL's statement timestamp, which a worker receives from its leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffTarget {
    pub leader_pid: i32,
    pub statement_start: i64,
}

impl HandoffTarget {
    fn associated_data(&self) -> [u8; 12] {
        let mut aad = [0u8; 12];
        aad[..4].copy_from_slice(&self.leader_pid.to_be_bytes());
        aad[4..].copy_from_slice(&self.statement_start.to_be_bytes());
        aad
    }
}

impl HandoffKey {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut bytes[..])?;
        Ok(HandoffKey { bytes })
    }

    /// The key of one handoff: HKDF-SHA256(salt = the handoff's salt, ikm = the server key,
    /// info = "akko_crypt root handoff v2\0" || leader pid || statement start).
    fn one_time_key(&self, salt: &[u8], target: &HandoffTarget) -> DataKey {
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(salt), &self.bytes[..])
            .expand_multi_info(&[INFO, &target.associated_data()], &mut okm[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        DataKey::from_bytes(&okm)
    }

    /// `root` sealed for the workers of `target`, as unpadded base64.
    pub fn seal_root(
        &self,
        root: &RootKey,
        target: &HandoffTarget,
    ) -> Result<String, getrandom::Error> {
        let mut sealed = Zeroizing::new([0u8; SEALED_LEN]);
        let (salt, rest) = sealed.split_at_mut(SALT_LEN);
        let (nonce, rest) = rest.split_at_mut(NONCE_LEN);
        getrandom::getrandom(salt)?;
        getrandom::getrandom(nonce)?;
        let (ciphertext, tag_out) = rest.split_at_mut(ROOT_KEY_LEN);
        let buffer = InOutBuf::new(&root.expose()[..], ciphertext).expect("same lengths");
        let nonce: &[u8; NONCE_LEN] = (&*nonce).try_into().expect("nonce length");
        let tag = self
            .one_time_key(salt, target)
            .cipher
            .encrypt_inout_detached(nonce.into(), &target.associated_data(), buffer)
            .expect("32 bytes is within AES-GCM's limits");
        tag_out.copy_from_slice(&tag);
        Ok(STANDARD_NO_PAD.encode(&sealed[..]))
    }

    pub fn open_root(&self, text: &str, target: &HandoffTarget) -> Result<RootKey, HandoffError> {
        let mut sealed = [0u8; SEALED_LEN];
        match STANDARD_NO_PAD.decode_slice(text, &mut sealed) {
            Ok(SEALED_LEN) => {}
            _ => return Err(HandoffError::Malformed),
        }
        let (salt, rest) = sealed.split_at(SALT_LEN);
        let (nonce, rest) = rest.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(ROOT_KEY_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("nonce length");
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("tag length");
        let mut root = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        let buffer = InOutBuf::new(ciphertext, &mut root[..]).expect("same lengths");
        self.one_time_key(salt, target)
            .cipher
            .decrypt_inout_detached(nonce.into(), &target.associated_data(), buffer, tag.into())
            .map_err(|_| HandoffError::NotAuthentic)?;
        Ok(RootKey::from_bytes(*root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: HandoffTarget = HandoffTarget {
        leader_pid: 4242,
        statement_start: 812_345_678_901,
    };

    #[test]
    fn a_sealed_root_opens_only_for_its_leader_and_statement_under_its_server_key() {
        let handoff = HandoffKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        let sealed = handoff.seal_root(&root, &TARGET).unwrap();
        assert!(!sealed.contains(root.to_base64().trim_end_matches('=')));
        let opened = handoff.open_root(&sealed, &TARGET).unwrap();
        assert_eq!(opened.fingerprint(), root.fingerprint());

        let refused = Err(HandoffError::NotAuthentic);
        let other_leader = HandoffTarget {
            leader_pid: 4243,
            ..TARGET
        };
        assert_eq!(
            handoff.open_root(&sealed, &other_leader).map(|_| ()),
            refused
        );
        let later_statement = HandoffTarget {
            statement_start: TARGET.statement_start + 1,
            ..TARGET
        };
        assert_eq!(
            handoff.open_root(&sealed, &later_statement).map(|_| ()),
            refused
        );
        let other = HandoffKey::generate().unwrap();
        assert_eq!(other.open_root(&sealed, &TARGET).map(|_| ()), refused);
        for i in 0..sealed.len() {
            let mut altered = sealed.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            assert!(handoff
                .open_root(std::str::from_utf8(&altered).unwrap(), &TARGET)
                .is_err());
        }
        assert_eq!(
            handoff.open_root(&sealed[1..], &TARGET).map(|_| ()),
            Err(HandoffError::Malformed)
        );
        assert_eq!(
            handoff.open_root("", &TARGET).map(|_| ()),
            Err(HandoffError::Malformed)
        );
    }

    #[test]
    fn each_handoff_uses_a_fresh_salt_and_nonce() {
        let handoff = HandoffKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        assert_ne!(
            handoff.seal_root(&root, &TARGET).unwrap(),
            handoff.seal_root(&root, &TARGET).unwrap()
        );
    }
}
