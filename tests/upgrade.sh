#!/usr/bin/env bash
# The upgrade path: the previous release's install script (kept in sql/releases), values
# sealed and a table protected under it, then ALTER EXTENSION akko_crypt UPDATE to the version
# built here. Everything still opens, the views rebuild, and the upgraded extension matches a
# fresh install of the new version object for object.
#   tests/upgrade.sh DIR PORT     (against the running test cluster)
set -uo pipefail
dir=$1 port=$2
. "$(dirname "$0")/checks.sh"
previous=0.1.0
current=$(psql_ -c "SELECT default_version FROM pg_available_extensions WHERE name = 'akko_crypt'" postgres)
version_in() { psql_ -c "SELECT extversion FROM pg_extension WHERE extname = 'akko_crypt'" "$1"; }
# Every object of the extension's schema, one line each: functions with their body, settings
# and privileges; relations, columns, constraints, policies and comments.
shape() {
    psql_ -c "
    SELECT line FROM (
        SELECT format('function %s returns %s: %s %s %s %s %s %s', p.oid::regprocedure, p.prorettype::regtype, md5(p.prosrc),
                      p.proconfig, p.provolatile, p.proisstrict, p.proparallel, p.proacl) AS line
        FROM pg_proc p WHERE p.pronamespace = 'akko_crypt'::regnamespace
        UNION ALL
        SELECT format('relation %s %s %s %s', c.relname, c.relkind, c.relacl, c.relrowsecurity)
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
        SELECT format('comment %s %s', d.classoid::regclass, md5(d.description)) FROM pg_description d
        JOIN pg_depend e ON e.classid = d.classoid AND e.objid = d.objoid AND e.deptype = 'e'
        WHERE e.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'akko_crypt')
    ) s ORDER BY line" "$1"
}

psql_ -c "CREATE DATABASE akko_upgraded" -c "CREATE DATABASE akko_fresh" postgres
keyed akko_upgraded "CREATE EXTENSION akko_crypt VERSION '$previous';
    CREATE TABLE sealed AS SELECT akko_crypt.seal_pii('{\"n\": 1}') AS v;
    CREATE TABLE customers (id int PRIMARY KEY, ssn text, email text);
    INSERT INTO customers VALUES (1, '123-45-6789', 'a@example.com');
    SELECT akko_crypt.protect('customers', 'ssn', bind_row => true),
           akko_crypt.protect('customers', 'email', blind_index => true);
    SELECT akko_crypt.create_view('customers')" >/dev/null
check "the previous release, $previous, installs and protects a table" [ "$(version_in akko_upgraded)" = "$previous" ]
keyed akko_upgraded "ALTER EXTENSION akko_crypt UPDATE" >/dev/null
check "ALTER EXTENSION akko_crypt UPDATE moves it to $current" [ "$(version_in akko_upgraded)" = "$current" ]
opened=$(keyed akko_upgraded "SELECT (SELECT akko_crypt.open_pii(v) ->> 'n' FROM sealed) || ' ' || ssn || ' ' || email
                               FROM customers_decrypted WHERE id = 1")
check "values sealed under $previous open after the upgrade ($opened)" [ "$opened" = "1 123-45-6789 a@example.com" ]
rebuilt=$(keyed akko_upgraded "SELECT akko_crypt.refresh_views();
    INSERT INTO customers_decrypted VALUES (2, '987-65-4321', 'b@example.com');
    SELECT string_agg(c.id || ':' || d.ssn, ',' ORDER BY c.id) FROM customers c JOIN customers_decrypted d USING (id)
    WHERE c.email_bidx = akko_crypt.blind_index(d.email, 'customers', 'email')" | tail -1)
check "the rebuilt view writes and reads, and the blind index holds" [ "$rebuilt" = "1:123-45-6789,2:987-65-4321" ]
keyed akko_fresh "CREATE EXTENSION akko_crypt" >/dev/null
shape akko_upgraded >"$dir/shape_upgraded.txt"
shape akko_fresh >"$dir/shape_fresh.txt"
check "the upgraded extension matches a fresh install of $current, object for object" \
    diff "$dir/shape_fresh.txt" "$dir/shape_upgraded.txt"

echo "upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
