//! What a session remembers of the keyring and the catalog, one kind of cache for all of it.
//! A cache holds entries loaded at one generation of a counter that moves on whenever what
//! they were loaded from may have changed (the keyring's generation in `extension.rs`, the
//! privileges' in `privileges.rs`, pg_proc's in `hooks/parallel.rs`): looked up at a later
//! generation, it is empty.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::thread::LocalKey;

pub struct SessionCache<K, V> {
    generation: u64,
    entries: Option<HashMap<K, V>>,
    limit: usize,
}

impl<K: Hash + Eq, V> SessionCache<K, V> {
    /// A cache of at most `limit` entries: one that would hold more starts over, so that a
    /// session meeting many subjects or roles does not grow without bound.
    pub const fn new(limit: usize) -> Self {
        SessionCache {
            generation: 0,
            entries: None,
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
            self.entries = None;
            self.generation = generation;
        }
        self.entries.as_mut()?.get_mut(key)
    }

    /// Remembers `value`, loaded at `generation`; not if a lookup at a later generation
    /// came meanwhile (from a query the loading ran), as the value may be stale for it.
    pub fn remember(&mut self, generation: u64, key: K, value: V) {
        if self.generation != generation {
            return;
        }
        let entries = self.entries.get_or_insert_with(HashMap::new);
        if entries.len() >= self.limit {
            entries.clear();
        }
        entries.insert(key, value);
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
    K: Borrow<Q> + Hash + Eq,
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
