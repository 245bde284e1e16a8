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

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::hash::Hash;
use std::sync::OnceLock;

use akko_crypt_core::class::MAX_CLASS_LEN;
use akko_crypt_core::column::{BindingId, BlindIndexKey};
use akko_crypt_core::envelope::{SubjectId, SubkeyId};
use akko_crypt_core::{
    ClassName, DataKey, DataKeyMaterial, Envelope, Fingerprint, HandoffKey, HandoffTarget, RootKey,
    SealingKey,
};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroize;

use crate::errors::{raise, Error};
use crate::hooks::log_redaction;
use crate::pg::guc_internals::{free_malloced, malloc_copy};
use crate::pg::settings::set_in_session;
use crate::session_cache::SessionCache;

pub const KEY_GUC: &CStr = c"akko_crypt.key";
const HANDOFF_GUC: &CStr = c"akko_crypt.handoff";

/// Sessions that seal for many subjects (or look up many columns) would otherwise cache a
/// key for each forever.
const MAX_CACHED_KEYS: usize = 4096;
/// A session that opens values sealed by many other sessions derives a value key for each
/// subkey id it meets; this many per data key are kept.
const MAX_VALUE_KEYS: usize = 4096;

static mut KEY_GUC_VALUE: *mut c_char = std::ptr::null_mut();
static mut KEY_GUC_CONF: *mut pg_sys::config_string = std::ptr::null_mut();
static mut HANDOFF_GUC_VALUE: *mut c_char = std::ptr::null_mut();

/// Drawn in the postmaster, which loads this library before it forks any backend or
/// worker, so all of them hold the same one.
static HANDOFF: OnceLock<HandoffKey> = OnceLock::new();

/// What a worker labels the key it received.
const FROM_LEADER: &str = "parallel leader";

type SlotId = u64;

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

pub struct Slot {
    id: SlotId,
    root: RootKey,
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
struct Custody {
    slots: Vec<Slot>,
    current: Option<SlotId>,
    next_id: SlotId,
    /// Set by `load` for the check hook it goes through.
    loading_from: Option<&'static str>,
    /// Set while this backend itself sets `akko_crypt.handoff`.
    setting_handoff: bool,
    exit_callback_registered: bool,
}

impl Custody {
    fn forget_all(&mut self) {
        self.slots.clear();
        self.current = None;
    }
}

thread_local! {
    static CUSTODY: RefCell<Custody> = RefCell::new(Custody::default());
}

pub fn init() {
    let handoff = HandoffKey::generate().unwrap_or_else(|_| raise(Error::RandomnessUnavailable));
    let _ = HANDOFF.set(handoff);
    let hidden = (pg_sys::GUC_NO_SHOW_ALL
        | pg_sys::GUC_NOT_IN_SAMPLE
        | pg_sys::GUC_DISALLOW_IN_FILE
        | pg_sys::GUC_DISALLOW_IN_AUTO_FILE) as i32;
    // SAFETY: called once from _PG_init in the postmaster or backend that loads the library;
    // the name, descriptions and boot value are static C strings, and KEY_GUC_VALUE is a static
    // PostgreSQL owns from here on and only it writes.
    unsafe {
        pg_sys::DefineCustomStringVariable(
            KEY_GUC.as_ptr(),
            c"Root key of this session, as 64 hex digits or base64; reads back as its fingerprint only.".as_ptr(),
            c"Set it at connection checkout with set_config('akko_crypt.key', $1, false). It cannot be stored in a configuration file or with ALTER ROLE/DATABASE.".as_ptr(),
            &raw mut KEY_GUC_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            hidden,
            Some(check_key),
            Some(assign_key),
            Some(show_key),
        );
        pg_sys::DefineCustomStringVariable(
            HANDOFF_GUC.as_ptr(),
            c"Set by akko_crypt itself: the session's root key sealed for the parallel workers of one query.".as_ptr(),
            c"".as_ptr(),
            &raw mut HANDOFF_GUC_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            hidden | pg_sys::GUC_NO_RESET_ALL as i32,
            Some(check_handoff),
            Some(assign_handoff),
            Some(show_nothing),
        );
        KEY_GUC_CONF = crate::pg::guc_internals::find_string_guc(KEY_GUC);
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
    }
}

fn in_parallel_worker() -> bool {
    // SAFETY: ParallelWorkerNumber is a plain global PostgreSQL sets before any extension code
    // runs in the backend; reading it races with nothing.
    unsafe { pg_sys::ParallelWorkerNumber >= 0 }
}

/// Sources a key may come from: a session (SET, set_config) or the connection's startup
/// packet. Everything else would store the key in a file or the catalog.
fn source_may_carry_key(source: pg_sys::GucSource::Type) -> bool {
    use pg_sys::GucSource::*;
    matches!(
        source,
        PGC_S_CLIENT | PGC_S_SESSION | PGC_S_OVERRIDE | PGC_S_INTERACTIVE
    )
}

#[pg_guard]
unsafe extern "C-unwind" fn check_key(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let text = CStr::from_ptr(*newval).to_bytes();
    if text.is_empty() || pg_sys::InitializingParallelWorker {
        // A worker receives only the leader's fingerprint here; its key comes through
        // akko_crypt.handoff.
        return true;
    }
    // Whatever spelled it, this statement carried a key.
    log_redaction::current_statement_carries_secret(text);
    if !source_may_carry_key(source) {
        wipe_c_string(*newval);
        reject(Error::KeyStoredOutsideSession);
        return false;
    }
    let parsed = std::str::from_utf8(text)
        .map_err(|_| akko_crypt_core::KeyParseError::NotHexOrBase64)
        .and_then(RootKey::parse);
    wipe_c_string(*newval);
    let root = match parsed {
        Ok(root) => root,
        Err(error) => {
            reject(Error::InvalidKey { error });
            return false;
        }
    };
    let shown = CString::new(root.fingerprint().to_string()).expect("hex has no NUL");
    let id = store(root);
    free_malloced((*newval).cast());
    *newval = malloc_copy(shown.as_bytes_with_nul()).cast();
    *extra = malloc_copy(&id.to_ne_bytes());
    true
}

/// SHOW, current_setting() and set_config() display the fingerprint of the key the session
/// holds now, never anything else: a value the GUC stack brought back after its key was
/// dropped shows as empty, as it opens nothing.
#[pg_guard]
unsafe extern "C-unwind" fn show_key() -> *const c_char {
    static mut SHOWN: [u8; 2 * 8 + 1] = [0; 2 * 8 + 1];
    // The GUC machinery reads the shown text right after the hook returns; only this
    // backend's main thread calls it.
    let shown = std::slice::from_raw_parts_mut((&raw mut SHOWN).cast::<u8>(), 2 * 8 + 1);
    shown.fill(0);
    if let Some(fingerprint) = fingerprint() {
        shown[..16].copy_from_slice(fingerprint.to_string().as_bytes());
    }
    shown.as_ptr().cast()
}

#[pg_guard]
unsafe extern "C-unwind" fn show_nothing() -> *const c_char {
    c"".as_ptr()
}

/// A check hook's refusal, which PostgreSQL raises as the error of the refused SET.
unsafe fn reject(error: Error) {
    let report = error.report();
    // The texts are akko_crypt's own, without NUL; an empty one stands in if not.
    let c_text = |text: String| CString::new(text).unwrap_or_default();
    pg_sys::GUC_check_errcode(report.sqlstate.packed());
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(c_text(report.message).as_ptr());
    if let Some(hint) = report.hint {
        pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(c_text(hint).as_ptr());
    }
}

unsafe fn wipe_c_string(s: *mut c_char) {
    let len = CStr::from_ptr(s).to_bytes().len();
    std::slice::from_raw_parts_mut(s.cast::<u8>(), len).zeroize();
}

unsafe fn slot_of(extra: *mut c_void) -> Option<SlotId> {
    (!extra.is_null()).then(|| *extra.cast::<SlotId>())
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_key(_newval: *const c_char, extra: *mut c_void) {
    if in_parallel_worker() {
        return;
    }
    let current = slot_of(extra);
    CUSTODY.with(|c| c.borrow_mut().current = current);
    let conf = KEY_GUC_CONF;
    if conf.is_null() {
        return;
    }
    // The value being replaced stays alive only if the GUC stack still holds it.
    let mut reachable = vec![current, slot_of((*conf).reset_extra)];
    let mut entry = (*conf).gen_.stack;
    while !entry.is_null() {
        reachable.push(slot_of((*entry).prior.extra));
        reachable.push(slot_of((*entry).masked.extra));
        entry = (*entry).prev;
    }
    retain_slots(&reachable);
}

/// Runs just before PostgreSQL unwinds the GUC stack at the end of a top-level
/// transaction, and keeps only the value that will survive it; the reset value loses any
/// key it holds.
#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::GucStackState::*;
    use pg_sys::XactEvent::*;
    let committed = match event {
        XACT_EVENT_COMMIT | XACT_EVENT_PREPARE => true,
        XACT_EVENT_ABORT => false,
        _ => return,
    };
    let conf = KEY_GUC_CONF;
    if conf.is_null() || in_parallel_worker() {
        return;
    }
    crate::pg::guc_internals::detach_key_from_reset(conf);
    let current = (*conf).gen_.extra;
    // At top-level end every subtransaction is gone, so at most one stack entry remains.
    let survivor = match (*conf).gen_.stack.as_ref() {
        None => current,
        Some(entry) if !committed || entry.state == GUC_SAVE || entry.state == GUC_LOCAL => {
            entry.prior.extra
        }
        Some(entry) if entry.state == GUC_SET_LOCAL => entry.masked.extra,
        Some(_) => current,
    };
    retain_slots(&[slot_of(survivor)]);
}

fn store(root: RootKey) -> SlotId {
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

fn retain_slots(reachable: &[Option<SlotId>]) {
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

/// A worker's key: the root its leader sealed for it when the query started. Anything else
/// is refused; a worker that gets nothing holds no key and raises 55000 only if its part of
/// the query needs one.
#[pg_guard]
unsafe extern "C-unwind" fn check_handoff(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let text = CStr::from_ptr(*newval).to_bytes();
    if text.is_empty() || CUSTODY.with(|c| c.borrow().setting_handoff) {
        return true;
    }
    if !pg_sys::InitializingParallelWorker {
        reject(Error::HandoffSetByUser);
        return false;
    }
    let leader = (*pg_sys::MyProc).lockGroupLeader;
    if leader.is_null() {
        return true;
    }
    let target = HandoffTarget {
        leader_pid: (*leader).pid,
        statement_start: pg_sys::GetCurrentStatementStartTimestamp(),
    };
    let received = std::str::from_utf8(text)
        .ok()
        .and_then(|sealed| HANDOFF.get()?.open_root(sealed, &target).ok());
    if let Some(root) = received {
        CUSTODY.with(|c| c.borrow_mut().loading_from = Some(FROM_LEADER));
        *extra = malloc_copy(&store(root).to_ne_bytes());
    }
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_handoff(_newval: *const c_char, extra: *mut c_void) {
    if in_parallel_worker() {
        let received = slot_of(extra);
        CUSTODY.with(|c| c.borrow_mut().current = received);
    }
}

/// Sets `akko_crypt.handoff` for the parallel query about to start: the key this session
/// holds now, sealed for this backend and statement, or nothing.
pub fn prepare_parallel_handoff() {
    let target = HandoffTarget {
        // SAFETY: MyProcPid is set at backend start and never changes after.
        leader_pid: unsafe { pg_sys::MyProcPid },
        // SAFETY: reads the current statement's start time, a field of the backend's own
        // transaction state; it cannot raise.
        statement_start: unsafe { pg_sys::GetCurrentStatementStartTimestamp() },
    };
    let sealed = try_with_current_slot(|slot| {
        HANDOFF
            .get()
            .expect("set in _PG_init")
            .seal_root(&slot.root, &target)
            .unwrap_or_else(|_| raise(Error::RandomnessUnavailable))
    })
    .unwrap_or_default();
    // SAFETY: HANDOFF_GUC_VALUE is the string PostgreSQL's GUC machinery owns for
    // akko_crypt.handoff: NULL or a NUL-terminated string, read on the backend's only thread.
    let empty_now = unsafe { HANDOFF_GUC_VALUE.is_null() || *HANDOFF_GUC_VALUE == 0 };
    if sealed.is_empty() && empty_now {
        return;
    }
    set_handoff(&CString::new(sealed).expect("base64 has no NUL"));
}

fn set_handoff(value: &CStr) {
    CUSTODY.with(|c| c.borrow_mut().setting_handoff = true);
    set_in_session(HANDOFF_GUC, value);
    CUSTODY.with(|c| c.borrow_mut().setting_handoff = false);
}

/// Runs `f` with the session's slot, or hands `f` back when no key is loaded.
fn try_with_current_slot<R, F: FnOnce(&mut Slot) -> R>(f: F) -> Result<R, F> {
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

/// Loads `root` as the session's key, as `SET akko_crypt.key` would (so SHOW gives its
/// fingerprint, and a rolled-back transaction takes it back), recording where it came from.
pub fn load(root: RootKey, source: &'static str) {
    let text = root.to_base64();
    let text = CString::new(text.as_str()).expect("base64 has no NUL");
    CUSTODY.with(|c| c.borrow_mut().loading_from = Some(source));
    set_in_session(KEY_GUC, &text);
    let mut bytes = text.into_bytes();
    bytes.zeroize();
    CUSTODY.with(|c| c.borrow_mut().loading_from = None);
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

/// Drops every key this session holds, at once and for good: the setting, the handoff to
/// workers and every cached key.
pub fn forget_all_keys() {
    // SAFETY: the setting's name is a static C string, the value an empty one; SetConfigOption
    // copies both and raises through pgrx's guard.
    unsafe {
        pg_sys::SetConfigOption(
            KEY_GUC.as_ptr(),
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    set_handoff(c"");
    CUSTODY.with(|c| c.borrow_mut().forget_all());
}
