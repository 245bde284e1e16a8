-- akko_crypt 0.2.0 to 0.3.0 (ALTER EXTENSION akko_crypt UPDATE), after make install and a
-- server restart have loaded the 0.3.0 library.
--
-- 0.3.0 closes the paths to plaintext and privilege that 0.2.0 left open: the registries
-- are written by the extension alone, the table functions move into the library (no stored
-- text becomes SQL but a re-encryption's context expression, which only the table's owner
-- gives), every right is an akko_crypt privilege (akko_crypt.privileges), the subjects
-- table keeps a keyed hash of each name instead of the name, and values are sealed in
-- envelope format 2. Values sealed by 0.2.0 open as they are. migrate and reencrypt keep
-- their runs in one table, akko_crypt.batch_runs (reencrypt_runs goes, with any grant made
-- on it by hand).
--
-- What each role could do under 0.2.0, where an EXECUTE grant was the only gate, it keeps:
-- a role that could execute seal_pii may seal every class, one that could execute open_pii
-- or open_text may open every class, one that could execute unlock may unlock, and one that
-- could execute a key function (rotate_key, retire_key, destroy_key, forget_subject, rewrap,
-- status, add_class, vault_init_transit) is an administrator. protect and the view
-- functions were open to every table owner; they now need the protect privilege, granted
-- with akko_crypt.grant_privilege('protect', role), and writing plaintext into a protected
-- table needs the privilege to seal its class.

-- 1. The table functions, from PL/pgSQL to the library; their helpers go.
DROP FUNCTION protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean);
DROP FUNCTION unprotect(regclass, name);
DROP FUNCTION create_view(regclass, name);
DROP FUNCTION refresh_views();
DROP FUNCTION migrate_start(regclass, integer);
DROP FUNCTION migrate_step(regclass, bigint);
DROP FUNCTION migrate_finish(regclass);
DROP FUNCTION rebuild_views(regclass);
DROP FUNCTION build_view(name, name);
DROP FUNCTION set_views_aside(regclass);
DROP FUNCTION drop_plain_column(regclass, protected_columns);
DROP FUNCTION migrate_batch(regclass, bigint, bigint);
DROP FUNCTION install_trigger(regclass);
DROP FUNCTION unsealed_condition(protected_columns);
DROP FUNCTION migration_source(protected_columns);
DROP FUNCTION read_expression(protected_columns, text);
DROP FUNCTION context_expression(protected_columns, text);
DROP FUNCTION owned_table(regclass);
DROP FUNCTION blind_index_key_version();

-- 2. The registries: no row security, no grant; only the extension writes them.
DROP POLICY everyone_reads ON protected_columns;
DROP POLICY table_owner_writes ON protected_columns;
DROP POLICY everyone_reads ON decrypted_views;
DROP POLICY table_owner_writes ON decrypted_views;
ALTER TABLE protected_columns DISABLE ROW LEVEL SECURITY;
ALTER TABLE decrypted_views DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON protected_columns, decrypted_views FROM PUBLIC;

-- original_type was text that build_view pasted into SQL; it becomes a regtype and a
-- modifier, read by the type parser (nothing is executed). A row whose text is not one
-- type name stops the update, naming it.
CREATE FUNCTION upgrade_type_oid(text) RETURNS oid LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'akko_upgrade_type_oid';
CREATE FUNCTION upgrade_type_modifier(text) RETURNS integer LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'akko_upgrade_type_modifier';
ALTER TABLE protected_columns ADD COLUMN original_typmod integer NOT NULL DEFAULT -1;
UPDATE protected_columns SET original_typmod = upgrade_type_modifier(original_type);
ALTER TABLE protected_columns ALTER COLUMN original_type TYPE regtype
    USING upgrade_type_oid(original_type)::regtype;
DROP FUNCTION upgrade_type_oid(text);
DROP FUNCTION upgrade_type_modifier(text);
COMMENT ON COLUMN protected_columns.original_type IS 'The column''s type before protect (with original_typmod); the decrypting view casts back to it';
-- Text mode: the column keeps (or takes) type text, holding $akko: envelopes.
ALTER TABLE protected_columns DROP CONSTRAINT protected_columns_mode_check;
ALTER TABLE protected_columns ADD CONSTRAINT protected_columns_mode_check
    CHECK (mode IN ('bytea', 'text', 'jsonb'));

-- A view's grants are kept as role names (restorable elsewhere), from the view itself; the
-- view akko_crypt built is known by its OID from its next rebuild on.
ALTER TABLE decrypted_views ADD COLUMN view_oid oid;
COMMENT ON COLUMN decrypted_views.view_oid IS 'The view akko_crypt built last: only it (or, after a restore, a view with akko_crypt''s comment and the owner below) is ever dropped';
ALTER TABLE decrypted_views ADD COLUMN view_grants jsonb NOT NULL DEFAULT '[]';
UPDATE decrypted_views d SET view_grants = coalesce((
    SELECT jsonb_agg(jsonb_build_object(
               'grantee', (SELECT r.rolname FROM pg_roles r WHERE r.oid = a.grantee),
               'privilege', a.privilege_type, 'grantable', a.is_grantable))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
    WHERE n.nspname = d.view_schema AND c.relname = d.view_name AND a.grantee <> c.relowner), '[]');
ALTER TABLE decrypted_views DROP COLUMN view_acl;
COMMENT ON COLUMN decrypted_views.view_grants IS 'The view''s grants when it was last set aside: [{"grantee": role name or null for PUBLIC, "privilege": ..., "grantable": ...}]';
COMMENT ON TABLE protected_columns IS
    'Columns that akko_crypt.protect keeps sealed, how, and whether they still migrate (a migration''s progress is in batch_runs)';

-- 3. Subjects: found by a keyed hash of the name. The names 0.2.0 kept stay in
-- legacy_name until akko_crypt.hash_subject_names() (which needs the root key) or the
-- subject's next use replaces them; status() counts them.
ALTER TABLE subjects DROP CONSTRAINT subjects_pkey;
ALTER TABLE subjects DROP CONSTRAINT subjects_id_key;
ALTER TABLE subjects RENAME COLUMN subject TO legacy_name;
ALTER TABLE subjects ALTER COLUMN legacy_name DROP NOT NULL;
ALTER TABLE subjects ADD PRIMARY KEY (id);
ALTER TABLE subjects ADD CONSTRAINT subjects_legacy_name_key UNIQUE (legacy_name);
ALTER TABLE subjects ADD COLUMN lookup bytea CONSTRAINT subjects_lookup_key UNIQUE
                                            CONSTRAINT subjects_lookup_check CHECK (length(lookup) = 32);
ALTER TABLE subjects ADD COLUMN lookup_version integer CONSTRAINT subjects_lookup_version_check CHECK (lookup_version > 0);
ALTER TABLE subjects ADD CONSTRAINT subjects_check CHECK ((lookup IS NULL) = (lookup_version IS NULL));
ALTER TABLE subjects ADD CONSTRAINT subjects_check1 CHECK ((lookup IS NULL) <> (legacy_name IS NULL));
COMMENT ON TABLE subjects IS 'Per-subject key salts, found by a keyed hash of the subject''s name; akko_crypt.forget_subject deletes one';

-- 0.2.0 wrote the name of each forgotten subject into the audit log; it is removed there,
-- and the removal recorded.
ALTER TABLE audit_log DISABLE TRIGGER append_only;
WITH scrubbed AS (UPDATE audit_log SET detail = NULL
                  WHERE operation = 'forget_subject' AND detail IS NOT NULL RETURNING 1)
INSERT INTO audit_log (role, session_role, operation, detail, outcome)
SELECT current_user, session_user, 'update_extension',
       format('0.2.0 to 0.3.0: subject names removed from %s forget_subject entries', count(*)), 'ok'
FROM scrubbed;
ALTER TABLE audit_log ENABLE TRIGGER append_only;

-- 4. blind_index() reads the table's protection, which checks the registry in a
-- subtransaction: no query in parallel mode may run it.
ALTER FUNCTION blind_index(text, regclass, name) PARALLEL UNSAFE;

-- 5. New functions.
CREATE FUNCTION open_value(sealed bytea, context bytea, type_of anyelement)
    RETURNS anyelement LANGUAGE c STABLE PARALLEL SAFE COST 100
    AS 'MODULE_PATHNAME', 'akko_open_value';
COMMENT ON FUNCTION open_value(bytea, bytea, anyelement) IS
    'Opens a value of a protected bytea column as a value of the type of its third argument (NULL::date, say); a value that is not one raises an error that does not show it';
REVOKE ALL ON FUNCTION open_value(bytea, bytea, anyelement) FROM PUBLIC;
CREATE FUNCTION migrating_blind_index(tbl regclass, col name, plaintext anyelement)
    RETURNS bytea LANGUAGE c IMMUTABLE STRICT PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_migrating_blind_index';
COMMENT ON FUNCTION migrating_blind_index(regclass, name, anyelement) IS
    'The blind index of a value still in the plaintext column of a column that migrates online: what its unique index compares with the sealed rows'' <col>_bidx';
REVOKE ALL ON FUNCTION migrating_blind_index(regclass, name, anyelement) FROM PUBLIC;
CREATE FUNCTION envelope_from_text(sealed text)
    RETURNS bytea LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_envelope_from_text';
COMMENT ON FUNCTION envelope_from_text(text) IS
    'The envelope a text-mode column''s value ($akko:<base64>) holds, as bytea; what a decrypting view opens';
CREATE FUNCTION envelope_as_text(envelope bytea)
    RETURNS text LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_envelope_as_text';
COMMENT ON FUNCTION envelope_as_text(bytea) IS
    'An envelope as a text-mode column holds it: $akko:<base64>';
COMMENT ON FUNCTION open_pii(bytea, bytea) IS
    'Opens a value sealed by seal_pii; fails unless this session holds the key, its role may open the class, and the same context is given';

CREATE FUNCTION "hash_subject_names"() RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'hash_subject_names_wrapper';
REVOKE ALL ON FUNCTION hash_subject_names() FROM PUBLIC;
-- lock() only ever drops the caller's own session key.
GRANT EXECUTE ON FUNCTION lock() TO PUBLIC;
-- So that everyone can reach lock(), row_context, utf8_bytes and data_class; every other
-- object refuses PUBLIC.
GRANT USAGE ON SCHEMA akko_crypt TO PUBLIC;

CREATE FUNCTION protect(tbl regclass, col name, class text DEFAULT 'identity', mode text DEFAULT NULL,
                        bind_row boolean DEFAULT false, blind_index boolean DEFAULT false,
                        normalization text DEFAULT 'none', unique_index boolean DEFAULT false,
                        migrate boolean DEFAULT true)
    RETURNS text LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_protect';
COMMENT ON FUNCTION protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean) IS
    'Keeps a column sealed: converts it to bytea (a jsonb column, by default, is sealed in place), migrates its values, keeps a trigger that seals every write';
CREATE FUNCTION unprotect(tbl regclass, col name) RETURNS void
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_unprotect';
COMMENT ON FUNCTION unprotect(regclass, name) IS
    'Restores a protected column to plaintext of its original type (one rewrite under an ACCESS EXCLUSIVE lock)';
CREATE FUNCTION migrate_start(tbl regclass, batch_size integer) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_migrate_start';
COMMENT ON FUNCTION migrate_start(regclass, integer) IS
    'First step of akko_crypt.migrate: starts a run in akko_crypt.batch_runs, or takes over the table''s interrupted one; returns its id';
CREATE FUNCTION migrate_step(run bigint) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_migrate_step';
COMMENT ON FUNCTION migrate_step(bigint) IS 'One batch of akko_crypt.migrate; NULL while the run goes on, the rows it migrated at the end';
CREATE FUNCTION migrate_finish(tbl regclass) RETURNS bigint
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_migrate_finish';
COMMENT ON FUNCTION migrate_finish(regclass) IS 'Last step of akko_crypt.migrate: drops the plaintext columns';
CREATE FUNCTION create_view(tbl regclass, view_name name DEFAULT NULL) RETURNS regclass
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_create_view';
COMMENT ON FUNCTION create_view(regclass, name) IS
    'Creates <table>_decrypted: protected columns opened and cast back to their types, security_invoker, writable; refresh_views() rebuilds it after ALTER TABLE';
CREATE FUNCTION refresh_views() RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_refresh_views';
COMMENT ON FUNCTION refresh_views() IS
    'Rebuilds every decrypting view of a table the caller owns from its table''s current columns, keeping owner and grants; returns how many';
CREATE FUNCTION restore_protection(tbl regclass) RETURNS integer
    LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_restore_protection';
COMMENT ON FUNCTION restore_protection(regclass) IS
    'Registers again the protected columns of a table restored without akko_crypt''s registry (a table-level or schema-only dump), from what its trigger carries; returns how many';
CREATE FUNCTION protection_disagreements(tbl regclass) RETURNS text[]
    LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'akko_protection_disagreements';
COMMENT ON FUNCTION protection_disagreements(regclass) IS
    'For status(): NULL when the registry and the table''s trigger agree on what it protects, else the columns they disagree on';
REVOKE ALL ON FUNCTION protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean),
    unprotect(regclass, name), migrate_start(regclass, integer), migrate_step(bigint),
    migrate_finish(regclass), protect_row(), create_view(regclass, name), refresh_views(),
    restore_protection(regclass), protection_disagreements(regclass) FROM PUBLIC;
REVOKE ALL ON PROCEDURE migrate(regclass, integer, bigint) FROM PUBLIC;

-- 6. migrate and reencrypt share one batch-run engine, whose runs are akko_crypt.batch_runs:
-- the runs of reencrypt_runs move there, and a migration that 0.2.0 left part way (its
-- position was kept in protected_columns) becomes the table's interrupted run, which the
-- next CALL akko_crypt.migrate takes over.
CREATE TABLE batch_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job              text NOT NULL CHECK (job IN ('migrate', 'reencrypt')),
    tbl              regclass NOT NULL,
    col              name,
    context          text,
    batch_size       integer NOT NULL CHECK (batch_size > 0),
    run_by           oid NOT NULL,
    pid              integer NOT NULL,
    backend_start    timestamptz NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    resumed          integer NOT NULL DEFAULT 0,
    pass             integer NOT NULL DEFAULT 1,
    next_block       bigint NOT NULL DEFAULT 0,
    table_blocks     bigint NOT NULL DEFAULT 0,
    blocks_per_batch integer NOT NULL CHECK (blocks_per_batch > 0),
    relfilenode      oid NOT NULL DEFAULT 0,
    sealed           bigint NOT NULL DEFAULT 0,
    pass_stale       bigint NOT NULL DEFAULT 0,
    pass_unreadable  bigint NOT NULL DEFAULT 0,
    pass_not_sealed  bigint NOT NULL DEFAULT 0,
    CHECK ((job = 'reencrypt') = (col IS NOT NULL))
);
CREATE UNIQUE INDEX batch_runs_one_open_run ON batch_runs (job, tbl, col) NULLS NOT DISTINCT
    WHERE finished_at IS NULL;
COMMENT ON TABLE batch_runs IS
    'Progress of akko_crypt.migrate and akko_crypt.reencrypt runs, committed with every batch; an unfinished run resumes where it stopped';
COMMENT ON COLUMN batch_runs.col IS 'The column a reencrypt run reseals; NULL for migrate, which seals every migrating column of the table';
COMMENT ON COLUMN batch_runs.run_by IS 'The role that started or took over the run: only it drives the run';
COMMENT ON COLUMN batch_runs.relfilenode IS
    'The table''s storage the run''s block positions refer to: when a rewrite (VACUUM FULL, CLUSTER) or a new table under a reused OID replaces it, the pass walks again from block 0';
COMMENT ON COLUMN batch_runs.sealed IS 'Rows migrated, or values resealed, so far';
COMMENT ON COLUMN batch_runs.pass_stale IS
    'Values under an older key version that could be resealed, found so far in this pass; the run ends after a pass that found none';
COMMENT ON COLUMN batch_runs.pass_unreadable IS
    'Values found so far in this pass whose key version is retired or destroyed, or whose subject was forgotten: they cannot be resealed';
COMMENT ON COLUMN batch_runs.pass_not_sealed IS 'Values found so far in this pass that are not akko_crypt envelopes';
REVOKE ALL ON batch_runs FROM PUBLIC;
-- Under their ids (the audit log names runs by them), each unfinished one with no backend,
-- so that the next call takes it over and checks again what it may do.
INSERT INTO batch_runs (id, job, tbl, col, context, batch_size, run_by, pid, backend_start, started_at,
                        updated_at, finished_at, resumed, pass, next_block, table_blocks,
                        blocks_per_batch, relfilenode, sealed, pass_stale, pass_unreadable, pass_not_sealed)
OVERRIDING SYSTEM VALUE
SELECT id, 'reencrypt', tbl, col, context, batch_size, current_user::regrole::oid,
       CASE WHEN finished_at IS NULL THEN 0 ELSE pid END, backend_start, started_at,
       updated_at, finished_at, resumed, pass, next_block, table_blocks,
       blocks_per_batch, coalesce(pg_relation_filenode(tbl), 0), resealed, pass_stale, pass_unreadable, pass_not_sealed
FROM reencrypt_runs;
SELECT setval(pg_get_serial_sequence('akko_crypt.batch_runs', 'id'), max(id)) FROM batch_runs HAVING max(id) IS NOT NULL;
INSERT INTO batch_runs (job, tbl, batch_size, run_by, pid, backend_start, next_block, table_blocks,
                        blocks_per_batch, relfilenode, sealed)
SELECT 'migrate', p.tbl, 10000, current_user::regrole::oid, 0, now(), min(p.next_block), max(p.table_blocks),
       1, pg_relation_filenode(p.tbl), max(p.migrated)
FROM protected_columns p
WHERE p.state = 'migrating' AND EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl)
GROUP BY p.tbl HAVING min(p.next_block) > 0;
DROP TABLE reencrypt_runs;
ALTER TABLE protected_columns DROP COLUMN next_block, DROP COLUMN table_blocks;
CREATE OR REPLACE PROCEDURE migrate(tbl regclass, batch_size integer DEFAULT 10000, INOUT migrated bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    run bigint := akko_crypt.migrate_start(tbl, batch_size);
BEGIN
    LOOP
        COMMIT;
        EXIT WHEN akko_crypt.migrate_step(run) IS NOT NULL;
    END LOOP;
    migrated := akko_crypt.migrate_finish(tbl);
END $$;

-- 7. Privileges.
CREATE TABLE privileges (
    grantee    regrole NOT NULL,
    privilege  text NOT NULL CHECK (privilege IN ('seal', 'open', 'protect', 'unlock', 'admin')),
    class      text REFERENCES data_class (name) ON DELETE CASCADE,
    granted_by regrole NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (grantee, privilege, class),
    CHECK (class IS NULL OR privilege IN ('seal', 'open'))
);
COMMENT ON TABLE privileges IS 'akko_crypt privileges of each role; change them with akko_crypt.grant_privilege and akko_crypt.revoke_privilege';
SELECT pg_catalog.pg_extension_config_dump('privileges', '');
REVOKE ALL ON privileges FROM PUBLIC;
CREATE FUNCTION grant_privilege(privilege text, grantee regrole, class text DEFAULT NULL)
    RETURNS boolean LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_grant_privilege';
COMMENT ON FUNCTION grant_privilege(text, regrole, text) IS
    'Grants an akko_crypt privilege (seal, open, protect, unlock, admin) to a role, for one data class or (NULL) all; returns false if it was held already';
CREATE FUNCTION revoke_privilege(privilege text, grantee regrole, class text DEFAULT NULL)
    RETURNS boolean LANGUAGE c VOLATILE PARALLEL UNSAFE
    AS 'MODULE_PATHNAME', 'akko_revoke_privilege';
COMMENT ON FUNCTION revoke_privilege(text, regrole, text) IS
    'Revokes an akko_crypt privilege granted with grant_privilege; returns false if the role did not hold it';
CREATE FUNCTION privileges_changed() RETURNS trigger LANGUAGE c
    AS 'MODULE_PATHNAME', 'akko_privileges_changed';
CREATE TRIGGER grants_follow AFTER INSERT OR UPDATE OR DELETE ON privileges
    FOR EACH ROW EXECUTE FUNCTION privileges_changed();
REVOKE ALL ON FUNCTION grant_privilege(text, regrole, text), revoke_privilege(text, regrole, text),
    privileges_changed() FROM PUBLIC;

-- What 0.2.0's EXECUTE grants allowed, as privileges; the trigger grants each role the
-- functions of its privileges.
INSERT INTO privileges (grantee, privilege, granted_by)
SELECT DISTINCT a.grantee::regrole, m.privilege, current_user::regrole
FROM pg_proc p, aclexplode(p.proacl) a,
     (VALUES ('seal_pii', 'seal'), ('open_pii', 'open'), ('open_text', 'open'), ('unlock', 'unlock'),
             ('rotate_key', 'admin'), ('retire_key', 'admin'), ('destroy_key', 'admin'),
             ('forget_subject', 'admin'), ('rewrap', 'admin'), ('status', 'admin'),
             ('add_class', 'admin'), ('vault_init_transit', 'admin')) AS m(proname, privilege)
WHERE p.pronamespace = 'akko_crypt'::regnamespace AND p.proname = m.proname
  AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
ON CONFLICT DO NOTHING;

-- 8. Each protected table's trigger carries what it protects (so that a dump of the table
-- alone carries it, and the trigger refuses to write when the registry does not agree):
-- 0.2.0's triggers, which carry nothing, are made again.
CREATE FUNCTION upgrade_install_trigger(regclass) RETURNS void LANGUAGE c STRICT
    AS 'MODULE_PATHNAME', 'akko_upgrade_install_trigger';
-- (0.2.0 kept the rows of dropped tables: they are left for forget_dropped_tables.)
SELECT upgrade_install_trigger(tbl)
FROM (SELECT DISTINCT p.tbl FROM protected_columns p WHERE EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl)) t;
DROP FUNCTION upgrade_install_trigger(regclass);
