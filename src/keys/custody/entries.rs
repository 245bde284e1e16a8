//! What the store caches for each data key: the key entry (the material, the keys derived
//! from it, the sealing budget) and where it is cached.

use std::collections::HashMap;

use akko_crypt_core::class::MAX_CLASS_LEN;
use akko_crypt_core::envelope::{SubjectId, SubkeyId};
use akko_crypt_core::{ClassName, DataKey, DataKeyMaterial, Envelope, SealingKey};

use crate::errors::{raise, Error};

/// A session that opens values sealed by many other sessions derives a value key for each
/// subkey id it meets; this many per data key are kept.
const MAX_VALUE_KEYS: usize = 4096;

/// A data key (or a subject's key) of one class and version, and the keys derived from it.
pub struct KeyEntry {
    material: DataKeyMaterial,
    /// The key a format 1 envelope was sealed under: the material itself.
    direct: Option<DataKey>,
    /// Value keys of format 2 envelopes, with their subkey ids.
    value_keys: Vec<(SubkeyId, DataKey)>,
    /// Where each subkey id's value key is in `value_keys`.
    value_key_at: HashMap<SubkeyId, usize>,
    /// The value key opened with last: the values of a column sealed in one session share
    /// a subkey, and a scan meets them one after another, so most opens hash nothing.
    last_opened: usize,
    /// The value key this process seals under, and its remaining budget.
    sealing: Option<SealingKey>,
}

impl KeyEntry {
    pub fn new(material: DataKeyMaterial) -> Self {
        KeyEntry {
            material,
            direct: None,
            value_keys: Vec::new(),
            value_key_at: HashMap::new(),
            last_opened: 0,
            sealing: None,
        }
    }

    pub fn material(&self) -> &DataKeyMaterial {
        &self.material
    }

    /// The key that opens `envelope` (of this entry's class, version and subject).
    pub fn opening_key(&mut self, envelope: &Envelope<'_>) -> &DataKey {
        let material = &self.material;
        match envelope.subkey {
            None => self.direct.get_or_insert_with(|| material.cipher()),
            Some(subkey) => {
                let last = self.value_keys.get(self.last_opened);
                if last.is_none_or(|(id, _)| id != subkey) {
                    self.last_opened = match self.value_key_at.get(subkey) {
                        Some(&at) => at,
                        None => {
                            if self.value_keys.len() >= MAX_VALUE_KEYS {
                                self.value_keys.clear();
                                self.value_key_at.clear();
                            }
                            self.value_keys.push((*subkey, material.value_key(subkey)));
                            self.value_key_at.insert(*subkey, self.value_keys.len() - 1);
                            self.value_keys.len() - 1
                        }
                    };
                }
                &self.value_keys[self.last_opened].1
            }
        }
    }

    /// The subkey id and value key of the next seal, counted against the budget; a fresh
    /// subkey id once the budget is spent.
    pub fn sealing_key(&mut self) -> (&SubkeyId, &DataKey) {
        if self.sealing.as_ref().is_none_or(|s| s.remaining() == 0) {
            self.sealing = Some(
                self.material
                    .new_sealing_key()
                    .unwrap_or_else(|_| raise(Error::RandomnessUnavailable)),
            );
        }
        self.sealing
            .as_mut()
            .and_then(SealingKey::take)
            .expect("a fresh sealing key has a budget")
    }
}

/// Where a key entry is cached: its class, key version and subject. The class name is held
/// inline, so that looking an entry up for every value allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryKey {
    class_len: u8,
    class: [u8; MAX_CLASS_LEN],
    version: u32,
    subject: Option<SubjectId>,
}

impl EntryKey {
    pub fn new(class: ClassName<'_>, version: u32, subject: Option<&SubjectId>) -> Self {
        let name = class.as_str().as_bytes();
        let mut inline = [0; MAX_CLASS_LEN];
        inline[..name.len()].copy_from_slice(name);
        EntryKey {
            class_len: name.len() as u8,
            class: inline,
            version,
            subject: subject.copied(),
        }
    }
}
