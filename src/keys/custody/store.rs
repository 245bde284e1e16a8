//! The backend-private store of root keys: one slot per value of the key parameter the GUC
//! machinery can still reach, the session's current slot, and what each slot caches. Only
//! this backend's thread reaches it.

use std::cell::RefCell;
use std::hash::Hash;
use std::sync::OnceLock;

use akko_crypt_core::column::{BindingId, BlindIndexKey};
use akko_crypt_core::{Fingerprint, RootKey};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::errors::{raise, Error};
use crate::keys::custody::entries::{EntryKey, KeyEntry};
use crate::session_cache::SessionCache;

/// Sessions that seal for many subjects (or look up many columns) would otherwise cache a
/// key for each forever.
const MAX_CACHED_KEYS: usize = 4096;

pub(super) type SlotId = u64;

pub struct Slot {
    id: SlotId,
    pub(super) root: RootKey,
    /// Where the root came from: the parameter, Vault, or the parallel leader.
    source: &'static str,
    /// Unwrapped data keys and subject keys.
    keys: SessionCache<EntryKey, KeyEntry>,
    /// Blind index keys by `blind_index` key version and column binding: deriving one per
    /// row would cost more than the HMAC it keys.
    blind_index_keys: SessionCache<(u32, BindingId), BlindIndexKey>,
}

/// What a slot caches, each in a cache of its own, emptied when the keyring changes.
pub trait CachedInSlot: Sized {
    type Key: Hash + Eq + Clone;
    fn cache(slot: &mut Slot) -> &mut SessionCache<Self::Key, Self>;
}

impl CachedInSlot for KeyEntry {
    type Key = EntryKey;
    fn cache(slot: &mut Slot) -> &mut SessionCache<EntryKey, KeyEntry> {
        &mut slot.keys
    }
}

impl CachedInSlot for BlindIndexKey {
    type Key = (u32, BindingId);
    fn cache(slot: &mut Slot) -> &mut SessionCache<(u32, BindingId), BlindIndexKey> {
        &mut slot.blind_index_keys
    }
}

#[derive(Default)]
pub(super) struct Custody {
    pub(super) slots: Vec<Slot>,
    pub(super) current: Option<SlotId>,
    pub(super) next_id: SlotId,
    /// Set by `load` for the check hook it goes through.
    pub(super) loading_from: Option<&'static str>,
    /// Set while this backend itself sets `akko_crypt.handoff`.
    pub(super) setting_handoff: bool,
    pub(super) exit_callback_registered: bool,
}

impl Custody {
    pub(super) fn forget_all(&mut self) {
        self.slots.clear();
        self.current = None;
    }
}

thread_local! {
    pub(super) static CUSTODY: RefCell<Custody> = RefCell::new(Custody::default());
}

pub(super) fn in_parallel_worker() -> bool {
    // SAFETY: ParallelWorkerNumber is a plain global PostgreSQL sets before any extension code
    // runs in the backend; reading it races with nothing.
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}

pub(super) fn new_slot(root: RootKey) -> SlotId {
    let (id, first_key) = CUSTODY.with(|c| {
        let mut c = c.borrow_mut();
        c.next_id += 1;
        let id = c.next_id;
        let source = c.loading_from.take().unwrap_or("akko_crypt.key");
        c.slots.push(Slot {
            id,
            root,
            source,
            keys: SessionCache::new(MAX_CACHED_KEYS),
            blind_index_keys: SessionCache::new(MAX_CACHED_KEYS),
        });
        (
            id,
            !std::mem::replace(&mut c.exit_callback_registered, true),
        )
    });
    if first_key {
        // SAFETY: on_proc_exit takes a function pointer with the C ABI PostgreSQL expects; it
        // is registered once per backend (the flag above), so the list of exit callbacks does
        // not fill up.
        unsafe { pg_sys::on_proc_exit(Some(drop_all_keys_at_exit), pg_sys::Datum::from(0)) };
    }
    id
}

pub(super) fn retain_slots(reachable: &[Option<SlotId>]) {
    CUSTODY.with(|c| {
        c.borrow_mut()
            .slots
            .retain(|slot| reachable.contains(&Some(slot.id)))
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn drop_all_keys_at_exit(_code: i32, _arg: pg_sys::Datum) {
    CUSTODY.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.forget_all();
        }
    });
}

/// Runs `f` with the session's slot, or hands `f` back when no key is loaded.
pub(super) fn try_with_current_slot<R, F: FnOnce(&mut Slot) -> R>(f: F) -> Result<R, F> {
    CUSTODY.with(|c| {
        let mut c = c.borrow_mut();
        let current = c.current;
        match c.slots.iter_mut().find(|slot| Some(slot.id) == current) {
            Some(slot) => Ok(f(slot)),
            None => Err(f),
        }
    })
}

/// How a session with no key loaded gets one when a seal or open needs it: Vault's lazy
/// unlock, which registers itself (`unlock_on_demand_with`); it says whether it loaded one.
static UNLOCK_ON_DEMAND: OnceLock<fn() -> bool> = OnceLock::new();

/// Registers the unlock a seal or open without a key makes, once, from _PG_init.
pub fn unlock_on_demand_with(unlock: fn() -> bool) {
    let _ = UNLOCK_ON_DEMAND.set(unlock);
}

/// Runs `f` with the session's slot; with no key loaded, unlocks on demand (Vault, if it is
/// configured: only then do seal and open pay for it), else raises 55000.
fn with_current_slot<R>(f: impl FnOnce(&mut Slot) -> R) -> R {
    match try_with_current_slot(f) {
        Ok(result) => result,
        Err(f) => {
            // A worker has the key its leader held at the start of the query, or none.
            let unlocked = UNLOCK_ON_DEMAND.get().is_some_and(|unlock| unlock());
            if in_parallel_worker() || !unlocked {
                raise(Error::NoKeyLoaded);
            }
            try_with_current_slot(f).unwrap_or_else(|_| raise(Error::NoKeyLoaded))
        }
    }
}

/// Where the session's root key came from, or None when no key is loaded.
pub fn source() -> Option<&'static str> {
    try_with_current_slot(|slot| slot.source).ok()
}

/// The fingerprint of the session's root key, unlocking from Vault first if it is
/// configured and no key is loaded; raises 55000 otherwise.
pub fn require_fingerprint() -> Fingerprint {
    with_current_slot(|slot| slot.root.fingerprint())
}

/// The fingerprint of the session's root key, or None when no key is loaded.
pub fn fingerprint() -> Option<Fingerprint> {
    try_with_current_slot(|slot| slot.root.fingerprint()).ok()
}

/// Runs `f` with the session's root key; raises 55000 when no key is loaded.
pub fn with_root<R>(f: impl FnOnce(&RootKey) -> R) -> R {
    with_current_slot(|slot| f(&slot.root))
}

/// Runs `f` with what the session caches for `key`, or hands `f` back when this session
/// has not cached it in keyring generation `generation`.
pub fn with_cached<V: CachedInSlot, R, F: FnOnce(&mut V) -> R>(
    generation: u64,
    key: &V::Key,
    f: F,
) -> Result<R, F> {
    with_current_slot(|slot| match V::cache(slot).get(generation, key) {
        Some(value) => Ok(f(value)),
        None => Err(f),
    })
}

/// Caches `value` for `key`, unless the keyring changed since `generation`.
pub fn remember<V: CachedInSlot>(generation: u64, key: V::Key, value: V) {
    with_current_slot(|slot| V::cache(slot).remember(generation, key, value))
}
