# Finding 1: registry rows became SQL that a superuser ran. The owner of an ordinary table,
# even one allowed to protect it, cannot write, lock or plant anything in the registries;
# whatever a registry holds (a superuser's restore of a tampered dump, say) reaches generated
# SQL only quoted or through the catalog, and never makes akko_crypt drop or replace another
# owner's object.
db=atk_registry
new_db $db >/dev/null
keyed_as postgres $db -c "CREATE ROLE mallory LOGIN" -c "CREATE ROLE victim LOGIN" \
      -c "CREATE SCHEMA m AUTHORIZATION mallory" -c "CREATE SCHEMA v AUTHORIZATION victim" \
      -c "GRANT CREATE ON SCHEMA public TO mallory, victim" \
      -c "SELECT akko_crypt.grant_privilege(p, r) FROM unnest('{protect,seal,open}'::text[]) p, unnest('{mallory,victim}'::regrole[]) r" \
      -c "SELECT akko_crypt.rotate_key('identity')" $db >/dev/null
keyed_as mallory $db -c "CREATE TABLE m.t (id int PRIMARY KEY, c text)" -c "INSERT INTO m.t VALUES (1, 'mallory''s own')" \
    -c "SELECT akko_crypt.protect('m.t', 'c')" -c "SELECT akko_crypt.create_view('m.t')" >/dev/null
keyed_as victim $db -c "CREATE TABLE v.t (id int PRIMARY KEY, c text)" -c "INSERT INTO v.t VALUES (1, 'victim''s secret')" \
    -c "SELECT akko_crypt.protect('v.t', 'c')" -c "SELECT akko_crypt.create_view('v.t')" \
    -c "CREATE TABLE public.vt (id int PRIMARY KEY, c text)" -c "SELECT akko_crypt.protect('public.vt', 'c')" \
    -c "SELECT akko_crypt.create_view('public.vt')" -c "GRANT SELECT ON public.vt TO mallory" >/dev/null
check "control: mallory and victim each protect a table of their own, with a view" \
    [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.decrypted_views" $db)" = 3 ]

while IFS= read -r statement; do
    out=$(run_as mallory $db -c "$statement")
    check "a table owner who may protect: $statement -> 42501" refused 42501 "$out"
done <<'SQL'
UPDATE akko_crypt.protected_columns SET class = 'financial'
INSERT INTO akko_crypt.protected_columns (tbl, col, class, mode, original_type, binding_id, state) VALUES ('m.t', 'id', 'identity', 'bytea', 'int', '\x00000000000000000000000000000000', 'protected')
DELETE FROM akko_crypt.protected_columns
TRUNCATE akko_crypt.protected_columns
INSERT INTO akko_crypt.decrypted_views (view_schema, view_name, tbl) VALUES ('v', 't_decrypted', 'm.t')
UPDATE akko_crypt.decrypted_views SET view_grants = '[{"grantee": null, "privilege": "SELECT", "grantable": false}]'
COPY akko_crypt.decrypted_views FROM PROGRAM 'true'
BEGIN; LOCK TABLE akko_crypt.protected_columns IN ACCESS EXCLUSIVE MODE; COMMIT
BEGIN; LOCK TABLE akko_crypt.decrypted_views IN ACCESS EXCLUSIVE MODE; COMMIT
BEGIN; LOCK TABLE akko_crypt.protected_columns IN SHARE MODE; COMMIT
SELECT akko_crypt.protect('v.t', 'id')
SELECT akko_crypt.unprotect('v.t', 'c')
SELECT akko_crypt.create_view('v.t', 'mine')
SQL
helpers=$(psql_ -c "SELECT count(*) FROM pg_proc WHERE pronamespace = 'akko_crypt'::regnamespace AND proname IN
    ('build_view', 'set_views_aside', 'rebuild_views', 'read_expression', 'context_expression', 'install_trigger',
     'migrate_batch', 'drop_plain_column', 'owned_table', 'unsealed_condition', 'migration_source', 'blind_index_key_version')" $db)
check "no SQL-level helper remains for a caller to feed its own arguments to (found $helpers)" [ "$helpers" = 0 ]

# A superuser restores a tampered registry: statements in every name and grant field. The
# type is a regtype, so text cannot even be stored there.
planted_type=$(run_as postgres $db -c "UPDATE akko_crypt.protected_columns SET original_type = 'text AS c FROM m.t; ALTER ROLE mallory SUPERUSER; --'")
check "a statement cannot be stored as a protected column's type (the type parser refuses it)" \
    grep -qE "ERROR:  (42601|42704|22P02):" <<<"$planted_type"
psql_ -c "UPDATE akko_crypt.decrypted_views SET view_owner = 'x\"; ALTER ROLE mallory SUPERUSER; --',
                 view_grants = '[{\"grantee\": \"mallory\\\"; ALTER ROLE mallory SUPERUSER; --\", \"privilege\": \"SELECT\", \"grantable\": false},
                                 {\"grantee\": null, \"privilege\": \"SELECT ON m.t TO mallory; ALTER ROLE mallory SUPERUSER; --\", \"grantable\": false}]'
          WHERE view_schema = 'm'" \
      -c "UPDATE akko_crypt.decrypted_views SET tbl = 'm.t' WHERE view_schema = 'v'" $db >/dev/null
# The victim's view is dropped and mallory puts one of her own at its name in public.
keyed_as victim $db -c "DROP VIEW public.vt_decrypted" >/dev/null
run_as mallory $db -c "CREATE VIEW public.vt_decrypted AS SELECT id, 'mallory''s view' AS c FROM public.vt" >/dev/null
ran=$(keyed_as postgres $db -c "SELECT akko_crypt.refresh_views()")
check "control: refresh_views as a superuser met the planted rows, and warned ($(grep -c WARNING <<<"$ran") warnings)" \
    grep -q "WARNING" <<<"$ran"
check "the victim's view in v is the victim's still, over the victim's table" \
    [ "$(psql_ -c "SELECT pg_get_userbyid(relowner) || ' ' || (pg_get_viewdef(oid) LIKE '%v.t%') FROM pg_class WHERE oid = 'v.t_decrypted'::regclass" $db)" = "victim true" ]
check "mallory's view at the victim's registered name is left as it is" \
    bash -c '[ "$1" = mallory ] && grep -q "is not the decrypting view of public.vt that akko_crypt made" <<<"$2"' _ \
    "$(psql_ -c "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'public.vt_decrypted'::regclass" $db)" "$ran"
check "no planted grant was made on mallory's rebuilt view" \
    [ "$(psql_ -c "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = 'm.t_decrypted'::regclass AND a.grantee <> c.relowner" $db)" = 0 ]
# A plaintext column name that is a statement: every helper that names it quotes it.
keyed_as mallory $db -c "CREATE TABLE m.t2 (id int PRIMARY KEY, c text)" -c "SELECT akko_crypt.protect('m.t2', 'c')" \
    -c "SELECT akko_crypt.create_view('m.t2')" >/dev/null
psql_ -c "UPDATE akko_crypt.protected_columns SET plain_col = 'c\"; ALTER ROLE mallory SUPERUSER; --', state = 'migrating'
          WHERE tbl = 'm.t2'::regclass" $db >/dev/null
ran=$(keyed_as postgres $db -c "CALL akko_crypt.migrate('m.t2')" -c "SELECT akko_crypt.unprotect('m.t2', 'c')" \
          -c "SELECT akko_crypt.protect('m.t2', 'c')" -c "SELECT akko_crypt.create_view('m.t2')" -c "SELECT akko_crypt.refresh_views()")
check "migrate, unprotect, protect, create_view as a superuser each stop: the tampered row disagrees with what the trigger carries (55000); refresh_views meets the quoted name, warns and goes on" \
    bash -c '[ "$(grep -cE "ERROR:  55000: the protection of table \"t2\" is incomplete" <<<"$1")" -eq 4 ] &&
             grep -qE "WARNING:  01000: akko_crypt: the views of table t2 were not rebuilt: column .*c\"; ALTER ROLE mallory SUPERUSER; --\"? does not exist" <<<"$1"' _ "$ran"
check "after all of it, mallory is no superuser" \
    [ "$(psql_ -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'" $db)" = f ]
