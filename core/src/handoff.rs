//! Handing a session's root key to the parallel workers of its queries.
//!
//! PostgreSQL gives a parallel worker its leader's settings through a shared memory
//! segment, as the text of each setting. The root key travels there only sealed with
//! AES-256-GCM under a handoff key that the server draws once at start and that every
//! server process inherits, and bound to the leader's process id, so the segment holds
//! ciphertext and a sealed root is of no use to any other session.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::AeadInOut;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::envelope::{NONCE_LEN, TAG_LEN};
use crate::key::{DataKey, RootKey, ROOT_KEY_LEN};

const AAD_PREFIX: &[u8] = b"akko_crypt root handoff v1\0";
const SEALED_LEN: usize = NONCE_LEN + ROOT_KEY_LEN + TAG_LEN;

/// The server-wide key that seals roots on their way to parallel workers; zeroized on drop.
pub struct HandoffKey {
    key: DataKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffError {
    /// Not base64 of the right length.
    Malformed,
    /// Sealed under another handoff key, for another leader, or altered.
    NotAuthentic,
}

fn aad(leader_pid: i32) -> Vec<u8> {
    [AAD_PREFIX, &leader_pid.to_be_bytes()].concat()
}

impl HandoffKey {
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut bytes[..])?;
        Ok(HandoffKey {
            key: DataKey::from_bytes(&bytes),
        })
    }

    /// `root` sealed for the workers of the process `leader_pid`, as unpadded base64
    /// (which never contains ':').
    pub fn seal_root(&self, root: &RootKey, leader_pid: i32) -> Result<String, getrandom::Error> {
        let mut sealed = [0u8; SEALED_LEN];
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        getrandom::getrandom(nonce)?;
        let (ciphertext, tag_out) = rest.split_at_mut(ROOT_KEY_LEN);
        let buffer = InOutBuf::new(&root.expose()[..], ciphertext).expect("same lengths");
        let nonce: &[u8; NONCE_LEN] = (&*nonce).try_into().expect("nonce length");
        let tag = self
            .key
            .cipher
            .encrypt_inout_detached(nonce.into(), &aad(leader_pid), buffer)
            .expect("32 bytes is within AES-GCM's limits");
        tag_out.copy_from_slice(&tag);
        Ok(STANDARD_NO_PAD.encode(sealed))
    }

    pub fn open_root(&self, text: &str, leader_pid: i32) -> Result<RootKey, HandoffError> {
        let mut sealed = [0u8; SEALED_LEN];
        match STANDARD_NO_PAD.decode_slice(text, &mut sealed) {
            Ok(SEALED_LEN) => {}
            _ => return Err(HandoffError::Malformed),
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(ROOT_KEY_LEN);
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("nonce length");
        let tag: &[u8; TAG_LEN] = tag.try_into().expect("tag length");
        let mut root = Zeroizing::new([0u8; ROOT_KEY_LEN]);
        let buffer = InOutBuf::new(ciphertext, &mut root[..]).expect("same lengths");
        self.key
            .cipher
            .decrypt_inout_detached(nonce.into(), &aad(leader_pid), buffer, tag.into())
            .map_err(|_| HandoffError::NotAuthentic)?;
        Ok(RootKey::from_bytes(*root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_root_opens_only_for_its_leader_under_its_handoff_key() {
        let handoff = HandoffKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        let sealed = handoff.seal_root(&root, 4242).unwrap();
        assert!(!sealed.contains(':'));
        assert!(!sealed.contains(root.to_base64().trim_end_matches('=')));
        let opened = handoff.open_root(&sealed, 4242).unwrap();
        assert_eq!(opened.fingerprint(), root.fingerprint());

        assert_eq!(
            handoff.open_root(&sealed, 4243).map(|_| ()),
            Err(HandoffError::NotAuthentic)
        );
        let other = HandoffKey::generate().unwrap();
        assert_eq!(
            other.open_root(&sealed, 4242).map(|_| ()),
            Err(HandoffError::NotAuthentic)
        );
        let mut altered = sealed.clone().into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        assert!(handoff
            .open_root(std::str::from_utf8(&altered).unwrap(), 4242)
            .is_err());
        assert_eq!(
            handoff.open_root(&sealed[1..], 4242).map(|_| ()),
            Err(HandoffError::Malformed)
        );
        assert_eq!(
            handoff.open_root("", 4242).map(|_| ()),
            Err(HandoffError::Malformed)
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let handoff = HandoffKey::generate().unwrap();
        let root = RootKey::generate().unwrap();
        assert_ne!(
            handoff.seal_root(&root, 1).unwrap(),
            handoff.seal_root(&root, 1).unwrap()
        );
    }
}
