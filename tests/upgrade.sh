#!/usr/bin/env bash
# The upgrade path. A database made by the 0.2.0 release (tests/fixtures/akko_crypt-0.2.0.sql:
# values of every class, a context and two subjects, one forgotten; a protected table in
# bytea mode with row binding, a unique blind index, two classes and a column still
# migrating; an event table in jsonb mode; views with a grant; roles whose EXECUTE grants
# were 0.2.0's only gate) is restored under this library at version 0.2.0 and updated with
# ALTER EXTENSION akko_crypt UPDATE: every value opens with the same root, the views, trigger,
# blind index and migration work, the forgotten subject stays forgotten, what each role could
# do it still can (as akko_crypt privileges), and the updated schema matches a fresh install
# object for object. A database at 0.1.0 updates through 0.2.0 to the same schema.
#   tests/upgrade.sh DIR PORT     (against the running test cluster)
set -uo pipefail
dir=$1 port=$2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/checks.sh"
current=$(psql_ -c "SELECT default_version FROM pg_available_extensions WHERE name = 'akko_crypt'" postgres)
version_in() { psql_ -c "SELECT extversion FROM pg_extension WHERE extname = 'akko_crypt'" "$1"; }
# Every object of the extension's schema, one line each: functions with their body, settings
# and what PUBLIC may do with them; relations, columns, constraints, policies, triggers and
# comments. (Grants to roles are checked apart: the update keeps 0.2.0's.)
shape() {
    psql_ -c "
    SELECT line FROM (
        SELECT format('function %s returns %s: %s %s %s %s %s public %s', p.oid::regprocedure, p.prorettype::regtype,
                      md5(p.prosrc), p.proconfig, p.provolatile, p.proisstrict, p.proparallel,
                      (SELECT array_agg(a.privilege_type ORDER BY 1) FROM aclexplode(p.proacl) a WHERE a.grantee = 0)) AS line
        FROM pg_proc p WHERE p.pronamespace = 'akko_crypt'::regnamespace
        UNION ALL
        SELECT format('relation %s %s public %s %s', c.relname, c.relkind,
                      (SELECT array_agg(a.privilege_type ORDER BY 1) FROM aclexplode(c.relacl) a WHERE a.grantee = 0),
                      c.relrowsecurity)
        FROM pg_class c WHERE c.relnamespace = 'akko_crypt'::regnamespace
        UNION ALL
        SELECT format('column %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      pg_get_expr(d.adbin, d.adrelid))
        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'akko_crypt'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT format('constraint %s %s', conname, pg_get_constraintdef(oid)) FROM pg_constraint
        WHERE connamespace = 'akko_crypt'::regnamespace
        UNION ALL
        SELECT format('policy %s %s %s %s', polrelid::regclass, polname, pg_get_expr(polqual, polrelid),
                      pg_get_expr(polwithcheck, polrelid)) FROM pg_policy
        WHERE polrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'akko_crypt'::regnamespace)
        UNION ALL
        SELECT format('trigger %s %s', tgrelid::regclass, pg_get_triggerdef(oid)) FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'akko_crypt'::regnamespace)
        UNION ALL
        SELECT format('comment %s %s', d.classoid::regclass, md5(d.description)) FROM pg_description d
        JOIN pg_depend e ON e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e'
        WHERE e.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'akko_crypt') AND d.objsubid = 0
        UNION ALL
        SELECT format('comment column %s.%s %s', c.relname, a.attname, md5(d.description)) FROM pg_description d
        JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
        WHERE c.relnamespace = 'akko_crypt'::regnamespace AND d.objsubid > 0
    ) s ORDER BY line" "$1"
}

for role in fixture_app fixture_bi fixture_admin; do psql_ -c "CREATE ROLE $role" postgres >/dev/null; done
psql_ -c "CREATE DATABASE akko_from_020" -c "CREATE DATABASE akko_from_010" -c "CREATE DATABASE akko_fresh" postgres
# The dump creates the extension at the default version; it is made at 0.2.0 instead.
sed "s/^CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt;/CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt VERSION '0.2.0';/" \
    "$here/fixtures/akko_crypt-0.2.0.sql" | psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres akko_from_020 >"$dir/restore_020.log" 2>&1
check "a database made by 0.2.0 restores at 0.2.0 under this library" [ "$(version_in akko_from_020)" = 0.2.0 ]
outdated=$(keyed akko_from_020 "SELECT akko_crypt.open_pii(v) FROM sealed WHERE id = 1" 2>&1)
check "until it is updated, akko_crypt refuses to work on it (55000), guessing nothing" \
    grep -q "is version 0.2.0, but its library is version $current" <<<"$outdated"
# A migration 0.2.0 left part way: its position, kept in protected_columns, becomes the
# table's interrupted run.
psql_ -c "UPDATE akko_crypt.protected_columns SET next_block = 1, migrated = 1 WHERE state = 'migrating'" akko_from_020 >/dev/null
keyed akko_from_020 "ALTER EXTENSION akko_crypt UPDATE" >/dev/null
check "ALTER EXTENSION akko_crypt UPDATE moves it to $current" [ "$(version_in akko_from_020)" = "$current" ]
check "0.2.0's part-way migration is the table's interrupted run in akko_crypt.batch_runs" \
    [ "$(psql_ -c "SELECT r ->> 'job', r ->> 'table', r ->> 'state', r ->> 'next_block', r ->> 'sealed'
                   FROM jsonb_array_elements(akko_crypt.status() -> 'runs') r" akko_from_020 | paste -sd ' ')" = "migrate|public.customers|interrupted|1|1" ]

opened=$(keyed akko_from_020 "SELECT string_agg(id || ':' || (akko_crypt.open_pii(v, CASE WHEN id = 3 THEN 'sealed:3'::bytea END) #>> '{}'), ' ' ORDER BY id)
                              FROM sealed WHERE id <> 5")
check "values sealed by 0.2.0 (format 1) open with the same root: every class, a context, a kept subject" \
    [ "$opened" = '1:{"name": "Ada Lovelace"} 2:{"iban": "GB33BUKB20201555555555"} 3:{"blood": "AB-"} 4:{"email": "kept@example.com"} 6:{"name": "Grace Hopper"}' ]
forgotten=$(keyed akko_from_020 "SELECT akko_crypt.open_pii(v) FROM sealed WHERE id = 5" 2>&1)
check "the subject forgotten under 0.2.0 stays forgotten (42704)" grep -q "has been forgotten" <<<"$forgotten"
check "0.2.0's audit log entry for it no longer names the subject" \
    [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.audit_log WHERE detail LIKE '%customer:%'" akko_from_020)" = 0 ]
types=$(psql_ -c "SELECT string_agg(col || ' ' || format_type(original_type, original_typmod), ', ' ORDER BY col)
                  FROM akko_crypt.protected_columns" akko_from_020)
check "the registry's type names became types: $types" \
    [ "$types" = "balance numeric(10,2), dob date, email text, notes text, pii jsonb, tax_id text" ]

read_back=$(keyed akko_from_020 "SELECT string_agg(concat_ws(' ', id, name, tax_id, dob, email, balance, notes), ' | ' ORDER BY id) FROM customers_decrypted")
check "0.2.0's view reads every protected column, the migrating one too" \
    [ "$read_back" = "1 Ada 123-45-6789 1815-12-10 Ada@Example.com 1234.50 first note | 2 Grace 987-65-4321 1906-12-09 grace@example.com second note | 3 Edsger 555-00-1111 1930-05-11 edsger@example.com 10.00 third note" ]
keyed akko_from_020 "CALL akko_crypt.migrate('customers')" >/dev/null
check "CALL akko_crypt.migrate takes that run over and finishes it" \
    [ "$(psql_ -c "SELECT string_agg(resumed || ' ' || (finished_at IS NOT NULL), ',') FROM akko_crypt.batch_runs" akko_from_020)" = "1 true" ]
rebuilt=$(keyed akko_from_020 "SELECT akko_crypt.refresh_views();
    INSERT INTO customers_decrypted VALUES (4, 'Barbara', '444-44-4444', '1939-11-07', 'barbara@example.com', 5, 'fourth note');
    SELECT string_agg(c.id || ':' || d.tax_id || ':' || d.notes, ',' ORDER BY c.id) FROM customers c JOIN customers_decrypted d USING (id)
    WHERE c.email_bidx = akko_crypt.blind_index(d.email, 'customers', 'email')" | tail -1)
check "the views rebuild, the migration finishes, a write seals, the blind index holds" \
    [ "$rebuilt" = "1:123-45-6789:first note,2:987-65-4321:second note,3:555-00-1111:third note,4:444-44-4444:fourth note" ]
check "the migrated column is sealed and its plaintext column gone" \
    [ "$(psql_ -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'notes_akko_plain' AND NOT attisdropped" \
               -c "SELECT count(*) FROM customers WHERE substr(notes, 1, 4) = '\\xac4b4345'" akko_from_020 | paste -sd ' ')" = "0 4" ]
events=$(keyed akko_from_020 "INSERT INTO events_decrypted (kind, pii) VALUES ('after', '{\"email\": \"d@x.org\"}');
    SELECT string_agg(kind || '=' || coalesce(pii ->> 'email', '-'), ' ' ORDER BY id) FROM events_decrypted" | tail -1)
check "the jsonb-mode table reads and writes" [ "$events" = "signup=a@x.org none=- via view=b@x.org after=d@x.org" ]
check "the view's grant to fixture_bi survived the rebuild" \
    [ "$(psql_ -c "SELECT has_table_privilege('fixture_bi', 'customers_decrypted', 'SELECT')" akko_from_020)" = t ]

subjects=$(keyed akko_from_020 "SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{\"again\": 1}', subject => 'customer:kept')) ->> 'again';
    SELECT count(*) FILTER (WHERE legacy_name IS NOT NULL) || ' ' || count(*) FROM akko_crypt.subjects" | paste -sd ' ')
check "the kept subject's next use replaces its stored name by a keyed hash" [ "$subjects" = "1 0 1" ]

privileges=$(psql_ -c "SELECT string_agg(grantee::text || ' ' || privilege, ', ' ORDER BY grantee::text, privilege) FROM akko_crypt.privileges" akko_from_020)
check "each role keeps what 0.2.0's EXECUTE grants let it do: $privileges" \
    [ "$privileges" = "fixture_admin admin, fixture_admin unlock, fixture_app open, fixture_app seal, fixture_bi open" ]
bundles=$(psql_ -c "SELECT has_function_privilege('fixture_bi', 'akko_crypt.open_value(bytea, bytea, anyelement)', 'EXECUTE'),
                           has_function_privilege('fixture_bi', 'akko_crypt.seal_pii(jsonb, text, bytea, text)', 'EXECUTE'),
                           has_function_privilege('fixture_admin', 'akko_crypt.grant_privilege(text, regrole, text)', 'EXECUTE'),
                           has_function_privilege('fixture_app', 'akko_crypt.protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean)', 'EXECUTE')" akko_from_020)
check "and the functions of those privileges, no more" [ "$bundles" = "t|f|t|f" ]

# Under 0.2.0 a table owner could rewrite her registry row's type into statements; the
# update reads it with the type parser, and stops, executing none of it.
psql_ -c "CREATE DATABASE akko_planted" postgres >/dev/null
sed "s/^CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt;/CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt VERSION '0.2.0';/" \
    "$here/fixtures/akko_crypt-0.2.0.sql" | psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres akko_planted >/dev/null 2>&1
psql_ -c "UPDATE akko_crypt.protected_columns SET original_type = 'text) AS x FROM customers t; ALTER ROLE fixture_app SUPERUSER; --' WHERE col = 'dob'" akko_planted >/dev/null
planted=$(psql_ -c "ALTER EXTENSION akko_crypt UPDATE" akko_planted 2>&1)
escalated=$(psql_ -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'fixture_app'" postgres)
stopped_at=$(version_in akko_planted)
check "a registry row planted under 0.2.0 stops the update with 22023, and runs nothing" \
    bash -c 'grep -q "which is not one type name" <<<"$1" && [ "$2" = f ] && [ "$3" = 0.2.0 ]' _ "$planted" "$escalated" "$stopped_at"

# 0.2.0 kept the registry rows of a table dropped under it; the update gives every table that
# still exists a trigger that carries what it protects, and passes the dropped one by.
psql_ -c "CREATE DATABASE akko_dropped" postgres >/dev/null
sed "s/^CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt;/CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt VERSION '0.2.0';/" \
    "$here/fixtures/akko_crypt-0.2.0.sql" | psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres akko_dropped >/dev/null 2>&1
psql_ -c "DROP TABLE public.events CASCADE" akko_dropped >/dev/null 2>&1
psql_ -c "ALTER EXTENSION akko_crypt UPDATE" akko_dropped >/dev/null 2>&1
check "a protected table dropped under 0.2.0 does not stop the update, and the others' triggers carry their columns" \
    bash -c '[ "$1" = "$2" ] && [ "$3" -gt 0 ]' _ "$(version_in akko_dropped)" "$current" \
    "$(psql_ -c "SELECT tgnargs FROM pg_trigger WHERE tgrelid = 'public.customers'::regclass AND tgname = 'zz_akko_crypt_protect'" akko_dropped)"

psql_ -c "CREATE EXTENSION akko_crypt VERSION '0.1.0'" akko_from_010 >/dev/null
psql_ -c "ALTER EXTENSION akko_crypt UPDATE" akko_from_010 >/dev/null
check "a database at 0.1.0 updates through 0.2.0 to $current" [ "$(version_in akko_from_010)" = "$current" ]
psql_ -c "CREATE EXTENSION akko_crypt" akko_fresh >/dev/null
shape akko_fresh >"$dir/shape_fresh.txt"
shape akko_from_020 >"$dir/shape_from_020.txt"
shape akko_from_010 >"$dir/shape_from_010.txt"
check "updated from 0.2.0, the extension matches a fresh install of $current object for object ($(wc -l <"$dir/shape_fresh.txt") objects)" \
    diff "$dir/shape_fresh.txt" "$dir/shape_from_020.txt"
check "updated from 0.1.0, likewise" diff "$dir/shape_fresh.txt" "$dir/shape_from_010.txt"

echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
