-- The keyring: one random data key per class and version, stored only wrapped under the
-- session's root key, which is in no table. pg_dump carries all three tables, so a dump
-- restored elsewhere opens with the root key and with nothing else. None of them is
-- readable by PUBLIC: akko_crypt reads them as the extension owner on the caller's behalf.
CREATE TABLE keyring (
    class            text NOT NULL REFERENCES data_class (name),
    version          integer NOT NULL CHECK (version > 0),
    state            text NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),
    wrapped_key      bytea CHECK ((state = 'destroyed') = (wrapped_key IS NULL)),
    root_fingerprint text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    state_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (class, version)
);
CREATE UNIQUE INDEX keyring_one_active_version ON keyring (class) WHERE state = 'active';
COMMENT ON TABLE keyring IS 'Wrapped data keys per data class and version; the root key that wraps them is never stored';
SELECT pg_catalog.pg_extension_config_dump('keyring', '');

-- Per-subject salts. The envelope carries only the random id; deleting a row erases that
-- subject's values everywhere they are stored. The subject's name is not kept, only a
-- keyed hash of it to find the row by (docs/FORMAT.md); legacy_name holds the names that
-- releases before 0.3.0 kept, until akko_crypt.hash_subject_names() or the subject's next
-- use replaces them.
CREATE TABLE subjects (
    id             bytea PRIMARY KEY CHECK (length(id) = 16),
    salt           bytea NOT NULL CHECK (length(salt) = 32),
    lookup         bytea UNIQUE CHECK (length(lookup) = 32),
    lookup_version integer CHECK (lookup_version > 0),
    legacy_name    text UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((lookup IS NULL) = (lookup_version IS NULL)),
    CHECK ((lookup IS NULL) <> (legacy_name IS NULL))
);
COMMENT ON TABLE subjects IS 'Per-subject key salts, found by a keyed hash of the subject''s name; akko_crypt.forget_subject deletes one';
SELECT pg_catalog.pg_extension_config_dump('subjects', '');

-- Every key operation, never key material or plaintext. Append-only: nobody but a superuser
-- can get past the trigger, and the identity column shows any gap.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    role         name NOT NULL,
    session_role name NOT NULL,
    operation    text NOT NULL,
    class        text,
    version      integer,
    detail       text,
    outcome      text NOT NULL
);
COMMENT ON TABLE audit_log IS 'Append-only record of akko_crypt key operations';
SELECT pg_catalog.pg_extension_config_dump('audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log_id_seq', '');

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION 'akko_crypt.audit_log is append-only' USING ERRCODE = '42501';
END $$;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

REVOKE ALL ON keyring, subjects, audit_log FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_log_is_append_only() FROM PUBLIC;
