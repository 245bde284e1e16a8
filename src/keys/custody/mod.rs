//! Key custody: the `akko_crypt.key` parameter and the backend-private store of the root
//! keys it names.
//!
//! The parameter never holds a key. Its check hook parses what the pool sends, moves the
//! key into this module's store and leaves only the key's fingerprint as the visible value;
//! the GUC "extra" of each value is just the id of its store slot. PostgreSQL keeps the
//! values a transaction may still return to (SET LOCAL, savepoints, RESET) on its GUC
//! stack, so a slot stays alive exactly while the GUC can still reach its id: slots are
//! dropped, and their keys zeroized, as soon as the parameter moves on (assign hook), when
//! the transaction that replaced them ends (transaction callback), on `lock()`, and at
//! backend exit. Slot ids are never reused, so a value the GUC stack brings back after its
//! slot was dropped (a rolled-back `lock()`) names no key, and SHOW shows none.
//!
//! The value a session returns to on RESET or DISCARD ALL never holds a key: a key from the
//! connection's startup packet becomes the reset value too, so the transaction that ends the
//! connection's start takes it out of there.
//!
//! Parallel workers receive the key through a second, hidden parameter,
//! `akko_crypt.handoff`, which the leader sets as each parallel query starts, from the key it
//! holds at that moment: the root sealed for that leader and statement (see
//! `akko_crypt_core::handoff`). So a worker has exactly the key its leader has, and the
//! shared memory between them holds only ciphertext.

mod entries;
mod parameter;
mod store;

pub use crate::keys::custody::entries::{EntryKey, KeyEntry};
pub use crate::keys::custody::parameter::{forget_all_keys, init, load, prepare_parallel_handoff};
pub use crate::keys::custody::store::{
    fingerprint, remember, require_fingerprint, source, unlock_on_demand_with, with_cached,
    with_root,
};
