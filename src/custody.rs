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
//! backend exit.
//!
//! The parameter's stored text is the fingerprint, a colon, and the root sealed for this
//! backend's parallel workers (see `akko_crypt_core::handoff`); its show hook displays only
//! the fingerprint. PostgreSQL copies that text to each worker of a parallel query, whose
//! check hook opens it: so the workers seal and open with the leader's key, and the shared
//! memory between them holds only ciphertext.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

use akko_crypt_core::column::{BindingId, BlindIndexKey};
use akko_crypt_core::envelope::SubjectId;
use akko_crypt_core::{DataKey, DataKeyMaterial, Fingerprint, HandoffKey, RootKey};
use pgrx::pg_sys;
use pgrx::prelude::*;
use zeroize::Zeroize;

use crate::{errors, log_redaction, vault_unlock};

pub const KEY_GUC: &CStr = c"akko_crypt.key";

/// Sessions that seal for many subjects would otherwise cache a key per subject forever.
const MAX_CACHED_KEYS: usize = 4096;

extern "C" {
    // GUC frees extras and string values with free(), so they are allocated with malloc().
    fn malloc(size: usize) -> *mut c_void;
    fn free(ptr: *mut c_void);
}

static mut KEY_GUC_VALUE: *mut c_char = std::ptr::null_mut();
static mut KEY_GUC_CONF: *mut pg_sys::config_string = std::ptr::null_mut();

/// Drawn in the postmaster, which loads this library before it forks any backend or
/// worker, so all of them hold the same one.
static HANDOFF: OnceLock<HandoffKey> = OnceLock::new();

/// What a worker's check hook labels the key it received.
const FROM_LEADER: &str = "parallel leader";

type SlotId = u64;

struct Slot {
    id: SlotId,
    root: RootKey,
    /// Where the root came from: the parameter, or Vault.
    source: &'static str,
    /// The keyring generation (see `keyring::generation`) the caches below were filled in.
    generation: u64,
    /// Unwrapped data keys, and the ciphers made from them; a handful per session, so a
    /// scan beats hashing.
    materials: Vec<(KeyName, DataKeyMaterial)>,
    keys: Vec<(KeyName, Option<SubjectId>, DataKey)>,
    /// Blind index keys by `blind_index` key version and column binding: deriving one per
    /// row would cost more than the HMAC it keys.
    blind_index_keys: Vec<(u32, BindingId, BlindIndexKey)>,
}

#[derive(PartialEq, Eq)]
struct KeyName {
    class: String,
    version: u32,
}

impl KeyName {
    fn new(class: &str, version: u32) -> Self {
        KeyName {
            class: class.to_owned(),
            version,
        }
    }

    fn is(&self, class: &str, version: u32) -> bool {
        self.version == version && self.class == class
    }
}

impl Slot {
    fn caches_for(&mut self, generation: u64) -> &mut Self {
        if self.generation != generation {
            self.materials.clear();
            self.keys.clear();
            self.blind_index_keys.clear();
            self.generation = generation;
        }
        self
    }
}

#[derive(Default)]
struct Custody {
    slots: Vec<Slot>,
    current: Option<SlotId>,
    next_id: SlotId,
    /// Set by `load` for the check hook it goes through.
    loading_from: Option<&'static str>,
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
    let handoff = HandoffKey::generate().unwrap_or_else(|_| errors::randomness_unavailable());
    let _ = HANDOFF.set(handoff);
    unsafe {
        pg_sys::DefineCustomStringVariable(
            KEY_GUC.as_ptr(),
            c"Root key of this session, as 64 hex digits or base64; reads back as its fingerprint only.".as_ptr(),
            c"Set it at connection checkout with set_config('akko_crypt.key', $1, false). It cannot be stored in a configuration file or with ALTER ROLE/DATABASE.".as_ptr(),
            &raw mut KEY_GUC_VALUE,
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            (pg_sys::GUC_NO_SHOW_ALL
                | pg_sys::GUC_NOT_IN_SAMPLE
                | pg_sys::GUC_DISALLOW_IN_FILE
                | pg_sys::GUC_DISALLOW_IN_AUTO_FILE) as i32,
            Some(check_key),
            Some(assign_key),
            Some(show_key),
        );
        KEY_GUC_CONF = find_string_guc(KEY_GUC);
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
    }
}

unsafe fn find_string_guc(name: &CStr) -> *mut pg_sys::config_string {
    let vars = pg_sys::get_guc_variables();
    let count = pg_sys::GetNumConfigOptions() as usize;
    (0..count)
        .map(|i| *vars.add(i))
        .find(|var| CStr::from_ptr((**var).name) == name)
        .map_or(std::ptr::null_mut(), |var| var.cast())
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
    if text.is_empty() {
        return true;
    }
    if pg_sys::InitializingParallelWorker {
        *extra = receive_from_leader(text)
            .map_or(std::ptr::null_mut(), |id| malloc_copy(&id.to_ne_bytes()));
        return true;
    }
    log_redaction::hide_current_statement_from_activity();
    if !source_may_carry_key(source) {
        wipe_c_string(*newval);
        reject(
            PgSqlErrorCode::ERRCODE_CANT_CHANGE_RUNTIME_PARAM,
            c"akko_crypt.key can only be set in a session, never stored in the catalog or a configuration file",
            c"Have the connection pool run SELECT set_config('akko_crypt.key', $1, false) at checkout.",
        );
        return false;
    }
    let parsed = std::str::from_utf8(text)
        .map_err(|_| akko_crypt_core::KeyParseError::NotHexOrBase64)
        .and_then(RootKey::parse);
    wipe_c_string(*newval);
    let root = match parsed {
        Ok(root) => root,
        Err(e) => {
            let message = format!("invalid value for akko_crypt.key: {e}");
            let message = std::ffi::CString::new(message).expect("no NUL in a key error");
            reject(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                &message,
                c"Give 32 random bytes as 64 hex digits or as base64, for example the output of: openssl rand -base64 32",
            );
            return false;
        }
    };
    let for_workers = HANDOFF
        .get()
        .expect("set in _PG_init")
        .seal_root(&root, pg_sys::MyProcPid)
        .unwrap_or_else(|_| errors::randomness_unavailable());
    let stored = std::ffi::CString::new(format!("{}:{for_workers}", root.fingerprint()))
        .expect("hex and base64 have no NUL");
    let id = store(root);

    free((*newval).cast());
    *newval = malloc_copy(stored.as_bytes_with_nul()).cast();
    let slot_ref: *mut SlotId = malloc_copy(&id.to_ne_bytes()).cast();
    *extra = slot_ref.cast();
    true
}

/// Opens the root a parallel worker's leader sealed for it. A worker that cannot (no key in
/// the leader, or text that is not the leader's) holds no key, and raises 55000 only if its
/// part of the query needs one.
unsafe fn receive_from_leader(stored: &[u8]) -> Option<SlotId> {
    let leader = (*pg_sys::MyProc).lockGroupLeader;
    if leader.is_null() {
        return None;
    }
    let (_, sealed) = std::str::from_utf8(stored).ok()?.split_once(':')?;
    let root = HANDOFF.get()?.open_root(sealed, (*leader).pid).ok()?;
    CUSTODY.with(|c| c.borrow_mut().loading_from = Some(FROM_LEADER));
    Some(store(root))
}

/// SHOW, current_setting() and set_config() display the fingerprint, never the sealed
/// root behind it.
#[pg_guard]
unsafe extern "C-unwind" fn show_key() -> *const c_char {
    static mut SHOWN: [u8; 2 * 8 + 1] = [0; 2 * 8 + 1];
    let stored = if KEY_GUC_VALUE.is_null() {
        &[][..]
    } else {
        CStr::from_ptr(KEY_GUC_VALUE).to_bytes()
    };
    let fingerprint = stored.split(|&b| b == b':').next().unwrap_or_default();
    let shown = &mut *(&raw mut SHOWN);
    let len = fingerprint.len().min(shown.len() - 1);
    shown[..len].copy_from_slice(&fingerprint[..len]);
    shown[len] = 0;
    shown.as_ptr().cast()
}

unsafe fn reject(code: PgSqlErrorCode, message: &CStr, hint: &CStr) {
    pg_sys::GUC_check_errcode(code as i32);
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(message.as_ptr());
    pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr());
}

unsafe fn wipe_c_string(s: *mut c_char) {
    let len = CStr::from_ptr(s).to_bytes().len();
    std::slice::from_raw_parts_mut(s.cast::<u8>(), len).zeroize();
}

unsafe fn malloc_copy(bytes: &[u8]) -> *mut c_void {
    let ptr = malloc(bytes.len());
    if ptr.is_null() {
        errors::out_of_memory();
    }
    std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.cast::<u8>(), bytes.len());
    ptr
}

unsafe fn slot_of(extra: *mut c_void) -> Option<SlotId> {
    (!extra.is_null()).then(|| *extra.cast::<SlotId>())
}

#[pg_guard]
unsafe extern "C-unwind" fn assign_key(_newval: *const c_char, extra: *mut c_void) {
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
/// transaction, and keeps only the value that will survive it (and the RESET value).
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
    if conf.is_null() {
        return;
    }
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
    retain_slots(&[slot_of(survivor), slot_of((*conf).reset_extra)]);
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
            generation: 0,
            materials: Vec::new(),
            keys: Vec::new(),
            blind_index_keys: Vec::new(),
        });
        (
            id,
            !std::mem::replace(&mut c.exit_callback_registered, true),
        )
    });
    if first_key {
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

/// Runs `f` with the session's slot; with no key loaded, unlocks from Vault if it is
/// configured (only then: seal and open pay nothing for it), else raises 55000.
fn with_current_slot<R>(f: impl FnOnce(&mut Slot) -> R) -> R {
    match try_with_current_slot(f) {
        Ok(result) => result,
        Err(f) => {
            // A worker has the key its leader held at the start of the query, or none.
            let in_worker = unsafe { pg_sys::ParallelWorkerNumber } >= 0;
            if in_worker || !vault_unlock::lazy_unlock() {
                errors::no_key_loaded();
            }
            try_with_current_slot(f).unwrap_or_else(|_| errors::no_key_loaded())
        }
    }
}

/// Loads `root` as the session's key, as `SET akko_crypt.key` would (so SHOW gives its
/// fingerprint, and a rolled-back transaction takes it back), recording where it came from.
pub fn load(root: RootKey, source: &'static str) {
    let text = root.to_base64();
    let text = std::ffi::CString::new(text.as_str()).expect("base64 has no NUL");
    CUSTODY.with(|c| c.borrow_mut().loading_from = Some(source));
    unsafe {
        pg_sys::set_config_option(
            KEY_GUC.as_ptr(),
            text.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            0,
            false,
        );
    }
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

/// Runs `f` with what `find` picks from the session's caches, or hands `f` back when the
/// cache does not hold it for keyring generation `generation`.
fn with_cached<T, R, F: FnOnce(&T) -> R>(
    generation: u64,
    find: impl FnOnce(&Slot) -> Option<&T>,
    f: F,
) -> Result<R, F> {
    with_current_slot(|slot| match find(slot.caches_for(generation)) {
        Some(cached) => Ok(f(cached)),
        None => Err(f),
    })
}

/// Runs `store` on the session's caches, unless the keyring changed since `generation`.
fn remember(generation: u64, store: impl FnOnce(&mut Slot)) {
    with_current_slot(|slot| {
        if slot.generation == generation {
            store(slot);
        }
    })
}

/// Runs `f` with the cached key of `class`/`version` (and `subject`), or hands `f` back
/// when this session has not unwrapped it in keyring generation `generation`.
pub fn with_cached_key<R, F: FnOnce(&DataKey) -> R>(
    class: &str,
    version: u32,
    subject: Option<&SubjectId>,
    generation: u64,
    f: F,
) -> Result<R, F> {
    with_cached(
        generation,
        |slot| {
            slot.keys
                .iter()
                .find(|(name, s, _)| name.is(class, version) && s.as_ref() == subject)
                .map(|(_, _, key)| key)
        },
        f,
    )
}

/// Derives a key from the cached data key material of `class`/`version`, or hands
/// `derive` back when it is not cached.
pub fn with_cached_material<R, F: FnOnce(&DataKeyMaterial) -> R>(
    class: &str,
    version: u32,
    generation: u64,
    derive: F,
) -> Result<R, F> {
    with_cached(
        generation,
        |slot| {
            slot.materials
                .iter()
                .find(|(name, _)| name.is(class, version))
                .map(|(_, material)| material)
        },
        derive,
    )
}

/// Runs `f` with the cached blind index key of `version` for the column bound to
/// `binding`, or hands `f` back when it is not cached for keyring generation `generation`.
pub fn with_cached_blind_index_key<R, F: FnOnce(&BlindIndexKey) -> R>(
    version: u32,
    binding: &BindingId,
    generation: u64,
    f: F,
) -> Result<R, F> {
    with_cached(
        generation,
        |slot| {
            slot.blind_index_keys
                .iter()
                .find(|(v, b, _)| *v == version && b == binding)
                .map(|(_, _, key)| key)
        },
        f,
    )
}

/// Caches an unwrapped data key, unless the keyring changed since `generation`.
pub fn remember_material(class: &str, version: u32, generation: u64, material: DataKeyMaterial) {
    remember(generation, |slot| {
        slot.materials
            .push((KeyName::new(class, version), material))
    })
}

/// Caches a key ready for sealing and opening, unless the keyring changed since `generation`.
pub fn remember_key(
    class: &str,
    version: u32,
    subject: Option<&SubjectId>,
    generation: u64,
    key: DataKey,
) {
    remember(generation, |slot| {
        if slot.keys.len() >= MAX_CACHED_KEYS {
            slot.keys.retain(|(_, subject, _)| subject.is_none());
        }
        slot.keys
            .push((KeyName::new(class, version), subject.copied(), key));
    })
}

/// Caches a blind index key, unless the keyring changed since `generation`.
pub fn remember_blind_index_key(
    version: u32,
    binding: &BindingId,
    generation: u64,
    key: BlindIndexKey,
) {
    remember(generation, |slot| {
        slot.blind_index_keys.push((version, *binding, key))
    })
}

/// Drops every key this session holds, at once and for good: even if the surrounding
/// transaction rolls back, the keys stay gone and must be set again.
#[pg_extern(volatile, parallel_unsafe)]
fn lock() {
    unsafe {
        pg_sys::SetConfigOption(
            KEY_GUC.as_ptr(),
            c"".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    CUSTODY.with(|c| c.borrow_mut().forget_all());
    vault_unlock::lock();
}
