//! What a session remembers of the keyring and the catalog, one kind of cache for all of it.
//! A cache holds entries loaded at one generation of a counter that moves on whenever what
//! they were loaded from may have changed (the keyring's generation in `extension.rs`, the
//! privileges' in `privileges.rs`, pg_proc's in `hooks/parallel.rs`): looked up at a later
//! generation, it is empty.

use std::borrow::Borrow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::Hash;
use std::thread::LocalKey;

use pgrx::pg_sys;
use pgrx::prelude::*;

/// The counter a cache's entries are tagged with, moved on by the invalidations of what they
/// are read from. A read-only query in the middle of a statement reads with the statement's
/// snapshot, which can be older than an invalidation the statement has taken in since (a
/// lock it took later reads them): what a cache loads then, under the new generation, may
/// predate the change. So `settle`, at every transaction end, moves the generation on once
/// more if it moved during the transaction, dropping whatever the transaction loaded.
pub struct Generation {
    current: Cell<u64>,
    settled: Cell<u64>,
}

impl Generation {
    pub const fn new() -> Self {
        Generation {
            current: Cell::new(1),
            settled: Cell::new(1),
        }
    }

    pub fn get(&self) -> u64 {
        self.current.get()
    }

    /// What the entries were read from may have changed.
    pub fn move_on(&self) {
        self.current.set(self.current.get() + 1);
    }

    /// At a transaction's end: see the type's comment.
    pub fn settle(&self) {
        if self.current.get() != self.settled.get() {
            self.move_on();
            self.settled.set(self.current.get());
        }
    }
}

/// Settles `generation` (see `Generation`) at the end of every transaction of the backend.
/// Called once per generation, from _PG_init.
pub fn settle_at_transaction_ends(generation: &'static LocalKey<Generation>) {
    let arg = generation as *const LocalKey<Generation> as *mut c_void;
    // SAFETY: the callback has the C ABI PostgreSQL calls it with; `arg` points to a static
    // that lives as long as the backend, and only the backend's own thread calls it.
    unsafe { pg_sys::RegisterXactCallback(Some(settle), arg) };
}

#[pg_guard]
unsafe extern "C-unwind" fn settle(_event: pg_sys::XactEvent::Type, arg: *mut c_void) {
    // SAFETY: `arg` is the `&'static LocalKey<Generation>` registered above.
    let generation = unsafe { &*(arg as *const LocalKey<Generation>) };
    generation.with(Generation::settle);
}

/// Up to this many entries a lookup compares keys one by one; past it, it hashes.
const SCANNED: usize = 8;

pub struct SessionCache<K, V> {
    generation: u64,
    entries: Vec<(K, V)>,
    /// Where each key's entry is in `entries`, once there are more than `SCANNED`.
    index: Option<HashMap<K, usize>>,
    /// The entry found last: the values a scan meets one after another are mostly under
    /// the same key, so most lookups compare one key and hash nothing.
    last: usize,
    limit: usize,
}

impl<K: Hash + Eq + Clone, V> SessionCache<K, V> {
    /// A cache of at most `limit` entries: one that would hold more starts over, so that a
    /// session meeting many subjects or roles does not grow without bound.
    pub const fn new(limit: usize) -> Self {
        SessionCache {
            generation: 0,
            entries: Vec::new(),
            index: None,
            last: 0,
            limit,
        }
    }

    /// The entry for `key`, if it was loaded at `generation`. The entries of an earlier
    /// generation are dropped first (key entries wipe themselves as they go).
    pub fn get<Q>(&mut self, generation: u64, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.generation != generation {
            self.clear();
            self.generation = generation;
        }
        let at = self.position(key)?;
        self.last = at;
        Some(&mut self.entries[at].1)
    }

    /// Remembers `value`, loaded at `generation`; not if a lookup at a later generation
    /// came meanwhile (from a query the loading ran), as the value may be stale for it.
    pub fn remember(&mut self, generation: u64, key: K, value: V) {
        if self.generation != generation {
            return;
        }
        if let Some(at) = self.position(key.borrow()) {
            self.entries[at].1 = value;
            return;
        }
        if self.entries.len() >= self.limit {
            self.clear();
        }
        self.entries.push((key, value));
        if self.entries.len() > SCANNED {
            let entries = &self.entries;
            let index = self.index.get_or_insert_with(|| {
                entries[..entries.len() - 1]
                    .iter()
                    .enumerate()
                    .map(|(at, (key, _))| (key.clone(), at))
                    .collect()
            });
            let at = entries.len() - 1;
            index.insert(entries[at].0.clone(), at);
        }
    }

    fn position<Q>(&self, key: &Q) -> Option<usize>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some((last, _)) = self.entries.get(self.last) {
            if last.borrow() == key {
                return Some(self.last);
            }
        }
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k.borrow() == key),
        }
    }

    /// Drops the entry for `key`, if any: what it was loaded from changed (the relcache
    /// invalidation of one table, for the trigger's table specs).
    pub fn forget<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let Some(at) = self.position(key) else {
            return;
        };
        self.entries.swap_remove(at);
        if let Some(index) = &mut self.index {
            index.remove(key);
            // The last entry took the place of the one dropped.
            if let Some((moved, _)) = self.entries.get(at) {
                index.insert(moved.clone(), at);
            }
        }
        self.last = 0;
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.index = None;
        self.last = 0;
    }
}

/// The value `cache` holds for `key` at `generation`, or the one `load` gives, remembered.
/// `load` runs with the cache not borrowed: it runs queries, and what they plan or fire can
/// look in the same cache.
pub fn get_or_load<K, Q, V>(
    cache: &'static LocalKey<RefCell<SessionCache<K, V>>>,
    generation: u64,
    key: &Q,
    load: impl FnOnce() -> V,
) -> V
where
    K: Borrow<Q> + Hash + Eq + Clone,
    Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
    V: Clone,
{
    if let Some(value) = cache.with(|c| c.borrow_mut().get(generation, key).cloned()) {
        return value;
    }
    let value = load();
    cache.with(|c| {
        c.borrow_mut()
            .remember(generation, key.to_owned(), value.clone())
    });
    value
}
