//! Every error akko_crypt raises, as one enum: its SQLSTATE, message and, where it helps, a
//! hint or a detail. PostgreSQL-free, so that its unit tests can hold it against the README's
//! SQLSTATE table and PostgreSQL's own list of codes; the extension turns a [`Report`] into an
//! ERROR. No message, hint or detail carries key material or plaintext: the values an error
//! names are names (classes, tables, columns, roles, types), versions, counts and row keys.

#![forbid(unsafe_code)]

use akko_crypt_core::{ClassNameError, EnvelopeError, KeyParseError, OpenError, UnwrapError};
use akko_crypt_vault::VaultError;
use std::fmt;

/// A SQLSTATE: five characters, digits and upper-case letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sqlstate([u8; 5]);

impl Sqlstate {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XX000")
    }

    /// PostgreSQL's packed form (MAKE_SQLSTATE), six bits a character.
    pub fn packed(self) -> i32 {
        self.0
            .iter()
            .enumerate()
            .map(|(i, &c)| ((i32::from(c) - i32::from(b'0')) & 0x3F) << (6 * i))
            .sum()
    }

    /// The code of an error PostgreSQL raised, to raise again in its place.
    pub fn unpacked(packed: i32) -> Sqlstate {
        let mut code = [0u8; 5];
        for (i, c) in code.iter_mut().enumerate() {
            *c = ((packed >> (6 * i)) & 0x3F) as u8 + b'0';
        }
        Sqlstate(code)
    }
}

impl fmt::Debug for Sqlstate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The conditions akko_crypt raises, named as PostgreSQL names them (errcodes.txt, PL/pgSQL's
/// condition names in upper case).
macro_rules! conditions {
    ($($name:ident = $code:literal;)*) => {
        impl Sqlstate {
            $(pub const $name: Sqlstate = Sqlstate(*$code);)*
        }

        /// Every condition of [`Sqlstate`]'s constants, with PostgreSQL's name for it.
        pub const CONDITIONS: &[(&str, Sqlstate)] = &[$((stringify!($name), Sqlstate::$name)),*];
    };
}

conditions! {
    CONNECTION_FAILURE = b"08006";
    FEATURE_NOT_SUPPORTED = b"0A000";
    INVALID_GRANT_OPERATION = b"0LP01";
    NULL_VALUE_NOT_ALLOWED = b"22004";
    CHARACTER_NOT_IN_REPERTOIRE = b"22021";
    INVALID_PARAMETER_VALUE = b"22023";
    INVALID_TEXT_REPRESENTATION = b"22P02";
    INVALID_BINARY_REPRESENTATION = b"22P03";
    UNIQUE_VIOLATION = b"23505";
    INVALID_TRANSACTION_STATE = b"25000";
    INVALID_AUTHORIZATION_SPECIFICATION = b"28000";
    DEPENDENT_OBJECTS_STILL_EXIST = b"2BP01";
    EXTERNAL_ROUTINE_EXCEPTION = b"38000";
    TRIGGER_PROTOCOL_VIOLATED = b"39P01";
    INSUFFICIENT_PRIVILEGE = b"42501";
    SYNTAX_ERROR = b"42601";
    DUPLICATE_COLUMN = b"42701";
    UNDEFINED_COLUMN = b"42703";
    UNDEFINED_OBJECT = b"42704";
    DUPLICATE_OBJECT = b"42710";
    DATATYPE_MISMATCH = b"42804";
    WRONG_OBJECT_TYPE = b"42809";
    UNDEFINED_TABLE = b"42P01";
    DUPLICATE_TABLE = b"42P07";
    INDETERMINATE_DATATYPE = b"42P18";
    OUT_OF_MEMORY = b"53200";
    PROGRAM_LIMIT_EXCEEDED = b"54000";
    OBJECT_NOT_IN_PREREQUISITE_STATE = b"55000";
    OBJECT_IN_USE = b"55006";
    CANT_CHANGE_RUNTIME_PARAM = b"55P02";
    SYSTEM_ERROR = b"58000";
    CONFIG_FILE_ERROR = b"F0000";
    DATA_CORRUPTED = b"XX001";
}

/// The detail of an error that stands in for one whose message would quote plaintext.
const PLAINTEXT_NOT_SHOWN: &str = "akko_crypt does not show the value: it is plaintext.";

/// What an ERROR shows: its SQLSTATE, message, and the hint and detail it may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub sqlstate: Sqlstate,
    pub message: String,
    pub hint: Option<String>,
    pub detail: Option<&'static str>,
}

impl Report {
    fn new(sqlstate: Sqlstate, message: impl Into<String>) -> Report {
        Report {
            sqlstate,
            message: message.into(),
            hint: None,
            detail: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> Report {
        self.hint = Some(hint.into());
        self
    }

    fn detail(mut self, detail: &'static str) -> Report {
        self.detail = Some(detail);
        self
    }
}

/// Every error akko_crypt raises. The names in it are what the message shows.
#[derive(Debug)]
#[cfg_attr(test, derive(strum::EnumCount))]
pub enum Error<'a> {
    NoKeyLoaded,
    /// Creating a class's first key or registering a subject writes to the keyring, which
    /// PostgreSQL forbids while a query runs in parallel.
    /// `class`: the first seal of that class writes its key; none: the first seal for a new
    /// subject registers it.
    KeyringWriteInParallelQuery {
        class: Option<&'a str>,
    },
    UnknownKeyVersion {
        class: &'a str,
        version: u32,
    },
    UnknownClass {
        class: &'a str,
    },
    InvalidClassName {
        error: ClassNameError,
    },
    NullArgument {
        name: &'a str,
    },
    BadEnvelope {
        error: EnvelopeError,
    },
    OpenFailed {
        error: OpenError,
    },
    PlaintextNotUtf8,
    RandomnessUnavailable,
    OutOfMemory,
    CatalogQueryFailed {
        what: &'a str,
        error: String,
    },
    ValueTooLarge {
        len: usize,
    },
    ExtensionMissing,
    WrongRoot {
        session: &'a str,
        keyring: &'a str,
    },
    NoActiveVersion {
        class: &'a str,
    },
    KeyRetired {
        class: &'a str,
        version: u32,
    },
    KeyDestroyed {
        class: &'a str,
        version: u32,
    },
    SubjectForgotten,
    CorruptKeyring {
        class: &'a str,
        version: u32,
        error: UnwrapError,
    },
    ActiveKeyNotRetirable {
        class: &'a str,
        version: u32,
    },
    RetireMayLeaveValues {
        class: &'a str,
        version: u32,
    },
    ActiveKeyNotDestroyable {
        class: &'a str,
        version: u32,
    },
    KeyNotRetired {
        class: &'a str,
        version: u32,
    },
    TransitRootExists,
    InvalidNewKey {
        error: KeyParseError,
    },
    InvalidBatchSize {
        batch_size: i32,
    },
    NoSuchTable {
        oid: u32,
    },
    ReencryptNeedsTable {
        table: &'a str,
        relkind: &'a str,
    },
    NoSuchColumn {
        table: &'a str,
        column: &'a str,
    },
    ReencryptNeedsBytea {
        table: &'a str,
        column: &'a str,
        column_type: &'a str,
    },
    ReencryptNotPermitted {
        table: &'a str,
        column: &'a str,
    },
    RunInProgress {
        job: &'a str,
        target: &'a str,
        pid: i32,
    },
    RunOfAnotherBackend {
        run: i64,
        pid: i32,
    },
    RunOfAnotherRole {
        run: i64,
    },
    NoSuchRun {
        job: &'a str,
        run: i64,
    },
    ReencryptContextMissing {
        table: &'a str,
        column: &'a str,
        row: &'a str,
    },
    ReencryptOpenFailed {
        table: &'a str,
        column: &'a str,
        row: &'a str,
        error: OpenError,
    },
    VaultSettingMissing {
        name: &'a str,
    },
    VaultFileUnreadable {
        name: &'a str,
        path: &'a str,
        error: &'a std::io::Error,
    },
    TransitNotInitialised,
    VaultThreadFailed {
        error: &'a std::io::Error,
    },
    /// Vault's answers, by what the operator has to do about them. The message carries Vault's
    /// own words, never a token or a key.
    VaultFailed {
        what: &'a str,
        error: &'a VaultError,
    },
    VaultKeyMalformed {
        source: &'a str,
    },
    BadBindingId {
        len: usize,
    },
    RowContextNeedsSeparateKeys,
    /// A text-mode column written a value with the envelope prefix that is not one.
    BadTextEnvelope {
        column: &'a str,
    },
    BadTextEnvelopeValue,
    NotATextEnvelope,
    BadJsonbEnvelope,
    /// The type's own message would quote the value, which is plaintext: only its SQLSTATE is kept.
    InvalidProtectedValue {
        column: &'a str,
        type_name: &'a str,
        sqlstate: Sqlstate,
    },
    ProtectedColumnMissing {
        table: &'a str,
        column: &'a str,
    },
    OriginalTypeMissing {
        table: &'a str,
        column: &'a str,
        type_oid: u32,
    },
    ProtectedColumnRetyped {
        table: &'a str,
        column: &'a str,
    },
    RowBindingNeedsPrimaryKey {
        table: &'a str,
    },
    NotCalledAsTrigger,
    ProtectedPlaintextNotUtf8 {
        column: &'a str,
    },
    ProtectedTextNotUtf8 {
        column: &'a str,
    },
    ValueNotUtf8,
    /// A decrypting view that other objects depend on, whose columns changed in name, type or
    /// order: it cannot be replaced in place, nor dropped without them.
    ViewKeptByDependents {
        view: &'a str,
        dependents: &'a str,
        reason: &'a str,
    },
    ColumnNotMigrating {
        table: &'a str,
        column: &'a str,
    },
    MigratingValueOfOtherType {
        table: &'a str,
        column: &'a str,
    },
    MayNotWriteTable {
        table: &'a str,
    },
    NoBlindIndex {
        table: &'a str,
        column: &'a str,
    },
    PrivilegeMissing {
        privilege: &'a str,
        class: Option<&'a str>,
        role: &'a str,
    },
    DutiesSeparated {
        role: &'a str,
        wanted: &'a str,
        duty: &'a str,
    },
    DutiesJoined {
        privilege: &'a str,
        grantee: &'a str,
        role: &'a str,
        duty: &'a str,
    },
    UnknownPrivilege {
        name: &'a str,
    },
    NoSuchRole {
        oid: u32,
    },
    PrivilegeHasNoClass {
        privilege: &'a str,
    },
    ReservedClass,
    ExtensionOutdated {
        installed: &'a str,
        library: &'a str,
    },
    KeyringClaimNeedsAdmin,
    PlaintextNotJson,
    /// The type's own message would quote the value, which is plaintext: only its SQLSTATE is kept.
    ProtectedValueUnreadable {
        type_name: &'a str,
        sqlstate: Sqlstate,
    },
    OpenValueAsDomain {
        type_name: &'a str,
    },
    UnreadableType {
        column: &'a str,
        table: &'a str,
        type_name: &'a str,
    },
    OpenValueNeedsType,
    EnvelopeOfOtherClass {
        column: &'a str,
        got: &'a str,
        want: &'a str,
    },
    NameHasNul,
    GeneratedSqlNotOneStatement,
    PartitionedTable {
        table: &'a str,
    },
    NotATable {
        table: &'a str,
    },
    TemporaryTable {
        table: &'a str,
    },
    NotTableOwner {
        table: &'a str,
    },
    EnvelopesBeforeProtect {
        column: &'a str,
        table: &'a str,
        count: i64,
    },
    OwnerMayNotSeal {
        table: &'a str,
        class: &'a str,
    },
    OwnerMayNotOpen {
        column: &'a str,
        table: &'a str,
        class: &'a str,
    },
    ContextNotOneExpression,
    ReencryptPastRowSecurity {
        table: &'a str,
    },
    ReencryptContextNeedsOwner {
        table: &'a str,
    },
    FailedOverPlaintext {
        sqlstate: Sqlstate,
        message: &'a str,
    },
    ColumnAlreadyBytea {
        column: &'a str,
        table: &'a str,
    },
    ColumnHasDefault {
        column: &'a str,
        table: &'a str,
    },
    BlindIndexNeedsBytea,
    /// `migrates`: protect, whose migration would not reach them either; restore_protection.
    TableInInheritance {
        table: &'a str,
        migrates: bool,
    },
    IdentityOrGeneratedColumn {
        column: &'a str,
        table: &'a str,
    },
    GeneratedFromColumn {
        generated: &'a str,
        column: &'a str,
        table: &'a str,
    },
    RestoredGeneratedColumn {
        column: &'a str,
        table: &'a str,
    },
    /// `protecting`: protect; otherwise unprotect, which restores plaintext.
    ColumnUsedBy {
        column: &'a str,
        table: &'a str,
        blocker: &'a str,
        protecting: bool,
    },
    NoPrimaryKeyToBind {
        table: &'a str,
    },
    KeyStoredOutsideSession,
    InvalidKey {
        error: KeyParseError,
    },
    HandoffSetByUser,
    NotPreloaded,
    JsonbModeNeedsJsonb {
        column: &'a str,
        table: &'a str,
        type_name: &'a str,
    },
    BadNormalization {
        name: &'a str,
    },
    BadMode {
        name: &'a str,
    },
    DerivedColumnExists {
        column: &'a str,
        table: &'a str,
    },
    AlreadyProtected {
        column: &'a str,
        table: &'a str,
    },
    NotProtected {
        column: &'a str,
        table: &'a str,
    },
    EmptyViewName,
    ViewNameTaken {
        schema: &'a str,
        name: &'a str,
    },
    ViewDecryptsOtherTable {
        schema: &'a str,
        name: &'a str,
    },
    RemovedFunction {
        name: &'a str,
    },
    StoredTypeUnreadable {
        text: &'a str,
    },
    ProtectionIncomplete {
        table: &'a str,
        columns: &'a [String],
    },
    NothingToRestore {
        table: &'a str,
    },
    RegistryDiffersFromTrigger {
        table: &'a str,
    },
    ColumnTypeNotAsProtected {
        column: &'a str,
        table: &'a str,
        wanted: &'a str,
    },
    CarriedTypeUnknown {
        column: &'a str,
        type_name: &'a str,
    },
    BindingInUse {
        column: &'a str,
        table: &'a str,
        other: &'a str,
    },
    BlindIndexKeyMissing {
        column: &'a str,
        table: &'a str,
        version: i32,
    },
    RestoredTypeUnusable {
        type_name: &'a str,
    },
    MigrationDuplicate {
        column: &'a str,
        table: &'a str,
        row: &'a str,
        holder: &'a str,
    },
}

impl Error<'_> {
    pub fn report(&self) -> Report {
        match self {
            Error::NoKeyLoaded => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "no akko_crypt key is loaded in this session",
            )
            .hint("Load the root key at connection checkout: SELECT set_config('akko_crypt.key', $1, false), \
             with the key as a bind parameter.",),
            Error::KeyringWriteInParallelQuery { class } => Report::new(
                Sqlstate::INVALID_TRANSACTION_STATE,
                match class {
                    Some(class) => format!("the first seal of data class \"{class}\" writes its key to the keyring, which cannot happen inside a parallel query"),
                    None => "the first seal for a new subject registers it in the keyring, which cannot happen inside a parallel query".to_owned(),
                },
            )
            .hint("Run this statement with SET max_parallel_workers_per_gather = 0, or seal one such value in a statement of its own first."),
            Error::UnknownKeyVersion { class, version } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("key version {version} of data class \"{class}\" does not exist"),
            ),
            Error::UnknownClass { class } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("data class \"{class}\" does not exist"),
            )
            .hint("Add it with SELECT akko_crypt.add_class('name'); akko_crypt.data_class lists the classes."),
            Error::InvalidClassName { error } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid data class name: {error}"),
            ),
            Error::NullArgument { name } => Report::new(
                Sqlstate::NULL_VALUE_NOT_ALLOWED,
                format!("{name} must not be NULL"),
            ),
            Error::BadEnvelope { error } => Report::new(
                Sqlstate::INVALID_BINARY_REPRESENTATION,
                format!("could not open sealed value: {error}"),
            )
            .hint(match error {
                EnvelopeError::UnsupportedFormat(_) => {
                    "The value was sealed by a newer akko_crypt; upgrade the extension to open it."
                }
                _ => "Only values produced by akko_crypt.seal_pii can be opened.",
            }),
            Error::OpenFailed { error } => match error {
                OpenError::AuthenticationFailed => Report::new(
                    Sqlstate::DATA_CORRUPTED,
                    format!("could not open sealed value: {error}"),
                )
                .hint("Check that this session holds the key the value was sealed with, and pass the same context."),
                OpenError::ContextRequired | OpenError::ContextNotExpected => Report::new(
                    Sqlstate::INVALID_PARAMETER_VALUE,
                    format!("could not open sealed value: {error}"),
                ),
            },
            Error::PlaintextNotUtf8 => Report::new(
                Sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "could not open sealed value: its plaintext is not valid UTF-8 JSON text",
            ),
            Error::RandomnessUnavailable => Report::new(
                Sqlstate::SYSTEM_ERROR,
                "could not read random bytes from the operating system for a nonce",
            ),
            Error::OutOfMemory => Report::new(
                Sqlstate::OUT_OF_MEMORY,
                "out of memory in akko_crypt",
            ),
            Error::CatalogQueryFailed { what, error } => Report::new(
                Sqlstate::EXTERNAL_ROUTINE_EXCEPTION,
                format!("akko_crypt could not {what}: {error}"),
            ),
            Error::ValueTooLarge { len } => Report::new(
                Sqlstate::PROGRAM_LIMIT_EXCEEDED,
                format!("sealed value would be {len} bytes, more than PostgreSQL's 1 GB limit for one value"),
            ),
            Error::ExtensionMissing => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the akko_crypt extension is not installed in this database",
            ),
            Error::WrongRoot { session, keyring } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("this session's root key (fingerprint {session}) is not the root that wrapped the keyring (fingerprint {keyring})"),
            )
            .hint("Load the root key whose fingerprint the keyring shows (akko_crypt.status()), or move the keyring to a new root with akko_crypt.rewrap()."),
            Error::NoActiveVersion { class } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("data class \"{class}\" has no active key version"),
            )
            .hint(format!("Create one with SELECT akko_crypt.rotate_key('{class}').")),
            Error::KeyRetired { class, version } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("key {class}/{version} is retired; values sealed under it no longer open"),
            )
            .hint("A retired key is kept in the keyring; re-encrypt values before retiring their key.",),
            Error::KeyDestroyed { class, version } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("key {class}/{version} was destroyed; values sealed under it can never be opened"),
            ),
            Error::SubjectForgotten => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                "the subject this value was sealed for has been forgotten; its values can never be opened",
            ),
            Error::CorruptKeyring { class, version, error } => Report::new(
                Sqlstate::DATA_CORRUPTED,
                format!("keyring entry {class}/{version} is damaged: {error}"),
            ),
            Error::ActiveKeyNotRetirable { class, version } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("key {class}/{version} is the active key of its class and cannot be retired"),
            )
            .hint("Rotate first with akko_crypt.rotate_key(), re-encrypt, then retire the old version."),
            Error::RetireMayLeaveValues { class, version } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("values sealed under key {class}/{version} may remain"),
            )
            .hint("Re-encrypt every column that holds values of this class (akko_crypt.reencrypt), \
                   then retire with force => true. Until columns are registered with akko_crypt, \
                   it cannot count them for you."),
            Error::ActiveKeyNotDestroyable { class, version } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("key {class}/{version} is the active key of its class and cannot be destroyed"),
            )
            .hint("Rotate first with akko_crypt.rotate_key()."),
            Error::KeyNotRetired { class, version } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("key {class}/{version} is not retired"),
            )
            .hint("Retire it first (akko_crypt.retire_key), or pass force => true to destroy a key \
                   that still opens values."),
            Error::TransitRootExists => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "akko_crypt.transit_root already holds a Transit-wrapped root key",
            )
            .hint("Transit itself rotates the key that wraps it: bao write -f transit/keys/<key>/rotate, then bao write transit/rewrap/<key>."),
            Error::InvalidNewKey { error } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid new root key: {error}"),
            ),
            Error::InvalidBatchSize { batch_size } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("batch_size must be at least 1, not {batch_size}"),
            ),
            Error::NoSuchTable { oid } => Report::new(
                Sqlstate::UNDEFINED_TABLE,
                format!("relation with OID {oid} does not exist"),
            ),
            Error::ReencryptNeedsTable { table, relkind } => Report::new(
                Sqlstate::WRONG_OBJECT_TYPE,
                format!("\"{table}\" is not an ordinary table"),
            )
            .hint(if *relkind == "p" {
                "Run akko_crypt.reencrypt on each partition: they hold the rows."
            } else {
                "akko_crypt.reencrypt rewrites the rows of an ordinary table."
            }),
            Error::NoSuchColumn { table, column } => Report::new(
                Sqlstate::UNDEFINED_COLUMN,
                format!("column \"{column}\" of relation \"{table}\" does not exist"),
            ),
            Error::ReencryptNeedsBytea { table, column, column_type } => Report::new(
                Sqlstate::DATATYPE_MISMATCH,
                format!("column {column} of {table} is of type {column_type}, not bytea"),
            )
            .hint("akko_crypt.reencrypt works on bytea columns that hold values sealed by akko_crypt.seal_pii."),
            Error::ReencryptNotPermitted { table, column } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied to read and update column {column} of {table}"),
            ),
            Error::RunInProgress { job, target, pid } => Report::new(
                Sqlstate::OBJECT_IN_USE,
                format!("akko_crypt.{job} is already running on {target}, in backend {pid}"),
            )
            .hint("Wait for it to finish (akko_crypt.batch_runs shows its progress), or stop it with pg_cancel_backend; a new call resumes where it stopped."),
            Error::RunOfAnotherBackend { run, pid } => Report::new(
                Sqlstate::OBJECT_IN_USE,
                format!("run {run} belongs to backend {pid}"),
            )
            .hint("Call the procedure that started it again: it takes over a run whose backend has stopped running it."),
            Error::RunOfAnotherRole { run } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("run {run} was started by another role"),
            )
            .hint("Call the procedure that started it again, as this role: it takes the run over."),
            Error::NoSuchRun { job, run } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("akko_crypt.{job} has no run {run}"),
            ),
            Error::ReencryptContextMissing { table, column, row } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("the value of {table}.{column} in row {row} is bound to a context, and no context was given for it"),
            )
            .hint("Pass context => an SQL expression over the table's columns that gives, for every row, the bytea the value was sealed with; the run resumes where it stopped."),
            Error::ReencryptOpenFailed { table, column, row, error } => Report::new(
                Sqlstate::DATA_CORRUPTED,
                format!("could not re-encrypt the value of {table}.{column} in row {row}: {error}"),
            )
            .hint("If the value is bound to a context, check that the context expression gives the bytes it was sealed with."),
            Error::VaultSettingMissing { name } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{name} is not set"),
            )
            .hint("README.md, \"Keys from Vault or OpenBao\", lists the settings each mode needs."),
            Error::VaultFileUnreadable { name, path, error } => Report::new(
                Sqlstate::CONFIG_FILE_ERROR,
                format!("could not read {name} \"{path}\": {error}"),
            ),
            Error::TransitNotInitialised => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "akko_crypt.vault_transit_key is set, but this database has no Transit-wrapped root key",
            )
            .hint("Create it once with SELECT akko_crypt.vault_init_transit()."),
            Error::VaultThreadFailed { error } => Report::new(
                Sqlstate::SYSTEM_ERROR,
                format!("could not start the thread that talks to Vault: {error}"),
            ),
            // Vault's answers, by what the operator has to do about them. The message carries
            // Vault's own words, never a token or a key.
            Error::VaultFailed { what, error } => {
                let (sqlstate, hint) = match error {
                    VaultError::InsecureAddress => (
                        Sqlstate::INVALID_PARAMETER_VALUE,
                        Some("Use https with akko_crypt.vault_ca_file, or set akko_crypt.vault_allow_http."),
                    ),
                    VaultError::CaFile(_) => (Sqlstate::CONFIG_FILE_ERROR, None),
                    VaultError::Unreachable(_) | VaultError::TimedOut => (
                        Sqlstate::CONNECTION_FAILURE,
                        Some("Check akko_crypt.vault_addr and that Vault is up; sessions that hold a key keep working."),
                    ),
                    VaultError::Status { status: 403, .. } => (
                        Sqlstate::INSUFFICIENT_PRIVILEGE,
                        Some("Check the token or login settings and that the policy allows this path."),
                    ),
                    VaultError::Status { status: 404, .. } => (
                        Sqlstate::UNDEFINED_OBJECT,
                        Some("Check akko_crypt.vault_kv_path (mount/data/path) or akko_crypt.vault_transit_key."),
                    ),
                    VaultError::Status { status: 503, .. } => (
                        Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                        Some("Vault is sealed or in standby: unseal it."),
                    ),
                    VaultError::LoginRefused { .. } => (
                        Sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
                        Some("Check akko_crypt.vault_auth and this role's AppRole or JWT settings against the auth role in Vault (bound claims, audience, secret_id uses and TTL)."),
                    ),
                    VaultError::Status { .. } => (Sqlstate::EXTERNAL_ROUTINE_EXCEPTION, None),
                    VaultError::Malformed(_) => (Sqlstate::INVALID_TEXT_REPRESENTATION, None),
                };
                let report = Report::new(sqlstate, format!("akko_crypt could not {what}: {error}"));
                match hint {
                    Some(hint) => report.hint(hint),
                    None => report,
                }
            }
            Error::VaultKeyMalformed { source } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("the root key from {source} is not 32 bytes in hex or base64"),
            )
            .hint("Store 32 random bytes in hex or base64, as bao kv put secret/akko_crypt root_key=$(openssl rand -base64 32) does."),
            Error::BadBindingId { len } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("a column binding id is 16 bytes, not {len}"),
            ),
            Error::RowContextNeedsSeparateKeys => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                "akko_crypt.row_context takes the primary key columns as separate arguments, not as a VARIADIC array",
            ),
            Error::BadTextEnvelope { column } => Report::new(
                Sqlstate::INVALID_BINARY_REPRESENTATION,
                format!("the value written to protected column \"{column}\" starts with \"$akko:\" but is not an envelope"),
            )
            .hint("Text that starts with \"$akko:\" is taken for an envelope in a text-mode column; such a value cannot be stored in it."),
            Error::BadTextEnvelopeValue => Report::new(
                Sqlstate::INVALID_BINARY_REPRESENTATION,
                "the text after \"$akko:\" is not valid base64",
            ),
            Error::NotATextEnvelope => Report::new(
                Sqlstate::INVALID_BINARY_REPRESENTATION,
                "the value is not a text-mode envelope",
            )
            .hint("A text-mode column holds \"$akko:\" followed by base64; plaintext in it means its trigger did not run."),
            Error::BadJsonbEnvelope => Report::new(
                Sqlstate::INVALID_BINARY_REPRESENTATION,
                "the \"$akko\" value of a jsonb envelope is not valid base64",
            ),
            Error::InvalidProtectedValue { column, type_name, sqlstate } => Report::new(
                *sqlstate,
                format!("the value written to protected column \"{column}\" is not a valid {type_name}"),
            )
            .detail(PLAINTEXT_NOT_SHOWN),
            Error::ProtectedColumnMissing { table, column } => Report::new(
                Sqlstate::UNDEFINED_COLUMN,
                format!("protected column \"{column}\" of table \"{table}\" no longer exists"),
            )
            .hint("A protected column was renamed or dropped: rename it back; if it was dropped, akko_crypt.unprotect on its old name forgets it.",),
            Error::OriginalTypeMissing { table, column, type_oid } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("the type protected column \"{column}\" of table \"{table}\" held (OID {type_oid}) no longer exists"),
            )
            .hint("Its values cannot be written, read as that type or unprotected until the type is restored (from a dump of the database, which keeps its OID only in a binary upgrade); dropping the column, or the table, ends its protection."),
            Error::ProtectedColumnRetyped { table, column } => Report::new(
                Sqlstate::DATATYPE_MISMATCH,
                format!("protected column \"{column}\" of table \"{table}\" changed its type"),
            )
            .hint("A protected column stays bytea (or jsonb in jsonb mode); use akko_crypt.unprotect to change it."),
            Error::RowBindingNeedsPrimaryKey { table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("table \"{table}\" binds values to their row but has no primary key"),
            ),
            Error::NotCalledAsTrigger => Report::new(
                Sqlstate::TRIGGER_PROTOCOL_VIOLATED,
                "akko_crypt.protect_row() must be called as a BEFORE ... FOR EACH ROW trigger",
            ),
            Error::ProtectedPlaintextNotUtf8 { column } => Report::new(
                Sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                format!("the value written to protected column \"{column}\" is neither an akko_crypt envelope nor UTF-8 text"),
            )
            .hint("Write plaintext through the decrypting view, or as UTF-8 text: akko_crypt.utf8_bytes(value::text)."),
            Error::ProtectedTextNotUtf8 { column } => Report::new(
                Sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                format!("the value written to protected column \"{column}\" is not valid text or has no UTF-8 form"),
            ),
            Error::ValueNotUtf8 => Report::new(
                Sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "the value is not valid text or has no UTF-8 form",
            ),
            Error::ViewKeptByDependents { view, dependents, reason } => Report::new(
                Sqlstate::DEPENDENT_OBJECTS_STILL_EXIST,
                format!("the decrypting view {view} cannot be rebuilt: {dependents} depends on it, and its columns changed ({reason})"),
            )
            .hint("Drop what depends on the view, run this again, then create it again; a view over the decrypting view is kept as long as the table's columns keep their names, types and order."),
            Error::ColumnNotMigrating { table, column } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("column \"{column}\" of table \"{table}\" does not migrate online"),
            )
            .hint("akko_crypt.migrating_blind_index serves the unique index of a column while it migrates; look values up with akko_crypt.blind_index."),
            Error::MigratingValueOfOtherType { table, column } => Report::new(
                Sqlstate::DATATYPE_MISMATCH,
                format!("akko_crypt.migrating_blind_index takes a value of the type column \"{column}\" of table \"{table}\" had"),
            ),
            Error::MayNotWriteTable { table } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied: the blind index of a migrating column of table \"{table}\" is computed for its writers only"),
            ),
            Error::NoBlindIndex { table, column } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("column \"{column}\" of table \"{table}\" has no blind index"),
            )
            .hint("Protect it with akko_crypt.protect(..., blind_index => true)."),
            Error::PrivilegeMissing { privilege, class, role } => {
                let (what, grant) = match class {
                    Some(class) => (
                        format!("{privilege} data class \"{class}\""),
                        format!("SELECT akko_crypt.grant_privilege('{privilege}', '<role>', '{class}')"),
                    ),
                    None => (
                        (*privilege).to_owned(),
                        format!("SELECT akko_crypt.grant_privilege('{privilege}', '<role>')"),
                    ),
                };
                Report::new(
                    Sqlstate::INSUFFICIENT_PRIVILEGE,
                    format!("permission denied: role \"{role}\" may not {what}"),
                )
                .hint(format!("An akko_crypt administrator grants it with {grant}."))
            }
            Error::DutiesSeparated { role, wanted, duty } => {
                let what = match *duty {
                    "admin" => "administers keys, and a key administrator opens nothing",
                    "createrole" => "may create roles (CREATEROLE), so one that opens, and a role that could open administers no key",
                    _ => "may open values, and a role that opens administers no key",
                };
                Report::new(
                    Sqlstate::INSUFFICIENT_PRIVILEGE,
                    format!("permission denied: role \"{role}\" {what} (it may not {wanted})"),
                )
                .hint("Separation of duties: keep key administration and opening in roles that are not members of each other, and log in as the one the work needs.")
            }
            Error::DutiesJoined { privilege, grantee, role, duty } => Report::new(
                Sqlstate::INVALID_GRANT_OPERATION,
                format!("{privilege} cannot be granted to role \"{grantee}\": role \"{role}\", which could act as it, holds or could take up {}", if *duty == "open" && *privilege == "admin" { "open (or may create roles)" } else { duty }),
            )
            .hint("Separation of duties: the key administrator and the roles that open values are different roles, neither a member of the other."),
            Error::UnknownPrivilege { name } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("akko_crypt has no privilege \"{name}\""),
            )
            .hint("The privileges are seal, open, protect, unlock and admin."),
            Error::NoSuchRole { oid } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("role with OID {oid} does not exist"),
            ),
            Error::PrivilegeHasNoClass { privilege } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("the privilege \"{privilege}\" is not given per data class"),
            )
            .hint("Only seal and open are granted per class; leave class out for the others."),
            Error::ReservedClass => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                "the data class \"blind_index\" keys blind indexes only; no value is sealed or opened under it",
            )
            .hint("Seal values under identity, financial, operational or a class of your own."),
            Error::ExtensionOutdated { installed, library } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the akko_crypt extension in this database is version {installed}, but its library is version {}", library),
            )
            .hint("Run ALTER EXTENSION akko_crypt UPDATE; until then akko_crypt seals, opens and protects nothing."),
            Error::KeyringClaimNeedsAdmin => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                "the keyring is empty, and its first key, which fixes the root key of this database, is written only by an akko_crypt administrator",
            )
            .hint("An administrator with the root key loaded starts the keyring: SELECT akko_crypt.rotate_key('identity')."),
            Error::PlaintextNotJson => Report::new(
                Sqlstate::INVALID_TEXT_REPRESENTATION,
                "could not open sealed value: its plaintext is not a JSON document",
            ),
            Error::ProtectedValueUnreadable { type_name, sqlstate } => Report::new(
                *sqlstate,
                format!("a value opened from a protected column is not a valid {type_name}"),
            )
            .detail(PLAINTEXT_NOT_SHOWN),
            Error::OpenValueAsDomain { type_name } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("akko_crypt.open_value does not open values as type {type_name}: it is or holds a domain, whose CHECK would run for whoever reads"),
            )
            .hint("Open as the type without the domain and cast, as the decrypting views do (akko_crypt.refresh_views() rebuilds a view made before); a range or composite type over a domain cannot be opened."),
            Error::UnreadableType { column, table, type_name } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column {column} of {table} is of type {type_name}, which holds a domain that no type without it reads (in a range, a composite type, or an array of a domain over an array): it could not be read without running the domain's CHECK for whoever reads"),
            )
            .hint("Protect a column of a type without such a domain; a domain, or an array of one, reads as its base type."),
            Error::OpenValueNeedsType => Report::new(
                Sqlstate::INDETERMINATE_DATATYPE,
                "akko_crypt.open_value needs the type to open as: a typed NULL as its third argument",
            )
            .hint("For example akko_crypt.open_value(col, NULL, NULL::date)."),
            Error::EnvelopeOfOtherClass { column, got, want } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("the envelope written to protected column \"{column}\" is sealed under data class \"{got}\"; the column holds values of \"{want}\""),
            ),
            Error::NameHasNul => Report::new(
                Sqlstate::CHARACTER_NOT_IN_REPERTOIRE,
                "a name or text for a generated statement contains a NUL byte",
            ),
            Error::GeneratedSqlNotOneStatement => Report::new(
                Sqlstate::SYNTAX_ERROR,
                "akko_crypt built a statement that does not parse as exactly one statement; nothing was run",
            ),
            Error::PartitionedTable { table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("{table} is a partitioned table"),
            )
            .hint("akko_crypt protects ordinary tables; a partitioned table is not supported."),
            Error::NotATable { table } => Report::new(
                Sqlstate::WRONG_OBJECT_TYPE,
                format!("{table} is not an ordinary table"),
            ),
            Error::TemporaryTable { table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("{table} is a temporary table"),
            )
            .hint("akko_crypt protects permanent tables; a temporary table lives only in its session.",),
            Error::NotTableOwner { table } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("must be owner of table {table}"),
            ),
            Error::EnvelopesBeforeProtect { column, table, count } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("column {column} of {table} already holds {count} values shaped like akko_crypt envelopes"),
            )
            .hint("protect seals plaintext; it cannot vouch for envelopes it did not seal. Move them out, protect the column, and write them back: the trigger authenticates each one."),
            Error::OwnerMayNotSeal { table, class } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied: the owner of {table}, as whom the migration seals its values, may not seal data class \"{class}\""),
            )
            .hint(format!("akko_crypt runs statements on a table as its owner, so that the owner's triggers never run with the caller's rights: grant the owner seal on \"{class}\" first.")),
            Error::OwnerMayNotOpen { column, table, class } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied: unprotect would give the plaintext of column {column} to the owner of {table}, who may not open data class \"{class}\""),
            )
            .hint(format!("Grant the table's owner open on \"{class}\" first, or read the values through the decrypting view instead.")),
            Error::ContextNotOneExpression => Report::new(
                Sqlstate::SYNTAX_ERROR,
                "reencrypt's context must be one SQL expression over the table's columns",
            )
            .hint("For example akko_crypt.row_context('\\x...'::bytea, id); no FROM, no other target, no other statement."),
            Error::ReencryptPastRowSecurity { table } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied: {table} has row security, and this role is not a member of its owner"),
            )
            .hint("reencrypt reads and writes a table as its owner, which would reach rows the policies hide from this role: re-encrypt it as its owner or a member of it."),
            Error::ReencryptContextNeedsOwner { table } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("permission denied: a context expression for {table} runs as its owner, and this role is not a member of it"),
            )
            .hint("A protected column bound to its rows needs none: reencrypt derives it. Otherwise re-encrypt as the table's owner or a member of it."),
            Error::FailedOverPlaintext { sqlstate, message } => Report::new(*sqlstate, *message).hint(
                "akko_crypt left out this error's detail: the statement wrote plaintext, and the detail can show it.",
            ),
            Error::ColumnAlreadyBytea { column, table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column {column} of {table} is already bytea"),
            )
            .hint("protect converts columns of other types; seal bytea values with akko_crypt.seal_pii yourself."),
            Error::ColumnHasDefault { column, table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column {column} of {table} has a default"),
            )
            .hint("Drop the default first; a default can be set on the decrypting view instead."),
            Error::BlindIndexNeedsBytea => {
                Report::new(Sqlstate::FEATURE_NOT_SUPPORTED, "a blind index needs bytea mode")
            }
            Error::TableInInheritance { table, migrates } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("{table} inherits from, or is inherited by, another table"),
            )
            .hint(if *migrates {
                "akko_crypt protects tables without inheritance: the trigger and the migration would not reach the other tables' rows."
            } else {
                "akko_crypt protects tables without inheritance: the trigger would not reach the other tables' rows."
            }),
            Error::IdentityOrGeneratedColumn { column, table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column {column} of {table} is an identity or generated column"),
            ),
            Error::GeneratedFromColumn { generated, column, table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("generated column {generated} of {table} is computed from column {column}"),
            )
            .hint("A generated column cannot be computed from ciphertext: drop it, or protect it instead."),
            Error::RestoredGeneratedColumn { column, table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column {column} of {table} is, or computes, a generated column"),
            ),
            Error::ColumnUsedBy { column, table, blocker, protecting } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("column {column} of {table} is used by {blocker}"),
            )
            .hint(if *protecting {
                "Indexes and constraints cannot work on ciphertext: drop it first; blind_index => true (with unique_index => true) gives equality lookups and uniqueness."
            } else {
                "Drop it first; it can be created again once the column holds plaintext."
            }),
            Error::NoPrimaryKeyToBind { table } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("{table} has no primary key to bind values to"),
            ),
            Error::JsonbModeNeedsJsonb { column, table, type_name } => Report::new(
                Sqlstate::DATATYPE_MISMATCH,
                format!("column {column} of {table} is {type_name}, not jsonb"),
            )
            .hint("jsonb mode keeps a jsonb column as jsonb; use mode => 'bytea' for other types."),
            Error::BadNormalization { name } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("normalization must be 'none', 'lower' or 'trim_lower', not '{name}'"),
            ),
            Error::BadMode { name } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("mode must be 'bytea' or 'jsonb', not '{name}'"),
            ),
            Error::DerivedColumnExists { column, table } => Report::new(
                Sqlstate::DUPLICATE_COLUMN,
                format!("column {column} already exists in {table}"),
            ),
            Error::AlreadyProtected { column, table } => Report::new(
                Sqlstate::DUPLICATE_OBJECT,
                format!("column {column} of {table} is already protected, with other options"),
            )
            .hint("Run akko_crypt.unprotect first to protect it differently."),
            Error::NotProtected { column, table } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("column {column} of {table} is not protected"),
            ),
            Error::EmptyViewName => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                "the view name must not be empty",
            )
            .hint("Leave view_name out for <table>_decrypted."),
            Error::ViewNameTaken { schema, name } => Report::new(
                Sqlstate::DUPLICATE_TABLE,
                format!("relation {schema}.{name} already exists"),
            )
            .hint("Name the view with create_view(tbl, view_name => ...)."),
            Error::ViewDecryptsOtherTable { schema, name } => Report::new(
                Sqlstate::DUPLICATE_TABLE,
                format!("view {schema}.{name} decrypts another table"),
            ),
            Error::RemovedFunction { name } => Report::new(
                Sqlstate::FEATURE_NOT_SUPPORTED,
                format!("{name} no longer exists in this akko_crypt library"),
            )
            .hint("Run ALTER EXTENSION akko_crypt UPDATE."),
            Error::StoredTypeUnreadable { text } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("akko_crypt.protected_columns names the type \"{text}\", which is not one type name"),
            )
            .hint("Releases before 0.3.0 let table owners write this registry. Correct original_type in that row (or delete the row) and run ALTER EXTENSION akko_crypt UPDATE again."),
            Error::ProtectionIncomplete { table, columns } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                if columns.is_empty() {
                    format!("akko_crypt.protect_row() fires on table \"{table}\", which akko_crypt does not protect")
                } else {
                    format!(
                        "the protection of table \"{table}\" is incomplete: akko_crypt's registry and the table's trigger disagree on column(s) {}",
                        columns.join(", ")
                    )
                },
            )
            .hint("A table restored from a table-level or schema-only dump comes without akko_crypt.protected_columns: its owner runs SELECT akko_crypt.restore_protection('<table>'). Nothing is written to the table until then."),
            Error::NothingToRestore { table } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("{table} has no akko_crypt trigger that carries protected columns"),
            ),
            Error::RegistryDiffersFromTrigger { table } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("akko_crypt's registry already holds protected columns of {table}, other than its trigger carries"),
            )
            .hint("akko_crypt.status() shows them under incomplete_protection; restore the registry from the same full dump as the table."),
            Error::ColumnTypeNotAsProtected { column, table, wanted } => Report::new(
                Sqlstate::DATATYPE_MISMATCH,
                format!("column {column} of {table} is not of type {wanted}, as its protection says"),
            ),
            Error::CarriedTypeUnknown { column, type_name } => Report::new(
                Sqlstate::UNDEFINED_OBJECT,
                format!("protected column \"{column}\" held values of type \"{type_name}\", which does not exist in this database"),
            )
            .hint("A table-level dump does not carry the types its columns use: create the type first."),
            Error::BindingInUse { column, table, other } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("column {column} of {table} has the same row binding as a protected column of table \"{other}\""),
            )
            .hint("A table restored beside the table it was dumped from: restore it into a database of its own, or unprotect the other first."),
            Error::BlindIndexKeyMissing { column, table, version } => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the blind index of column {column} of {table} uses key version {version} of class blind_index, which this database's keyring does not hold"),
            )
            .hint("Restore the table into the database it was dumped from, or one restored from a full dump of it."),
            Error::RestoredTypeUnusable { type_name } => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                format!("a restored protected column held values of type {type_name}, which this role may not use or which is a pseudo-type"),
            ),
            Error::MigrationDuplicate { column, table, row, holder } => Report::new(
                Sqlstate::UNIQUE_VIOLATION,
                format!("migrating column {column} of {table}: the row {row} holds the same value (after normalisation) as the row {holder}, which the unique blind index refuses"),
            )
            .hint("Change one of the two rows, then run protect (or, for an online migration, migrate) again; an online migration goes on where it stopped."),
            Error::KeyStoredOutsideSession => Report::new(
                Sqlstate::CANT_CHANGE_RUNTIME_PARAM,
                "akko_crypt.key can only be set in a session, never stored in the catalog or a configuration file",
            )
            .hint("Have the connection pool run SELECT set_config('akko_crypt.key', $1, false) at checkout."),
            Error::InvalidKey { error } => Report::new(
                Sqlstate::INVALID_PARAMETER_VALUE,
                format!("invalid value for akko_crypt.key: {error}"),
            )
            .hint("Give 32 random bytes as 64 hex digits or as base64, such as openssl rand -base64 32 prints."),
            Error::HandoffSetByUser => Report::new(
                Sqlstate::INSUFFICIENT_PRIVILEGE,
                "akko_crypt.handoff is set by akko_crypt itself, for parallel workers",
            )
            .hint("Set the key with akko_crypt.key."),
            Error::NotPreloaded => Report::new(
                Sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "akko_crypt must be loaded through shared_preload_libraries",
            )
            .hint("Add akko_crypt to shared_preload_libraries in postgresql.conf and restart PostgreSQL."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashSet};
    use std::path::Path;
    use strum::EnumCount;

    /// One of each variant, and one more for each other branch of a variant's report.
    fn every_error<'a>(
        columns: &'a [String],
        io: &'a std::io::Error,
        vault: &'a [VaultError],
    ) -> Vec<Error<'a>> {
        let mut errors = vec![
            Error::NoKeyLoaded,
            Error::KeyringWriteInParallelQuery {
                class: Some("class"),
            },
            Error::UnknownKeyVersion {
                class: "class",
                version: 7,
            },
            Error::UnknownClass { class: "class" },
            Error::InvalidClassName {
                error: ClassNameError::Empty,
            },
            Error::NullArgument { name: "name" },
            Error::BadEnvelope {
                error: EnvelopeError::BadMagic,
            },
            Error::OpenFailed {
                error: OpenError::AuthenticationFailed,
            },
            Error::PlaintextNotUtf8,
            Error::RandomnessUnavailable,
            Error::OutOfMemory,
            Error::CatalogQueryFailed {
                what: "what",
                error: "error".to_owned(),
            },
            Error::ValueTooLarge { len: 7 },
            Error::ExtensionMissing,
            Error::WrongRoot {
                session: "session",
                keyring: "keyring",
            },
            Error::NoActiveVersion { class: "class" },
            Error::KeyRetired {
                class: "class",
                version: 7,
            },
            Error::KeyDestroyed {
                class: "class",
                version: 7,
            },
            Error::SubjectForgotten,
            Error::CorruptKeyring {
                class: "class",
                version: 7,
                error: UnwrapError::NotWrappedByThisRoot,
            },
            Error::ActiveKeyNotRetirable {
                class: "class",
                version: 7,
            },
            Error::RetireMayLeaveValues {
                class: "class",
                version: 7,
            },
            Error::ActiveKeyNotDestroyable {
                class: "class",
                version: 7,
            },
            Error::KeyNotRetired {
                class: "class",
                version: 7,
            },
            Error::TransitRootExists,
            Error::InvalidNewKey {
                error: KeyParseError::Empty,
            },
            Error::InvalidBatchSize { batch_size: 7 },
            Error::NoSuchTable { oid: 7 },
            Error::ReencryptNeedsTable {
                table: "table",
                relkind: "relkind",
            },
            Error::NoSuchColumn {
                table: "table",
                column: "column",
            },
            Error::ReencryptNeedsBytea {
                table: "table",
                column: "column",
                column_type: "column_type",
            },
            Error::ReencryptNotPermitted {
                table: "table",
                column: "column",
            },
            Error::RunInProgress {
                job: "job",
                target: "target",
                pid: 7,
            },
            Error::RunOfAnotherBackend { run: 7, pid: 7 },
            Error::RunOfAnotherRole { run: 7 },
            Error::NoSuchRun { job: "job", run: 7 },
            Error::ReencryptContextMissing {
                table: "table",
                column: "column",
                row: "row",
            },
            Error::ReencryptOpenFailed {
                table: "table",
                column: "column",
                row: "row",
                error: OpenError::AuthenticationFailed,
            },
            Error::VaultSettingMissing { name: "name" },
            Error::VaultFileUnreadable {
                name: "name",
                path: "path",
                error: io,
            },
            Error::TransitNotInitialised,
            Error::VaultThreadFailed { error: io },
            Error::VaultFailed {
                what: "what",
                error: &VaultError::TimedOut,
            },
            Error::VaultKeyMalformed { source: "source" },
            Error::BadBindingId { len: 7 },
            Error::RowContextNeedsSeparateKeys,
            Error::BadTextEnvelope { column: "column" },
            Error::BadTextEnvelopeValue,
            Error::NotATextEnvelope,
            Error::BadJsonbEnvelope,
            Error::InvalidProtectedValue {
                column: "column",
                type_name: "type_name",
                sqlstate: Sqlstate::UNIQUE_VIOLATION,
            },
            Error::ProtectedColumnMissing {
                table: "table",
                column: "column",
            },
            Error::OriginalTypeMissing {
                table: "table",
                column: "column",
                type_oid: 7,
            },
            Error::ProtectedColumnRetyped {
                table: "table",
                column: "column",
            },
            Error::RowBindingNeedsPrimaryKey { table: "table" },
            Error::NotCalledAsTrigger,
            Error::ProtectedPlaintextNotUtf8 { column: "column" },
            Error::ProtectedTextNotUtf8 { column: "column" },
            Error::ValueNotUtf8,
            Error::ViewKeptByDependents {
                view: "view",
                dependents: "dependents",
                reason: "reason",
            },
            Error::ColumnNotMigrating {
                table: "table",
                column: "column",
            },
            Error::MigratingValueOfOtherType {
                table: "table",
                column: "column",
            },
            Error::MayNotWriteTable { table: "table" },
            Error::NoBlindIndex {
                table: "table",
                column: "column",
            },
            Error::PrivilegeMissing {
                privilege: "privilege",
                class: Some("class"),
                role: "role",
            },
            Error::DutiesSeparated {
                role: "role",
                wanted: "wanted",
                duty: "duty",
            },
            Error::DutiesJoined {
                privilege: "privilege",
                grantee: "grantee",
                role: "role",
                duty: "duty",
            },
            Error::UnknownPrivilege { name: "name" },
            Error::NoSuchRole { oid: 7 },
            Error::PrivilegeHasNoClass {
                privilege: "privilege",
            },
            Error::ReservedClass,
            Error::ExtensionOutdated {
                installed: "installed",
                library: "library",
            },
            Error::KeyringClaimNeedsAdmin,
            Error::PlaintextNotJson,
            Error::ProtectedValueUnreadable {
                type_name: "type_name",
                sqlstate: Sqlstate::UNIQUE_VIOLATION,
            },
            Error::OpenValueAsDomain {
                type_name: "type_name",
            },
            Error::UnreadableType {
                column: "column",
                table: "table",
                type_name: "type_name",
            },
            Error::OpenValueNeedsType,
            Error::EnvelopeOfOtherClass {
                column: "column",
                got: "got",
                want: "want",
            },
            Error::NameHasNul,
            Error::GeneratedSqlNotOneStatement,
            Error::PartitionedTable { table: "table" },
            Error::NotATable { table: "table" },
            Error::TemporaryTable { table: "table" },
            Error::NotTableOwner { table: "table" },
            Error::EnvelopesBeforeProtect {
                column: "column",
                table: "table",
                count: 7,
            },
            Error::OwnerMayNotSeal {
                table: "table",
                class: "class",
            },
            Error::OwnerMayNotOpen {
                column: "column",
                table: "table",
                class: "class",
            },
            Error::ContextNotOneExpression,
            Error::ReencryptPastRowSecurity { table: "table" },
            Error::ReencryptContextNeedsOwner { table: "table" },
            Error::FailedOverPlaintext {
                sqlstate: Sqlstate::UNIQUE_VIOLATION,
                message: "message",
            },
            Error::ColumnAlreadyBytea {
                column: "column",
                table: "table",
            },
            Error::ColumnHasDefault {
                column: "column",
                table: "table",
            },
            Error::BlindIndexNeedsBytea,
            Error::TableInInheritance {
                table: "table",
                migrates: true,
            },
            Error::IdentityOrGeneratedColumn {
                column: "column",
                table: "table",
            },
            Error::GeneratedFromColumn {
                generated: "generated",
                column: "column",
                table: "table",
            },
            Error::RestoredGeneratedColumn {
                column: "column",
                table: "table",
            },
            Error::ColumnUsedBy {
                column: "column",
                table: "table",
                blocker: "blocker",
                protecting: true,
            },
            Error::NoPrimaryKeyToBind { table: "table" },
            Error::KeyStoredOutsideSession,
            Error::InvalidKey {
                error: KeyParseError::Empty,
            },
            Error::HandoffSetByUser,
            Error::NotPreloaded,
            Error::JsonbModeNeedsJsonb {
                column: "column",
                table: "table",
                type_name: "type_name",
            },
            Error::BadNormalization { name: "name" },
            Error::BadMode { name: "name" },
            Error::DerivedColumnExists {
                column: "column",
                table: "table",
            },
            Error::AlreadyProtected {
                column: "column",
                table: "table",
            },
            Error::NotProtected {
                column: "column",
                table: "table",
            },
            Error::EmptyViewName,
            Error::ViewNameTaken {
                schema: "schema",
                name: "name",
            },
            Error::ViewDecryptsOtherTable {
                schema: "schema",
                name: "name",
            },
            Error::RemovedFunction { name: "name" },
            Error::StoredTypeUnreadable { text: "text" },
            Error::ProtectionIncomplete {
                table: "table",
                columns,
            },
            Error::NothingToRestore { table: "table" },
            Error::RegistryDiffersFromTrigger { table: "table" },
            Error::ColumnTypeNotAsProtected {
                column: "column",
                table: "table",
                wanted: "wanted",
            },
            Error::CarriedTypeUnknown {
                column: "column",
                type_name: "type_name",
            },
            Error::BindingInUse {
                column: "column",
                table: "table",
                other: "other",
            },
            Error::BlindIndexKeyMissing {
                column: "column",
                table: "table",
                version: 7,
            },
            Error::RestoredTypeUnusable {
                type_name: "type_name",
            },
            Error::MigrationDuplicate {
                column: "column",
                table: "table",
                row: "row",
                holder: "holder",
            },
            Error::BadEnvelope {
                error: EnvelopeError::UnsupportedFormat(9),
            },
            Error::OpenFailed {
                error: OpenError::ContextRequired,
            },
            Error::ReencryptNeedsTable {
                table: "table",
                relkind: "p",
            },
            Error::KeyringWriteInParallelQuery { class: None },
            Error::PrivilegeMissing {
                privilege: "admin",
                class: None,
                role: "role",
            },
            Error::ProtectionIncomplete {
                table: "table",
                columns: &[],
            },
            Error::TableInInheritance {
                table: "table",
                migrates: false,
            },
            Error::ColumnUsedBy {
                column: "column",
                table: "table",
                blocker: "blocker",
                protecting: false,
            },
        ];
        errors.extend(vault.iter().map(|error| Error::VaultFailed {
            what: "what",
            error,
        }));
        errors
    }

    fn vault_errors() -> Vec<VaultError> {
        let messages = vec!["Vault's words".to_owned()];
        [0, 403, 404, 503]
            .into_iter()
            .map(|status| VaultError::Status {
                status,
                messages: messages.clone(),
            })
            .chain([
                VaultError::InsecureAddress,
                VaultError::CaFile("ca".to_owned()),
                VaultError::Unreachable("refused".to_owned()),
                VaultError::LoginRefused {
                    status: 400,
                    messages: messages.clone(),
                },
                VaultError::Malformed("no data"),
            ])
            .collect()
    }

    /// The errors whose SQLSTATE is that of a PostgreSQL error they replace.
    fn passes_sqlstate_through(error: &Error) -> bool {
        matches!(
            error,
            Error::InvalidProtectedValue { .. }
                | Error::ProtectedValueUnreadable { .. }
                | Error::FailedOverPlaintext { .. }
        )
    }

    fn with_every_error(check: impl FnOnce(&[Error])) {
        let columns = vec!["a".to_owned(), "b".to_owned()];
        let io = std::io::Error::other("io");
        let vault = vault_errors();
        check(&every_error(&columns, &io, &vault));
    }

    #[test]
    fn every_variant_has_a_sample() {
        with_every_error(|errors| {
            let variants: HashSet<_> = errors.iter().map(std::mem::discriminant).collect();
            assert_eq!(
                variants.len(),
                Error::COUNT,
                "add the new variant to every_error"
            );
        });
    }

    /// PostgreSQL's style: a message is lower case without a final period; a hint or detail
    /// is a sentence. None is empty or padded.
    #[test]
    fn messages_and_hints_follow_postgresql_style() {
        with_every_error(|errors| {
            let mut faults = Vec::new();
            for error in errors {
                let report = error.report();
                let message = &report.message;
                let first = message.chars().next().unwrap_or('?');
                if message.trim() != message || message.ends_with('.') || first.is_uppercase() {
                    faults.push(format!("message: {message}"));
                }
                for sentence in report.hint.iter().map(String::as_str).chain(report.detail) {
                    if sentence.trim() != sentence
                        || !sentence.ends_with('.')
                        || sentence.contains("  ")
                    {
                        faults.push(format!("hint or detail: {sentence}"));
                    }
                }
            }
            assert!(faults.is_empty(), "{}", faults.join("\n"));
        });
    }

    #[test]
    fn sqlstates_pack_as_postgresql_does() {
        // MAKE_SQLSTATE('0','A','0','0','0'): 'A' - '0' = 17, in the second six bits.
        assert_eq!(Sqlstate::FEATURE_NOT_SUPPORTED.packed(), 17 << 6);
        for &(_, sqlstate) in CONDITIONS {
            assert_eq!(Sqlstate::unpacked(sqlstate.packed()), sqlstate);
        }
    }

    fn repository() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."))
    }

    /// PostgreSQL's own list of SQLSTATEs, errcodes.txt in its share directory.
    fn postgresql_conditions() -> BTreeMap<String, String> {
        let pg_config = std::env::var("PG_CONFIG")
            .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".to_owned());
        let output = std::process::Command::new(&pg_config)
            .arg("--sharedir")
            .output()
            .unwrap_or_else(|e| panic!("{pg_config}: {e}"));
        let share = String::from_utf8(output.stdout).unwrap_or_default();
        let path = Path::new(share.trim()).join("errcodes.txt");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.lines()
            .filter_map(
                |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                    [code, "E", _, name] if code.len() == 5 => {
                        Some((code.to_owned(), name.to_owned()))
                    }
                    _ => None,
                },
            )
            .collect()
    }

    #[test]
    fn conditions_are_postgresqls() {
        let postgresql = postgresql_conditions();
        assert!(
            postgresql.len() > 200,
            "errcodes.txt read: {} codes",
            postgresql.len()
        );
        for &(name, sqlstate) in CONDITIONS {
            assert_eq!(
                postgresql.get(sqlstate.as_str()).map(String::as_str),
                Some(name.to_lowercase().as_str()),
                "{sqlstate:?}"
            );
        }
    }

    /// The rows of the README's SQLSTATE table: code and condition name.
    fn readme_table() -> BTreeMap<String, String> {
        let readme = std::fs::read_to_string(repository().join("README.md")).unwrap_or_default();
        let section = readme
            .split("\n### SQLSTATEs\n")
            .nth(1)
            .and_then(|rest| rest.split("\n#").next())
            .unwrap_or_default();
        section
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line
                    .split('|')
                    .map(|c| c.trim().trim_matches('`'))
                    .collect();
                match cells[..] {
                    ["", code, name, ..] if code.len() == 5 && code != "-----" => {
                        Some((code.to_owned(), name.to_owned()))
                    }
                    _ => None,
                }
            })
            .filter(|(code, _)| {
                code.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
            })
            .collect()
    }

    /// The SQLSTATEs the extension's SQL raises: `ERRCODE = '.....'` in sql/.
    fn sql_sqlstates() -> BTreeSet<String> {
        let mut codes = BTreeSet::new();
        let dir = repository().join("sql");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            // Every RAISE EXCEPTION names its SQLSTATE: without one it would be P0001.
            for statement in text.split("RAISE EXCEPTION").skip(1) {
                let statement = statement.split(';').next().unwrap_or_default();
                let code = statement.split("ERRCODE = '").nth(1).map(|rest| &rest[..5]);
                let code = code.unwrap_or_else(|| {
                    panic!(
                        "{}: RAISE EXCEPTION{statement} names no ERRCODE",
                        entry.path().display()
                    )
                });
                codes.insert(code.to_owned());
            }
        }
        codes
    }

    #[test]
    fn readme_lists_every_sqlstate_raised() {
        let table = readme_table();
        let mut raised = sql_sqlstates();
        assert!(!raised.is_empty(), "sql/ read");
        with_every_error(|errors| {
            raised.extend(
                errors
                    .iter()
                    .filter(|error| !passes_sqlstate_through(error))
                    .map(|error| error.report().sqlstate.as_str().to_owned()),
            );
        });
        let listed: BTreeSet<String> = table.keys().cloned().collect();
        assert_eq!(
            listed, raised,
            "README.md's SQLSTATE table against the codes akko_crypt raises"
        );
        let names: BTreeMap<&str, String> = CONDITIONS
            .iter()
            .map(|(name, sqlstate)| (sqlstate.as_str(), name.to_lowercase()))
            .collect();
        for (code, name) in &table {
            assert_eq!(
                names.get(code.as_str()),
                Some(name),
                "README.md names {code} {name}"
            );
        }
    }
}
