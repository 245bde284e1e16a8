//! PostgreSQL functions that cannot raise an error, called without pgrx's error barrier.
//!
//! pgrx runs every `pg_sys` call under a `sigsetjmp` of its own, so that an ERROR raised
//! inside becomes a Rust panic rather than a longjmp over Rust frames. These functions only
//! read a backend global and never raise, so the barrier guards nothing; they run several
//! times for every value the trigger seals or a view opens.

use pgrx::pg_sys;

extern "C" {
    // The declarations are those of miscinit.c and xact.c, unchanged from PostgreSQL 15
    // to 18.
    #[link_name = "GetUserId"]
    fn get_user_id() -> pg_sys::Oid;
    #[link_name = "GetSessionUserId"]
    fn get_session_user_id() -> pg_sys::Oid;
    #[link_name = "GetCurrentCommandId"]
    fn get_current_command_id(used: bool) -> pg_sys::CommandId;
}

/// The current user: `GetUserId()`.
pub fn user_id() -> pg_sys::Oid {
    // SAFETY: GetUserId returns a backend global and raises nothing.
    unsafe { get_user_id() }
}

/// The session user: `GetSessionUserId()`.
pub fn session_user_id() -> pg_sys::Oid {
    // SAFETY: GetSessionUserId returns a backend global and raises nothing.
    unsafe { get_session_user_id() }
}

/// The current command's id, not marked as used: `GetCurrentCommandId(false)`.
pub fn current_command_id() -> pg_sys::CommandId {
    // SAFETY: GetCurrentCommandId raises only when asked to mark the id used in a parallel
    // worker; with `false` it returns a backend global.
    unsafe { get_current_command_id(false) }
}
