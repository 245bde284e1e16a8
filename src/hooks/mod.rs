//! Hooks into the server: log and activity redaction, and what runs before a parallel plan.

pub mod log_redaction;
pub mod parallel;
