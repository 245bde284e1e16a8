//! Parallel queries. seal_pii and open_pii are PARALLEL SAFE: as a parallel plan starts,
//! the leader hands its workers the key it holds at that moment (custody's handoff), and
//! nothing can load a key while a parallel query runs. So a session that would unlock from
//! Vault on first use does so before a parallel plan that calls either function starts, not
//! inside it. Nor can a parallel query write: a plan whose seals may write to the keyring
//! (the first seal of a class creates its key, the first for a subject the subject's) runs
//! without workers.

use std::cell::{Cell, RefCell};

use crate::keys::keyring::{self};
use crate::pg::spi::read_one;
use crate::session_cache::{get_or_load, SessionCache};
use crate::{keys::custody, keys::vault};

use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

thread_local! {
    /// The OIDs of akko_crypt's functions by C symbols (`SEAL_FUNCTIONS`, `KEY_FUNCTIONS`),
    /// so that a parallel plan's start costs no catalog query; forgotten when pg_proc changes
    /// (`PROC_GENERATION` moves on).
    static FUNCTION_OIDS: RefCell<SessionCache<&'static str, Vec<pg_sys::Oid>>> =
        const { RefCell::new(SessionCache::new(2)) };
    static PROC_GENERATION: Cell<u64> = const { Cell::new(1) };
}

pub fn init() {
    // SAFETY: runs once, from _PG_init, before any query; the previous hook is kept and called
    // from before_parallel_plan, and the syscache callback has the C ABI PostgreSQL calls it
    // with.
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(before_parallel_plan);
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            Some(forget_function_oids),
            pg_sys::Datum::from(0),
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_function_oids(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    PROC_GENERATION.with(|g| g.set(g.get() + 1));
}

#[pg_guard]
unsafe extern "C-unwind" fn before_parallel_plan(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    let plan = (*query_desc).plannedstmt;
    let parallel = (*plan).parallelModeNeeded
        && eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0
        && !pg_sys::IsInParallelMode();
    // The plan first: akko_crypt's own queries (the privilege lookup would_unlock_lazily
    // makes) call no key function, so they never come back into that lookup.
    if parallel
        && calls_functions(plan, KEY_FUNCTIONS)
        && custody::fingerprint().is_none()
        && vault::would_unlock_lazily()
    {
        vault::lazy_unlock();
    }
    match PREVIOUS_EXECUTOR_START {
        Some(previous) => previous(query_desc, eflags),
        None => pg_sys::standard_ExecutorStart(query_desc, eflags),
    }
    if !parallel {
        return;
    }
    if calls_functions(plan, SEAL_FUNCTIONS) && seals_a_class_without_key(query_desc) {
        // The executor reads this when the plan runs (ExecutePlan): its Gather nodes then
        // run their plans in this process, which may write the class's first key version.
        // A cached plan keeps it, so a prepared statement stays serial in this session.
        (*plan).parallelModeNeeded = false;
    } else {
        custody::prepare_parallel_handoff();
    }
}

/// What the plan's calls of seal_pii seal: the classes they name, and whether one may
/// write to the keyring whatever its class: it names its class by an expression known only
/// as the plan runs, or seals for a subject (a new subject's first seal creates its key).
struct SealedClasses {
    seal_pii: pg_sys::Oid,
    calls: usize,
    classes: Vec<String>,
    may_write: bool,
}

/// Whether the started plan may write to the keyring as it seals: into a class that has no
/// key version yet, for a subject, or in a call this walk does not find. A call inside a
/// function of another language (a PL/pgSQL wrapper) is not in the plan: its first seal of
/// a class in a worker fails with akko_crypt's 25000 and a hint.
unsafe fn seals_a_class_without_key(query_desc: *mut pg_sys::QueryDesc) -> bool {
    let mut sealed = SealedClasses {
        seal_pii: function_oids(SEAL_FUNCTIONS)
            .first()
            .copied()
            .unwrap_or_default(),
        calls: 0,
        classes: Vec::new(),
        may_write: false,
    };
    let context = (&raw mut sealed).cast();
    visit_plan((*query_desc).planstate, context);
    if sealed.may_write {
        return true;
    }
    // The walk reads each node's target list and filter; a call elsewhere (a join's
    // condition, a function scan) it does not see counts as one that may write. The plan's
    // text names every call.
    let plan_text = pg_sys::nodeToString((*query_desc).plannedstmt.cast());
    let calls_in_plan = std::ffi::CStr::from_ptr(plan_text)
        .to_string_lossy()
        .matches(&format!(":funcid {} ", sealed.seal_pii.to_u32()))
        .count();
    pg_sys::pfree(plan_text.cast());
    sealed.calls != calls_in_plan || keyring::some_class_without_key(&sealed.classes)
}

/// The value of a constant expression (None inside for NULL), or None for any other.
unsafe fn constant(node: *mut pg_sys::Node) -> Option<Option<pg_sys::Datum>> {
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Const {
        return None;
    }
    let constant = node.cast::<pg_sys::Const>();
    Some((!(*constant).constisnull).then_some((*constant).constvalue))
}

unsafe extern "C-unwind" fn visit_plan(
    state: *mut pg_sys::PlanState,
    context: *mut std::ffi::c_void,
) -> bool {
    if state.is_null() {
        return false;
    }
    let plan = (*state).plan;
    for expressions in [(*plan).targetlist, (*plan).qual] {
        visit_expression(expressions.cast(), context);
    }
    pg_sys::planstate_tree_walker(state, Some(visit_plan), context)
}

unsafe extern "C-unwind" fn visit_expression(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    let sealed = &mut *context.cast::<SealedClasses>();
    if (*node).type_ == pg_sys::NodeTag::T_FuncExpr {
        let call = node.cast::<pg_sys::FuncExpr>();
        if (*call).funcid == sealed.seal_pii {
            sealed.calls += 1;
            // seal_pii(value, class, context, subject): the planner fills in defaults.
            if pg_sys::list_length((*call).args) < 4 {
                sealed.may_write = true;
                return false;
            }
            let argument = |n| constant(pg_sys::list_nth((*call).args, n).cast());
            match argument(1) {
                Some(Some(class)) => {
                    let text = pg_sys::text_to_cstring(class.cast_mut_ptr());
                    sealed.classes.push(
                        std::ffi::CStr::from_ptr(text)
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
                Some(None) => {}
                None => sealed.may_write = true,
            }
            if argument(3) != Some(None) {
                sealed.may_write = true;
            }
        }
    }
    pg_sys::expression_tree_walker(node, Some(visit_expression), context)
}

const SEAL_FUNCTIONS: &str = "{akko_seal_pii}";
const KEY_FUNCTIONS: &str =
    "{akko_seal_pii,akko_open_pii,akko_open_text,akko_open_value,akko_open_pii_jsonb}";

/// Whether the plan calls one of akko_crypt's `functions` (their C symbols, as an array
/// literal). The planner lists the user-defined functions a plan calls among its
/// invalidation items, by syscache hash.
unsafe fn calls_functions(plan: *mut pg_sys::PlannedStmt, functions: &'static str) -> bool {
    let items = (*plan).invalItems;
    if items.is_null() {
        return false;
    }
    let hashes = function_hashes(functions);
    std::slice::from_raw_parts((*items).elements, (*items).length as usize)
        .iter()
        .any(|cell| {
            let item = cell.ptr_value.cast::<pg_sys::PlanInvalItem>();
            (*item).cacheId == pg_sys::SysCacheIdentifier::PROCOID as i32
                && hashes.contains(&(*item).hashValue)
        })
}

fn function_oids(functions: &'static str) -> Vec<pg_sys::Oid> {
    get_or_load(
        &FUNCTION_OIDS,
        PROC_GENERATION.with(Cell::get),
        &functions,
        || {
            read_one::<Vec<pg_sys::Oid>>(
                "find the functions that seal and open",
                "SELECT pg_catalog.array_agg(p.oid) FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
             WHERE n.nspname OPERATOR(pg_catalog.=) 'akko_crypt' \
               AND p.prosrc OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])",
                &[functions.into()],
            )
            .unwrap_or_default()
        },
    )
}

fn function_hashes(functions: &'static str) -> Vec<u32> {
    function_oids(functions)
        .into_iter()
        // SAFETY: a hash of an OID key in the pg_proc syscache; it looks no tuple up (it may
        // set the cache up first, raising through pgrx's guard if that fails).
        .map(|oid| unsafe {
            pg_sys::GetSysCacheHashValue(
                pg_sys::SysCacheIdentifier::PROCOID as i32,
                pg_sys::Datum::from(oid),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
                pg_sys::Datum::from(0),
            )
        })
        .collect()
}
