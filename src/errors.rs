//! Every error a user can meet, each with its own SQLSTATE, a message that says what failed
//! and, where it helps, a hint. None of them carries key material or plaintext.

use akko_crypt_core::{ClassNameError, EnvelopeError, KeyParseError, OpenError, UnwrapError};
use akko_crypt_vault::VaultError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

fn raise(report: ErrorReport) -> ! {
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

pub fn no_key_loaded() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "no akko_crypt key is loaded in this session",
            "akko_crypt",
        )
        .set_hint(
            "Load the root key at connection checkout: SELECT set_config('akko_crypt.key', $1, false), \
             with the key as a bind parameter.",
        ),
    )
}

/// Creating a class's first key or registering a subject writes to the keyring, which
/// PostgreSQL forbids while a query runs in parallel.
pub fn keyring_write_in_parallel_query(what: String) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            format!("{what}, which cannot happen inside a parallel query"),
            "akko_crypt",
        )
        .set_hint(
            "Run this statement with SET max_parallel_workers_per_gather = 0, or seal one such value in a statement of its own first.",
        ),
    )
}

pub fn unknown_key_version(class: &str, version: u32) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("key version {version} of data class \"{class}\" does not exist"),
        "akko_crypt",
    ))
}

pub fn unknown_class(class: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("data class \"{class}\" does not exist"),
            "akko_crypt",
        )
        .set_hint("Add it with SELECT akko_crypt.add_class('name'); akko_crypt.data_class lists the classes."),
    )
}

pub fn invalid_class_name(error: ClassNameError) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("invalid data class name: {error}"),
        "akko_crypt",
    ))
}

pub fn null_argument(name: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("{name} must not be NULL"),
        "akko_crypt",
    ))
}

pub fn bad_envelope(error: EnvelopeError) -> ! {
    let hint = match error {
        EnvelopeError::UnsupportedFormat(_) => {
            "The value was sealed by a newer akko_crypt; upgrade the extension to open it."
        }
        _ => "Only values produced by akko_crypt.seal_pii can be opened.",
    };
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!("could not open sealed value: {error}"),
            "akko_crypt",
        )
        .set_hint(hint),
    )
}

pub fn open_failed(error: OpenError) -> ! {
    let report = match error {
        OpenError::AuthenticationFailed => ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("could not open sealed value: {error}"),
            "akko_crypt",
        )
        .set_hint("Check that this session holds the key the value was sealed with, and pass the same context."),
        OpenError::ContextRequired | OpenError::ContextNotExpected => ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("could not open sealed value: {error}"),
            "akko_crypt",
        ),
    };
    raise(report)
}

pub fn plaintext_not_utf8() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        "could not open sealed value: its plaintext is not valid UTF-8 JSON text",
        "akko_crypt",
    ))
}

pub fn randomness_unavailable() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
        "could not read random bytes from the operating system for a nonce",
        "akko_crypt",
    ))
}

pub fn out_of_memory() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OUT_OF_MEMORY,
        "out of memory in akko_crypt",
        "akko_crypt",
    ))
}

pub fn catalog_query_failed(what: &str, error: pgrx::spi::Error) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
        format!("akko_crypt could not {what}: {error}"),
        "akko_crypt",
    ))
}

pub fn value_too_large(len: usize) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        format!(
            "sealed value would be {len} bytes, more than PostgreSQL's 1 GB limit for one value"
        ),
        "akko_crypt",
    ))
}

pub fn extension_missing() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "the akko_crypt extension is not installed in this database",
        "akko_crypt",
    ))
}

pub fn wrong_root(session: &str, keyring: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "this session's root key (fingerprint {session}) is not the root that wrapped the keyring (fingerprint {keyring})"
            ),
            "akko_crypt",
        )
        .set_hint("Load the root key whose fingerprint the keyring shows (akko_crypt.status()), or move the keyring to a new root with akko_crypt.rewrap()."),
    )
}

pub fn no_active_version(class: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("data class \"{class}\" has no active key version"),
            "akko_crypt",
        )
        .set_hint(format!(
            "Create one with SELECT akko_crypt.rotate_key('{class}')."
        )),
    )
}

pub fn key_retired(class: &str, version: u32) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("key {class}/{version} is retired; values sealed under it no longer open"),
            "akko_crypt",
        )
        .set_hint(
            "A retired key is kept in the keyring; re-encrypt values before retiring their key.",
        ),
    )
}

pub fn key_destroyed(class: &str, version: u32) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("key {class}/{version} was destroyed; values sealed under it can never be opened"),
        "akko_crypt",
    ))
}

pub fn subject_forgotten() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        "the subject this value was sealed for has been forgotten; its values can never be opened",
        "akko_crypt",
    ))
}

pub fn corrupt_keyring(class: &str, version: u32, error: UnwrapError) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        format!("keyring entry {class}/{version} is damaged: {error}"),
        "akko_crypt",
    ))
}

pub fn refused(message: String, hint: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            message,
            "akko_crypt",
        )
        .set_hint(hint),
    )
}

pub fn invalid_new_key(error: KeyParseError) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("invalid new root key: {error}"),
        "akko_crypt",
    ))
}

pub fn invalid_batch_size(batch_size: i32) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("batch_size must be at least 1, not {batch_size}"),
        "akko_crypt",
    ))
}

pub fn no_such_table(oid: u32) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        format!("relation with OID {oid} does not exist"),
        "akko_crypt",
    ))
}

pub fn reencrypt_needs_table(table: &str, relkind: &str) -> ! {
    let hint = if relkind == "p" {
        "Run akko_crypt.reencrypt on each partition: they hold the rows."
    } else {
        "akko_crypt.reencrypt rewrites the rows of an ordinary table."
    };
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{table}\" is not an ordinary table"),
            "akko_crypt",
        )
        .set_hint(hint),
    )
}

pub fn no_such_column(table: &str, column: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        format!("column \"{column}\" of relation \"{table}\" does not exist"),
        "akko_crypt",
    ))
}

pub fn reencrypt_needs_bytea(table: &str, column: &str, column_type: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("column {column} of {table} is of type {column_type}, not bytea"),
            "akko_crypt",
        )
        .set_hint("akko_crypt.reencrypt works on bytea columns that hold values sealed by akko_crypt.seal_pii."),
    )
}

pub fn reencrypt_not_permitted(table: &str, column: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied to read and update column {column} of {table}"),
        "akko_crypt",
    ))
}

pub fn reencrypt_running(table: &str, column: &str, pid: i32) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("akko_crypt.reencrypt is already running on {table}.{column}, in backend {pid}"),
            "akko_crypt",
        )
        .set_hint("Wait for it to finish (akko_crypt.reencrypt_runs shows its progress), or stop it with pg_terminate_backend; a new call resumes where it stopped."),
    )
}

pub fn reencrypt_running_elsewhere(run: i64, pid: i32) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
            format!("reencrypt run {run} belongs to backend {pid}"),
            "akko_crypt",
        )
        .set_hint("Call akko_crypt.reencrypt again to take over a run whose backend has gone."),
    )
}

pub fn no_such_run(run: i64) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("reencrypt run {run} does not exist"),
        "akko_crypt",
    ))
}

pub fn reencrypt_context_missing(table: &str, column: &str, row: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the value of {table}.{column} in row {row} is bound to a context, and no context was given for it"),
            "akko_crypt",
        )
        .set_hint("Pass context => an SQL expression over the table's columns that gives, for every row, the bytea the value was sealed with; the run resumes where it stopped."),
    )
}

pub fn reencrypt_open_failed(table: &str, column: &str, row: &str, error: OpenError) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("could not re-encrypt the value of {table}.{column} in row {row}: {error}"),
            "akko_crypt",
        )
        .set_hint("If the value is bound to a context, check that the context expression gives the bytes it was sealed with."),
    )
}

pub fn vault_setting_missing(name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("{name} is not set"),
            "akko_crypt",
        )
        .set_hint("README.md, \"Keys from Vault or OpenBao\", lists the settings each mode needs."),
    )
}

pub fn vault_file_unreadable(name: &str, path: &str, error: &std::io::Error) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR,
        format!("could not read {name} \"{path}\": {error}"),
        "akko_crypt",
    ))
}

pub fn transit_not_initialised() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "akko_crypt.vault_transit_key is set, but this database has no Transit-wrapped root key",
            "akko_crypt",
        )
        .set_hint("Create it once with SELECT akko_crypt.vault_init_transit()."),
    )
}

pub fn vault_thread_failed(error: &std::io::Error) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
        format!("could not start the thread that talks to Vault: {error}"),
        "akko_crypt",
    ))
}

/// Vault's answers, by what the operator has to do about them. The message carries Vault's
/// own words, never a token or a key.
pub fn vault_failed(what: &str, error: &VaultError) -> ! {
    let (code, hint) = match error {
        VaultError::InsecureAddress => (
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "Use https with akko_crypt.vault_ca_file, or set akko_crypt.vault_allow_http.",
        ),
        VaultError::CaFile(_) => (PgSqlErrorCode::ERRCODE_CONFIG_FILE_ERROR, ""),
        VaultError::Unreachable(_) | VaultError::TimedOut => (
            PgSqlErrorCode::ERRCODE_CONNECTION_FAILURE,
            "Check akko_crypt.vault_addr and that Vault is up; sessions that hold a key keep working.",
        ),
        VaultError::Status { status: 403, .. } => (
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "Check the token or login settings and that the policy allows this path.",
        ),
        VaultError::Status { status: 404, .. } => (
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "Check akko_crypt.vault_kv_path (mount/data/path) or akko_crypt.vault_transit_key.",
        ),
        VaultError::Status { status: 503, .. } => (
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "Vault is sealed or in standby: unseal it.",
        ),
        VaultError::LoginRefused { .. } => (
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
            "Check akko_crypt.vault_auth and this role's AppRole or JWT settings against the auth role in Vault (bound claims, audience, secret_id uses and TTL).",
        ),
        VaultError::Status { .. } => (PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, ""),
        VaultError::Malformed(_) => (PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION, ""),
    };
    let report = ErrorReport::new(
        code,
        format!("akko_crypt could not {what}: {error}"),
        "akko_crypt",
    );
    raise(if hint.is_empty() {
        report
    } else {
        report.set_hint(hint)
    })
}

pub fn vault_key_malformed(source: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the root key from {source} is not 32 bytes in hex or base64"),
            "akko_crypt",
        )
        .set_hint("Store 32 random bytes, for example: bao kv put secret/akko_crypt root_key=$(openssl rand -base64 32)"),
    )
}

pub fn bad_binding_id(len: usize) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("a column binding id is 16 bytes, not {len}"),
        "akko_crypt",
    ))
}

pub fn row_context_needs_separate_keys() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        "akko_crypt.row_context takes the primary key columns as separate arguments, not as a VARIADIC array",
        "akko_crypt",
    ))
}

/// A text-mode column written a value with the envelope prefix that is not one.
pub fn bad_text_envelope(column: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            format!(
                "the value written to protected column \"{column}\" starts with \"$akko:\" but is not an envelope"
            ),
            "akko_crypt",
        )
        .set_hint("Text that starts with \"$akko:\" is taken for an envelope in a text-mode column; such a value cannot be stored in it."),
    )
}

pub fn bad_text_envelope_value() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        "the text after \"$akko:\" is not valid base64",
        "akko_crypt",
    ))
}

pub fn not_a_text_envelope() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "the value is not a text-mode envelope",
            "akko_crypt",
        )
        .set_hint("A text-mode column holds \"$akko:\" followed by base64; plaintext in it means its trigger did not run."),
    )
}

pub fn bad_jsonb_envelope() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        "the \"$akko\" value of a jsonb envelope is not valid base64",
        "akko_crypt",
    ))
}

/// The type's own message would quote the value, which is plaintext: only its SQLSTATE is kept.
pub fn invalid_protected_value(column: &str, type_name: &str, code: PgSqlErrorCode) -> ! {
    raise(
        ErrorReport::new(
            code,
            format!(
                "the value written to protected column \"{column}\" is not a valid {type_name}"
            ),
            "akko_crypt",
        )
        .set_detail("akko_crypt does not show the value: it is plaintext."),
    )
}

pub fn protected_column_missing(table: &str, column: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("protected column \"{column}\" of table \"{table}\" no longer exists"),
            "akko_crypt",
        )
        .set_hint(
            "A protected column was renamed or dropped: rename it back; if it was dropped, akko_crypt.unprotect on its old name forgets it.",
        ),
    )
}

pub fn original_type_missing(table: &str, column: &str, type_oid: u32) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("the type protected column \"{column}\" of table \"{table}\" held (OID {type_oid}) no longer exists"),
            "akko_crypt",
        )
        .set_hint("Its values cannot be written, read as that type or unprotected until the type is restored (from a dump of the database, which keeps its OID only in a binary upgrade); dropping the column, or the table, ends its protection."),
    )
}

pub fn protected_column_retyped(table: &str, column: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("protected column \"{column}\" of table \"{table}\" changed its type"),
            "akko_crypt",
        )
        .set_hint("A protected column stays bytea (or jsonb in jsonb mode); use akko_crypt.unprotect to change it."),
    )
}

pub fn row_binding_needs_primary_key(table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("table \"{table}\" binds values to their row but has no primary key"),
        "akko_crypt",
    ))
}

pub fn not_called_as_trigger() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        "akko_crypt.protect_row() must be called as a BEFORE ... FOR EACH ROW trigger",
        "akko_crypt",
    ))
}

pub fn protected_plaintext_not_utf8(column: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            format!("the value written to protected column \"{column}\" is neither an akko_crypt envelope nor UTF-8 text"),
            "akko_crypt",
        )
        .set_hint("Write plaintext through the decrypting view, or as UTF-8 text: akko_crypt.utf8_bytes(value::text)."),
    )
}

pub fn protected_text_not_utf8(column: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        format!("the value written to protected column \"{column}\" is not valid text or has no UTF-8 form"),
        "akko_crypt",
    ))
}

pub fn value_not_utf8() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        "the value is not valid text or has no UTF-8 form",
        "akko_crypt",
    ))
}

/// A decrypting view that other objects depend on, whose columns changed in name, type or
/// order: it cannot be replaced in place, nor dropped without them.
pub fn view_kept_by_dependents(view: &str, dependents: &str, reason: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            format!("the decrypting view {view} cannot be rebuilt: {dependents} depends on it, and its columns changed ({reason})"),
            "akko_crypt",
        )
        .set_hint("Drop what depends on the view, run this again, then create it again; a view over the decrypting view is kept as long as the table's columns keep their names, types and order."),
    )
}

pub fn column_not_migrating(table: &str, column: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("column \"{column}\" of table \"{table}\" does not migrate online"),
        "akko_crypt",
    ).set_hint("akko_crypt.migrating_blind_index serves the unique index of a column while it migrates; look values up with akko_crypt.blind_index."))
}

pub fn migrating_value_of_other_type(table: &str, column: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        format!("akko_crypt.migrating_blind_index takes a value of the type column \"{column}\" of table \"{table}\" had"),
        "akko_crypt",
    ))
}

pub fn may_not_write_table(table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied: the blind index of a migrating column of table \"{table}\" is computed for its writers only"),
        "akko_crypt",
    ))
}

pub fn no_blind_index(table: &str, column: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("column \"{column}\" of table \"{table}\" has no blind index"),
            "akko_crypt",
        )
        .set_hint("Protect it with akko_crypt.protect(..., blind_index => true)."),
    )
}

pub fn privilege_missing(privilege: &str, class: Option<&str>, role: &str) -> ! {
    let what = match class {
        Some(class) => format!("{privilege} data class \"{class}\""),
        None => privilege.to_owned(),
    };
    let grant = match class {
        Some(class) => {
            format!("SELECT akko_crypt.grant_privilege('{privilege}', '<role>', '{class}')")
        }
        None => format!("SELECT akko_crypt.grant_privilege('{privilege}', '<role>')"),
    };
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: role \"{role}\" may not {what}"),
            "akko_crypt",
        )
        .set_hint(format!(
            "An akko_crypt administrator grants it with {grant}."
        )),
    )
}

pub fn duties_separated(role: &str, wanted: &str, duty: &str) -> ! {
    let what = match duty {
        "admin" => "administers keys, and a key administrator opens nothing",
        "createrole" => "may create roles (CREATEROLE), so one that opens, and a role that could open administers no key",
        _ => "may open values, and a role that opens administers no key",
    };
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: role \"{role}\" {what} (it may not {wanted})"),
            "akko_crypt",
        )
        .set_hint("Separation of duties: keep key administration and opening in roles that are not members of each other, and log in as the one the work needs."),
    )
}

pub fn duties_joined(privilege: &str, grantee: &str, role: &str, duty: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_GRANT_OPERATION,
            format!("{privilege} cannot be granted to role \"{grantee}\": role \"{role}\", which could act as it, holds or could take up {}", if duty == "open" && privilege == "admin" { "open (or may create roles)" } else { duty }),
            "akko_crypt",
        )
        .set_hint("Separation of duties: the key administrator and the roles that open values are different roles, neither a member of the other."),
    )
}

pub fn unknown_privilege(name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("akko_crypt has no privilege \"{name}\""),
            "akko_crypt",
        )
        .set_hint("The privileges are seal, open, protect, unlock and admin."),
    )
}

pub fn no_such_role(oid: u32) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("role with OID {oid} does not exist"),
        "akko_crypt",
    ))
}

pub fn privilege_has_no_class(privilege: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("the privilege \"{privilege}\" is not given per data class"),
            "akko_crypt",
        )
        .set_hint("Only seal and open are granted per class; leave class out for the others."),
    )
}

pub fn reserved_class() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the data class \"blind_index\" keys blind indexes only; no value is sealed or opened under it",
            "akko_crypt",
        )
        .set_hint("Seal values under identity, financial, operational or a class of your own."),
    )
}

pub fn extension_outdated(installed: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the akko_crypt extension in this database is version {installed}, but its library is version {}",
                env!("CARGO_PKG_VERSION")
            ),
            "akko_crypt",
        )
        .set_hint("Run ALTER EXTENSION akko_crypt UPDATE; until then akko_crypt seals, opens and protects nothing."),
    )
}

pub fn keyring_claim_needs_admin() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "the keyring is empty, and its first key, which fixes the root key of this database, is written only by an akko_crypt administrator",
            "akko_crypt",
        )
        .set_hint("An administrator with the root key loaded starts the keyring: SELECT akko_crypt.rotate_key('identity')."),
    )
}

pub fn plaintext_not_json() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        "could not open sealed value: its plaintext is not a JSON document",
        "akko_crypt",
    ))
}

/// The type's own message would quote the value, which is plaintext: only its SQLSTATE is kept.
pub fn protected_value_unreadable(type_name: &str, code: PgSqlErrorCode) -> ! {
    raise(
        ErrorReport::new(
            code,
            format!("a value opened from a protected column is not a valid {type_name}"),
            "akko_crypt",
        )
        .set_detail("akko_crypt does not show the value: it is plaintext."),
    )
}

pub fn open_value_as_domain(type_name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("akko_crypt.open_value does not open values as type {type_name}: it is or holds a domain, whose CHECK would run for whoever reads"),
            "akko_crypt",
        )
        .set_hint("Open as the type without the domain and cast, as the decrypting views do (akko_crypt.refresh_views() rebuilds a view made before); a range or composite type over a domain cannot be opened."),
    )
}

pub fn unreadable_type(column: &str, table: &str, type_name: &str) -> ! {
    protect_refused(
        format!("column {column} of {table} is of type {type_name}, which holds a domain that no type without it reads (in a range, a composite type, or an array of a domain over an array): it could not be read without running the domain's CHECK for whoever reads"),
        "Protect a column of a type without such a domain; a domain, or an array of one, reads as its base type.",
    )
}

pub fn open_value_needs_type() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INDETERMINATE_DATATYPE,
            "akko_crypt.open_value needs the type to open as: a typed NULL as its third argument",
            "akko_crypt",
        )
        .set_hint("For example akko_crypt.open_value(col, NULL, NULL::date)."),
    )
}

pub fn envelope_of_other_class(column: &str, got: &str, want: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("the envelope written to protected column \"{column}\" is sealed under data class \"{got}\"; the column holds values of \"{want}\""),
        "akko_crypt",
    ))
}

pub fn name_has_nul() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        "a name or text for a generated statement contains a NUL byte",
        "akko_crypt",
    ))
}

pub fn generated_sql_not_one_statement() -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
        "akko_crypt built a statement that does not parse as exactly one statement; nothing was run",
        "akko_crypt",
    ))
}

pub fn ddl_failed(error: pgrx::spi::Error) -> ! {
    catalog_query_failed("run a statement it built", error)
}

pub fn partitioned_table(table: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{table} is a partitioned table"),
            "akko_crypt",
        )
        .set_hint("akko_crypt protects ordinary tables; a partitioned table is not supported."),
    )
}

pub fn not_a_table(table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
        format!("{table} is not an ordinary table"),
        "akko_crypt",
    ))
}

pub fn temporary_table(table: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{table} is a temporary table"),
            "akko_crypt",
        )
        .set_hint(
            "akko_crypt protects permanent tables; a temporary table lives only in its session.",
        ),
    )
}

pub fn not_table_owner(table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("must be owner of table {table}"),
        "akko_crypt",
    ))
}

pub fn envelopes_before_protect(column: &str, table: &str, count: i64) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("column {column} of {table} already holds {count} values shaped like akko_crypt envelopes"),
            "akko_crypt",
        )
        .set_hint("protect seals plaintext; it cannot vouch for envelopes it did not seal. Move them out, protect the column, and write them back: the trigger authenticates each one."),
    )
}

pub fn owner_may_not_seal(table: &str, class: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: the owner of {table}, as whom the migration seals its values, may not seal data class \"{class}\""),
            "akko_crypt",
        )
        .set_hint(format!("akko_crypt runs statements on a table as its owner, so that the owner's triggers never run with the caller's rights: grant the owner seal on \"{class}\" first.")),
    )
}

pub fn owner_may_not_open(column: &str, table: &str, class: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: unprotect would give the plaintext of column {column} to the owner of {table}, who may not open data class \"{class}\""),
            "akko_crypt",
        )
        .set_hint(format!("Grant the table's owner open on \"{class}\" first, or read the values through the decrypting view instead.")),
    )
}

pub fn context_not_one_expression() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_SYNTAX_ERROR,
            "reencrypt's context must be one SQL expression over the table's columns",
            "akko_crypt",
        )
        .set_hint("For example akko_crypt.row_context('\\x...'::bytea, id); no FROM, no other target, no other statement."),
    )
}

pub fn reencrypt_past_row_security(table: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: {table} has row security, and this role is not a member of its owner"),
            "akko_crypt",
        )
        .set_hint("reencrypt reads and writes a table as its owner, which would reach rows the policies hide from this role: re-encrypt it as its owner or a member of it."),
    )
}

pub fn reencrypt_context_needs_owner(table: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied: a context expression for {table} runs as its owner, and this role is not a member of it"),
            "akko_crypt",
        )
        .set_hint("A protected column bound to its rows needs none: reencrypt derives it. Otherwise re-encrypt as the table's owner or a member of it."),
    )
}

pub fn failed_over_plaintext(code: PgSqlErrorCode, message: &str) -> ! {
    raise(
        ErrorReport::new(code, message.to_owned(), "akko_crypt").set_hint(
            "akko_crypt left out this error's detail: the statement wrote plaintext, and the detail can show it.",
        ),
    )
}

pub fn protect_refused(message: String, hint: &str) -> ! {
    let report = ErrorReport::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        message,
        "akko_crypt",
    );
    raise(if hint.is_empty() {
        report
    } else {
        report.set_hint(hint)
    })
}

pub fn jsonb_mode_needs_jsonb(column: &str, table: &str, type_name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("column {column} of {table} is {type_name}, not jsonb"),
            "akko_crypt",
        )
        .set_hint("jsonb mode keeps a jsonb column as jsonb; use mode => 'bytea' for other types."),
    )
}

pub fn bad_normalization(name: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("normalization must be 'none', 'lower' or 'trim_lower', not '{name}'"),
        "akko_crypt",
    ))
}

pub fn bad_mode(name: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("mode must be 'bytea' or 'jsonb', not '{name}'"),
        "akko_crypt",
    ))
}

pub fn derived_column_exists(column: &str, table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_DUPLICATE_COLUMN,
        format!("column {column} already exists in {table}"),
        "akko_crypt",
    ))
}

pub fn already_protected(column: &str, table: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!("column {column} of {table} is already protected, with other options"),
            "akko_crypt",
        )
        .set_hint("Run akko_crypt.unprotect first to protect it differently."),
    )
}

pub fn not_protected(column: &str, table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
        format!("column {column} of {table} is not protected"),
        "akko_crypt",
    ))
}

pub fn migration_running(tbl: pgrx::pg_sys::Oid) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_IN_USE,
        format!(
            "a migration of the table with OID {} is already running",
            tbl.to_u32()
        ),
        "akko_crypt",
    ))
}

pub fn empty_view_name() -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            "the view name must not be empty",
            "akko_crypt",
        )
        .set_hint("Leave view_name out for <table>_decrypted."),
    )
}

pub fn view_name_taken(schema: &str, name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
            format!("relation {schema}.{name} already exists"),
            "akko_crypt",
        )
        .set_hint("Name the view with create_view(tbl, view_name => ...)."),
    )
}

pub fn view_decrypts_other_table(schema: &str, name: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
        format!("view {schema}.{name} decrypts another table"),
        "akko_crypt",
    ))
}

pub fn removed_function(name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("{name} no longer exists in this akko_crypt library"),
            "akko_crypt",
        )
        .set_hint("Run ALTER EXTENSION akko_crypt UPDATE."),
    )
}

pub fn stored_type_unreadable(text: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("akko_crypt.protected_columns names the type \"{text}\", which is not one type name"),
            "akko_crypt",
        )
        .set_hint("Releases before 0.3.0 let table owners write this registry. Correct original_type in that row (or delete the row) and run ALTER EXTENSION akko_crypt UPDATE again."),
    )
}

pub fn protection_incomplete(table: &str, columns: &[String]) -> ! {
    let message = if columns.is_empty() {
        format!("akko_crypt.protect_row() fires on table \"{table}\", which akko_crypt does not protect")
    } else {
        format!(
            "the protection of table \"{table}\" is incomplete: akko_crypt's registry and the table's trigger disagree on column(s) {}",
            columns.join(", ")
        )
    };
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            message,
            "akko_crypt",
        )
        .set_hint(
            "A table restored from a table-level or schema-only dump comes without akko_crypt.protected_columns: its owner runs SELECT akko_crypt.restore_protection('<table>'). Nothing is written to the table until then.",
        ),
    )
}

pub fn nothing_to_restore(table: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!("{table} has no akko_crypt trigger that carries protected columns"),
        "akko_crypt",
    ))
}

pub fn registry_differs_from_trigger(table: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("akko_crypt's registry already holds protected columns of {table}, other than its trigger carries"),
            "akko_crypt",
        )
        .set_hint("akko_crypt.status() shows them under incomplete_protection; restore the registry from the same full dump as the table."),
    )
}

pub fn column_type_not_as_protected(column: &str, table: &str, wanted: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        format!("column {column} of {table} is not of type {wanted}, as its protection says"),
        "akko_crypt",
    ))
}

pub fn carried_type_unknown(column: &str, type_name: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("protected column \"{column}\" held values of type \"{type_name}\", which does not exist in this database"),
            "akko_crypt",
        )
        .set_hint("A table-level dump does not carry the types its columns use: create the type first."),
    )
}

pub fn binding_in_use(column: &str, table: &str, other: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("column {column} of {table} has the same row binding as a protected column of table \"{other}\""),
            "akko_crypt",
        )
        .set_hint("A table restored beside the table it was dumped from: restore it into a database of its own, or unprotect the other first."),
    )
}

pub fn blind_index_key_missing(column: &str, table: &str, version: i32) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("the blind index of column {column} of {table} uses key version {version} of class blind_index, which this database's keyring does not hold"),
            "akko_crypt",
        )
        .set_hint("Restore the table into the database it was dumped from, or one restored from a full dump of it."),
    )
}

pub fn restored_type_unusable(type_name: &str) -> ! {
    raise(ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("a restored protected column held values of type {type_name}, which this role may not use or which is a pseudo-type"),
        "akko_crypt",
    ))
}

pub fn migration_duplicate(column: &str, table: &str, row: &str, holder: &str) -> ! {
    raise(
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
            format!("migrating column {column} of {table}: the row {row} holds the same value (after normalisation) as the row {holder}, which the unique blind index refuses"),
            "akko_crypt",
        )
        .set_hint("Change one of the two rows, then run protect (or, for an online migration, migrate) again; an online migration goes on where it stopped."),
    )
}
