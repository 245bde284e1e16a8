-- Privileges: what a role without akko_crypt privileges can reach; the privilege model (seal
-- and open per data class, protect, unlock, admin) as grant_privilege gives it and every path
-- checks it; which code runs with a pinned search_path; and that functions and operators
-- planted in a schema ahead of pg_catalog on the caller's search_path never run inside the
-- extension.
SELECT set_config('akko_crypt.key', '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', false) AS root;

-- 1. A role that may use the schema and nothing more. The key is the session's, so it is
-- still loaded after SET ROLE: only privileges stand between this role and the keys.
CREATE ROLE akko_nobody;
GRANT USAGE ON SCHEMA akko_crypt, akko_test TO akko_nobody;
-- What it may execute: lock(), which drops its own session's key, and functions of
-- their arguments alone, which the decrypting views call.
SELECT p.oid::regprocedure::text AS executable_without_grants
FROM pg_proc p
WHERE p.pronamespace = 'akko_crypt'::regnamespace AND has_function_privilege('akko_nobody', p.oid, 'EXECUTE')
ORDER BY 1;
CREATE TABLE priv_owned (id int PRIMARY KEY, v text);
INSERT INTO priv_owned VALUES (1, 'secret');
SELECT akko_crypt.protect('priv_owned', 'v');
SELECT akko_crypt.create_view('priv_owned');
GRANT SELECT, INSERT ON priv_owned, priv_owned_decrypted TO akko_nobody;
SET ROLE akko_nobody;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.open_text(v) FROM priv_owned$$);
SELECT akko_test.error_of($$SELECT v FROM priv_owned_decrypted$$);
SELECT akko_test.error_of($$SELECT akko_crypt.status()$$);
SELECT akko_test.error_of($$SELECT akko_crypt.rotate_key('identity')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.destroy_key('identity', 1)$$);
SELECT akko_test.error_of($$SELECT akko_crypt.forget_subject('someone')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.add_class('mine')$$);
SELECT akko_test.error_of($$CALL akko_crypt.reencrypt('priv_owned', 'v')$$);
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.keyring$$);
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.subjects$$);
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.audit_log$$);
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.transit_root$$);
-- Protecting, and writing the registries, is not for it either: nobody but the extension
-- writes them, and nobody may lock them against the extension's own reads.
SELECT akko_test.error_of($$SELECT akko_crypt.protect('priv_owned', 'id')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.unprotect('priv_owned', 'v')$$);
SELECT akko_test.error_of($$UPDATE akko_crypt.protected_columns SET class = 'financial' WHERE tbl = 'priv_owned'::regclass$$);
SELECT akko_test.error_of($$INSERT INTO akko_crypt.protected_columns (tbl, col, class, mode, original_type, binding_id, state)
                            VALUES ('priv_owned', 'id', 'identity', 'bytea', 'int', '\x00000000000000000000000000000000', 'protected')$$);
SELECT akko_test.error_of($$DELETE FROM akko_crypt.decrypted_views$$);
SELECT akko_test.error_of($$LOCK TABLE akko_crypt.protected_columns IN ACCESS EXCLUSIVE MODE$$);
SELECT akko_test.error_of($$LOCK TABLE akko_crypt.decrypted_views IN ACCESS EXCLUSIVE MODE$$);
SELECT akko_test.error_of($$SELECT * FROM akko_crypt.privileges$$);
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('open', 'akko_nobody')$$);
-- Plaintext it writes without the privilege to seal is refused, never stored in clear.
SELECT akko_test.error_of($$INSERT INTO priv_owned VALUES (2, 'written by nobody')$$);
RESET ROLE;
SELECT akko_crypt.grant_privilege('seal', 'akko_nobody', 'identity') AS granted;
SET ROLE akko_nobody;
INSERT INTO priv_owned VALUES (2, 'written by nobody');
RESET ROLE;
SELECT akko_crypt.revoke_privilege('seal', 'akko_nobody', 'identity') AS revoked;
SELECT class AS class_unchanged FROM akko_crypt.protected_columns WHERE tbl = 'priv_owned'::regclass;
SELECT id, v FROM priv_owned_decrypted ORDER BY id;
SELECT count(*) AS clear_text_rows FROM priv_owned WHERE v = convert_to('written by nobody', 'UTF8');

-- 2. The model. Privileges follow role membership, opening is granted per data class, and
-- grant_privilege grants the functions each privilege uses (revoke_privilege takes them back).
CREATE ROLE akko_reader_team;
CREATE ROLE akko_reader IN ROLE akko_reader_team;
CREATE ROLE akko_keeper;
GRANT USAGE ON SCHEMA akko_test TO akko_reader, akko_keeper;
CREATE TABLE priv_classes (id int PRIMARY KEY, who bytea, money bytea);
INSERT INTO priv_classes VALUES (1, akko_crypt.seal_pii('{"name": "Ada"}'), akko_crypt.seal_pii('{"iban": "GB00"}', 'financial'));
GRANT SELECT ON priv_classes TO akko_reader;
SELECT akko_crypt.grant_privilege('open', 'akko_reader_team', 'identity') AS granted,
       akko_crypt.grant_privilege('open', 'akko_reader_team', 'identity') AS granted_again;
SELECT p.oid::regprocedure::text AS reader_may_execute FROM pg_proc p
WHERE p.pronamespace = 'akko_crypt'::regnamespace AND has_function_privilege('akko_reader', p.oid, 'EXECUTE')
ORDER BY 1;
SET ROLE akko_reader;
SELECT akko_crypt.open_pii(who) ->> 'name' AS reader_opens_identity FROM priv_classes;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(money) FROM priv_classes$$) AS reader_opens_financial;
SELECT akko_test.error_of($$SELECT akko_crypt.seal_pii('{}')$$) AS reader_seals;
SELECT akko_test.error_of($$SELECT akko_crypt.rotate_key('identity')$$) AS reader_rotates;
RESET ROLE;
SELECT akko_crypt.grant_privilege('open', 'akko_reader', 'financial') AS granted;
SET ROLE akko_reader;
SELECT akko_crypt.open_pii(money) ->> 'iban' AS reader_opens_financial_now FROM priv_classes;
RESET ROLE;
SELECT p ->> 'role' AS role, p ->> 'privilege' AS privilege, p ->> 'class' AS class, p -> 'members' AS members
FROM jsonb_array_elements(akko_crypt.status() -> 'privileges') AS p ORDER BY 1, 2, 3;
-- Membership is what counts: out of the team, the reader opens identity no more.
REVOKE akko_reader_team FROM akko_reader;
SET ROLE akko_reader;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(who) FROM priv_classes$$) AS reader_left_team;
RESET ROLE;
-- The key administrator administers keys and privileges, and opens nothing.
SELECT akko_crypt.grant_privilege('admin', 'akko_keeper') AS granted;
GRANT SELECT ON priv_classes TO akko_keeper;
SET ROLE akko_keeper;
SELECT akko_crypt.grant_privilege('open', 'akko_reader', 'identity') AS keeper_grants;
SELECT akko_test.error_of($$SELECT akko_crypt.open_pii(who) FROM priv_classes$$) AS keeper_opens;
SELECT jsonb_array_length(akko_crypt.status() -> 'privileges') > 0 AS keeper_reads_status;
SELECT akko_crypt.hash_subject_names() AS keeper_hashes_legacy_subject_names;
RESET ROLE;
-- What grant_privilege refuses.
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('decrypt', 'akko_reader')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('protect', 'akko_reader', 'identity')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('open', 'akko_reader', 'no_such_class')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('open', 'akko_reader', 'blind_index')$$);
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('open', 4294967000::oid::regrole)$$);
SELECT akko_test.error_of($$SELECT akko_crypt.grant_privilege('open', 'no_such_role')$$);
-- Every change is in the audit log, by the role that made it.
SELECT operation, role, class, detail FROM akko_crypt.audit_log
WHERE operation IN ('grant_privilege', 'revoke_privilege') ORDER BY id;
SELECT akko_crypt.revoke_privilege('open', 'akko_reader_team', 'identity') AND akko_crypt.revoke_privilege('open', 'akko_reader', 'financial')
       AND akko_crypt.revoke_privilege('open', 'akko_reader', 'identity') AND akko_crypt.revoke_privilege('admin', 'akko_keeper') AS revoked;
SELECT count(*) AS executable_after_revoke FROM pg_proc p
WHERE p.pronamespace = 'akko_crypt'::regnamespace AND p.proname NOT IN ('lock', 'row_context', 'utf8_bytes', 'envelope_from_text', 'envelope_as_text')
  AND (has_function_privilege('akko_reader', p.oid, 'EXECUTE') OR has_function_privilege('akko_keeper', p.oid, 'EXECUTE'));
-- Every function a privilege's holder may call comes with some privilege: with each of
-- them held, by two roles (duties are separate), only the internal ones are left out.
SELECT akko_crypt.grant_privilege(p, 'akko_reader') FROM unnest(array['seal', 'open', 'protect', 'unlock']) AS p;
SELECT akko_crypt.grant_privilege('admin', 'akko_keeper');
SELECT p.oid::regprocedure::text AS no_privilege_grants FROM pg_proc p
WHERE p.pronamespace = 'akko_crypt'::regnamespace
  AND NOT has_function_privilege('akko_reader', p.oid, 'EXECUTE') AND NOT has_function_privilege('akko_keeper', p.oid, 'EXECUTE')
ORDER BY 1;
SELECT akko_crypt.revoke_privilege(p, 'akko_reader') FROM unnest(array['seal', 'open', 'protect', 'unlock']) AS p;
SELECT akko_crypt.revoke_privilege('admin', 'akko_keeper');
REVOKE ALL ON priv_classes FROM akko_reader, akko_keeper;
REVOKE USAGE ON SCHEMA akko_test FROM akko_reader, akko_keeper;
DROP ROLE akko_reader, akko_reader_team, akko_keeper;

-- 3. Code that runs SQL pins its search_path; the one exception is a procedure that commits
-- (PostgreSQL forbids SET there), whose body calls only schema-qualified functions.
SELECT count(*) AS security_definer_functions FROM pg_proc
WHERE pronamespace = 'akko_crypt'::regnamespace AND prosecdef;
SELECT p.oid::regprocedure::text AS sql_code_without_pinned_search_path
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'akko_crypt'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
  AND NOT coalesce(p.proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp', 'search_path=pg_catalog'], false)
ORDER BY 1;

-- 4. Planted look-alikes ahead of pg_catalog: each records that it ran.
CREATE SCHEMA evil;
CREATE TABLE evil.calls (what text);
GRANT ALL ON SCHEMA evil TO PUBLIC;
GRANT ALL ON evil.calls TO PUBLIC;
CREATE FUNCTION evil.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('format') RETURNING 'SELECT 1' $$;
CREATE FUNCTION evil.quote_ident(text) RETURNS text LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('quote_ident') RETURNING $1 $$;
CREATE FUNCTION evil.convert_to(text, name) RETURNS bytea LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('convert_to') RETURNING '\x'::bytea $$;
CREATE FUNCTION evil.length(bytea) RETURNS int LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('length') RETURNING 16 $$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('now') RETURNING 'epoch'::timestamptz $$;
CREATE FUNCTION evil.jsonb_build_object(VARIADIC text[]) RETURNS jsonb LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('jsonb_build_object') RETURNING '{}'::jsonb $$;
CREATE FUNCTION evil.name_eq(name, name) RETURNS boolean LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('= on name') RETURNING $1::text = $2::text $$;
CREATE OPERATOR evil.= (LEFTARG = name, RIGHTARG = name, FUNCTION = evil.name_eq);
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE sql
    AS $$ INSERT INTO evil.calls VALUES ('= on text') RETURNING $1 OPERATOR(pg_catalog.=) $2 $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
CREATE TABLE evil_target (id int PRIMARY KEY, email text, doc jsonb, sealed bytea);
INSERT INTO evil_target VALUES (1, 'a@example.com', '{"a": 1}', akko_crypt.seal_pii('{"k": 1}'));
SET search_path = evil, pg_catalog, public;
-- The plants do catch unqualified names: the control below runs two of them.
SELECT 'x'::text = 'x'::text AS planted_operator, quote_ident('x') AS planted_function;
SELECT count(*) AS control_calls FROM evil.calls;
TRUNCATE evil.calls;
SELECT akko_crypt.protect('evil_target', 'email', blind_index => true, migrate => false);
CALL akko_crypt.migrate('evil_target');
SELECT akko_crypt.protect('evil_target', 'doc', mode => 'jsonb', bind_row => true);
SELECT akko_crypt.create_view('evil_target');
INSERT INTO evil_target_decrypted (id, email, doc) VALUES (2, 'b@example.com', '{"b": 2}');
UPDATE evil_target_decrypted SET email = 'c@example.com' WHERE id = 2;
SELECT id, email, doc FROM evil_target_decrypted ORDER BY id;
SELECT id FROM evil_target WHERE email_bidx = akko_crypt.blind_index('c@example.com', 'evil_target', 'email');
SELECT akko_crypt.rotate_key('identity') > 0 AS rotated;
CALL akko_crypt.reencrypt('evil_target', 'sealed');
SELECT akko_crypt.status() ? 'classes' AS status_read;
SELECT akko_crypt.refresh_views();
SELECT akko_crypt.unprotect('evil_target', 'doc');
RESET search_path;
SELECT count(*) AS planted_calls FROM evil.calls;
