//! Parallel queries. seal_pii and open_pii are PARALLEL SAFE: as a parallel plan starts,
//! the leader hands its workers the key it holds at that moment (custody's handoff), and
//! nothing can load a key while a parallel query runs. So a session that would unlock from
//! Vault on first use does so before a parallel plan that calls either function starts, not
//! inside it.

use crate::keyring::read_one;
use crate::{custody, vault_unlock};
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREVIOUS_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

pub fn init() {
    unsafe {
        PREVIOUS_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(before_parallel_plan);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn before_parallel_plan(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    let plan = (*query_desc).plannedstmt;
    if (*plan).parallelModeNeeded
        && eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 == 0
        && !pg_sys::IsInParallelMode()
    {
        if custody::fingerprint().is_none()
            && vault_unlock::would_unlock_lazily()
            && calls_key_functions(plan)
        {
            vault_unlock::lazy_unlock();
        }
        custody::prepare_parallel_handoff();
    }
    match PREVIOUS_EXECUTOR_START {
        Some(previous) => previous(query_desc, eflags),
        None => pg_sys::standard_ExecutorStart(query_desc, eflags),
    }
}

/// Whether the plan calls seal_pii or open_pii. The planner lists the user-defined
/// functions a plan calls among its invalidation items, by syscache hash.
unsafe fn calls_key_functions(plan: *mut pg_sys::PlannedStmt) -> bool {
    let items = (*plan).invalItems;
    if items.is_null() {
        return false;
    }
    let hashes = key_function_hashes();
    std::slice::from_raw_parts((*items).elements, (*items).length as usize)
        .iter()
        .any(|cell| {
            let item = cell.ptr_value.cast::<pg_sys::PlanInvalItem>();
            (*item).cacheId == pg_sys::SysCacheIdentifier::PROCOID as i32
                && hashes.contains(&(*item).hashValue)
        })
}

fn key_function_hashes() -> Vec<u32> {
    let oids = read_one::<Vec<pg_sys::Oid>>(
        "find the functions that seal and open",
        "SELECT pg_catalog.array_agg(p.oid) FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
         WHERE n.nspname OPERATOR(pg_catalog.=) 'akko_crypt' \
           AND p.prosrc OPERATOR(pg_catalog.=) ANY ('{akko_seal_pii,akko_open_pii,akko_open_text,akko_open_value,akko_open_pii_jsonb}')",
        &[],
    )
    .unwrap_or_default();
    oids.into_iter()
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
