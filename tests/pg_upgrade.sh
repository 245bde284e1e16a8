#!/usr/bin/env bash
# Across majors with pg_upgrade. A PostgreSQL 15 cluster holds a database at this release
# (sealed values of two classes, one with a rotated and a retired key version; a forgotten
# subject; a table protected in bytea mode with a bound column and a unique blind index, one in
# text mode, one in jsonb mode; decrypting views with a grant) and one restored at 0.2.0
# (tests/fixtures). It is upgraded with pg_upgrade to each new major, into a cluster whose
# server has akko_crypt installed and preloaded; there every value opens with the same root and
# reads as before, the views and triggers seal new writes, the blind index finds them, the
# forgotten subject stays forgotten, and ALTER EXTENSION UPDATE takes the 0.2.0 database to
# this release. The 15 cluster is left as it was (pg_upgrade copies), so each major starts from it.
# Its server is PostgreSQL 15.19 (.pg/15.19, make deps), with the library and scripts built for
# Debian's 15 copied in: Debian's 15.20 stamps every column with an option, pg_attver, that the
# builds of 17 and 18 at hand do not know, so pg_upgrade from it stops restoring the first table.
#   tests/pg_upgrade.sh DIR PORT MAJOR...   (clusters of its own in DIR)
set -uo pipefail
base=$1 port=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
old_tree=$(dirname "$here")/.pg/15.19
old_bin=$old_tree/bin
built_for_15=$("$here/../packaging/pg-config.sh" 15)
install -m 0644 "$("$built_for_15" --pkglibdir)/akko_crypt.so" "$old_tree/lib/"
install -m 0644 "$("$built_for_15" --sharedir)"/extension/akko_crypt* "$old_tree/share/extension/"
dir=$base/old
. "$here/checks.sh"

PGBIN=$old_bin "$here/cluster.sh" start "$dir" "$port"
db=akko_across
psql_ -c "CREATE DATABASE $db" -c "CREATE DATABASE akko_from_020" -c "CREATE ROLE across_bi" \
    -c "CREATE ROLE fixture_app" -c "CREATE ROLE fixture_bi" -c "CREATE ROLE fixture_admin" postgres >/dev/null
psql_ -c "CREATE EXTENSION akko_crypt" $db >/dev/null
keyed $db "SELECT akko_crypt.rotate_key('identity'), akko_crypt.rotate_key('financial'), akko_crypt.rotate_key('financial');
    SELECT akko_crypt.retire_key('financial', 1, force => true);
    CREATE TABLE sealed (id int PRIMARY KEY, v bytea);
    INSERT INTO sealed VALUES (1, akko_crypt.seal_pii('{\"name\": \"Ada Lovelace\"}'));
    SELECT akko_crypt.rotate_key('identity');
    INSERT INTO sealed VALUES (2, akko_crypt.seal_pii('{\"name\": \"Grace Hopper\"}')),
        (3, akko_crypt.seal_pii('{\"iban\": \"GB33BUKB20201555555555\"}', 'financial', 'sealed:3'::bytea)),
        (4, akko_crypt.seal_pii('{\"email\": \"kept@example.com\"}', subject => 'customer:kept')),
        (5, akko_crypt.seal_pii('{\"email\": \"gone@example.com\"}', subject => 'customer:gone'));
    SELECT akko_crypt.forget_subject('customer:gone');
    CREATE TABLE customers (id serial PRIMARY KEY, name text, tax_id text NOT NULL, dob date, email text);
    INSERT INTO customers (name, tax_id, dob, email) VALUES ('Grace', '987-65-4321', '1906-12-09', 'grace@example.com');
    SELECT akko_crypt.protect('customers', 'tax_id');
    SELECT akko_crypt.protect('customers', 'dob', bind_row => true);
    SELECT akko_crypt.protect('customers', 'email', blind_index => true, normalization => 'trim_lower', unique_index => true);
    SELECT akko_crypt.create_view('customers');
    INSERT INTO customers_decrypted (name, tax_id, dob, email) VALUES ('Ada', '123-45-6789', '1815-12-10', 'ada@example.com');
    CREATE TABLE accounts (id serial PRIMARY KEY, email text NOT NULL, iban text);
    SELECT akko_crypt.protect('accounts', 'email', mode => 'text', blind_index => true, normalization => 'trim_lower', unique_index => true);
    SELECT akko_crypt.protect('accounts', 'iban', mode => 'text');
    INSERT INTO accounts (email, iban) VALUES ('ada@example.com', 'DE89 3704 0044 0532 0130 00');
    SELECT akko_crypt.create_view('accounts');
    CREATE TABLE events (id bigserial PRIMARY KEY, subject text, pii jsonb);
    SELECT akko_crypt.protect('events', 'pii', class => 'operational');
    INSERT INTO events (subject, pii) VALUES ('customer:42', '{\"email\": \"e@example.org\"}');
    SELECT akko_crypt.create_view('events');
    GRANT SELECT ON customers_decrypted TO across_bi" >"$dir/populate.log" 2>&1
sed "s/^CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt;/CREATE EXTENSION IF NOT EXISTS akko_crypt WITH SCHEMA akko_crypt VERSION '0.2.0';/" \
    "$here/fixtures/akko_crypt-0.2.0.sql" | psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres akko_from_020 >"$dir/restore_020.log" 2>&1

# What the upgraded clusters must read back, read here on 15.
reads() {
    keyed $db "SELECT string_agg(id || ':' || (akko_crypt.open_pii(v, CASE WHEN id = 3 THEN 'sealed:3'::bytea END) #>> '{}'), ' ' ORDER BY id)
                   FROM sealed WHERE id <> 5;
               SELECT string_agg(concat_ws(' ', id, name, tax_id, dob, email), ' | ' ORDER BY id) FROM customers_decrypted;
               SELECT string_agg(concat_ws(' ', id, email, iban), ' | ' ORDER BY id) FROM accounts_decrypted;
               SELECT string_agg(concat_ws(' ', id, subject, pii ->> 'email'), ' | ' ORDER BY id) FROM events_decrypted;
               SELECT string_agg(class || '/' || version || '/' || state, ' ' ORDER BY class, version) FROM akko_crypt.keyring"
}
before=$(reads)
check "on 15: values, views and keyring in place ($(wc -l <<<"$before") readings)" \
    bash -c 'grep -q "^1:{\"name\": \"Ada Lovelace\"} 2:" <<<"$1" && grep -q "2 Ada 123-45-6789 1815-12-10 ada@example.com" <<<"$1" &&
             grep -q "identity/2/active" <<<"$1" && grep -q "financial/1/retired" <<<"$1" && [ "$(grep -c . <<<"$1")" = 5 ]' _ "$before"
check "on 15: the 0.2.0 database restored at 0.2.0" \
    [ "$(psql_ -c "SELECT extversion FROM pg_extension WHERE extname = 'akko_crypt'" akko_from_020)" = 0.2.0 ]
"$here/cluster.sh" stop "$dir"

for major in "$@"; do
    new_bin=$("$("$here/../packaging/pg-config.sh" "$major")" --bindir)
    dir=$base/new$major
    # A new cluster made as the test clusters are, but not started: pg_upgrade wants it empty.
    # PostgreSQL 18 turns data checksums on by default; the 15 cluster has none.
    checksums=
    [ "$major" -lt 18 ] || checksums=--no-data-checksums
    PGBIN=$new_bin AKKO_INITDB_OPTIONS=$checksums "$here/cluster.sh" init "$dir" "$port"
    # pg_upgrade writes its scripts into the current directory, and runs as the postgres user.
    mkdir -p "$dir/work" && chown postgres: "$dir/work"
    (cd "$dir/work" && sudo -u postgres env -u RUST_BACKTRACE "$new_bin/pg_upgrade" \
        -b "$old_bin" -B "$new_bin" -d "$base/old/data" -D "$dir/data" -p $((port + 1)) -P $((port + 2)) \
        -s "$dir" -U postgres >"$dir/pg_upgrade.log" 2>&1)
    status=$?
    [ $status -eq 0 ] || tail -20 "$dir/pg_upgrade.log"
    check "pg_upgrade 15 -> $major completes" [ $status -eq 0 ]
    sudo -u postgres env -u RUST_BACKTRACE "$new_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
    check "on $major: the server runs $major" \
        [ "$(psql_ -c "SELECT current_setting('server_version_num')::int / 10000" postgres)" = "$major" ]

    after=$(reads)
    check "on $major: every value opens with the same root and the views read what 15 read" \
        bash -c '[ "$1" = "$2" ] && [ "$(grep -c . <<<"$1")" = 5 ]' _ "$after" "$before"
    forgotten=$(keyed $db "SELECT akko_crypt.open_pii(v) FROM sealed WHERE id = 5" 2>&1)
    check "on $major: the forgotten subject stays forgotten (42704)" grep -q "has been forgotten" <<<"$forgotten"
    written=$(keyed $db "INSERT INTO customers_decrypted (name, tax_id, dob, email) VALUES ('Edsger', '555-00-1111', '1930-05-11', 'edsger@example.com');
        INSERT INTO accounts (email, iban) VALUES ('ADA@example.com', 'GB29 NWBK 6016 1331 9268 19')
            ON CONFLICT (email_bidx) DO UPDATE SET iban = EXCLUDED.iban;
        INSERT INTO events (subject, pii) VALUES ('customer:43', '{\"email\": \"f@example.org\"}');
        SELECT string_agg(id::text, ',' ORDER BY id) FROM customers
            WHERE email_bidx = akko_crypt.blind_index(' Edsger@Example.com', 'customers', 'email');
        SELECT iban FROM accounts_decrypted;
        SELECT count(*) FROM events WHERE pii ? '\$akko';
        SELECT count(*) FROM customers WHERE substr(tax_id, 1, 4) = '\\xac4b4345' AND substr(email, 1, 4) = '\\xac4b4345';
        SELECT count(*) FROM accounts WHERE email LIKE '\$akko:%' AND iban LIKE '\$akko:%'" 2>&1)
    check "on $major: the trigger seals writes in all three modes, the upsert finds its row, the blind index the new one" \
        [ "$(paste -sd ' ' <<<"$written")" = "3 GB29 NWBK 6016 1331 9268 19 2 3 1" ]
    check "on $major: the view's grant survived" \
        [ "$(psql_ -c "SELECT has_table_privilege('across_bi', 'customers_decrypted', 'SELECT')" $db)" = t ]
    keyed akko_from_020 "ALTER EXTENSION akko_crypt UPDATE" >/dev/null 2>&1
    check "on $major: ALTER EXTENSION akko_crypt UPDATE takes the 0.2.0 database to this release" \
        [ "$(psql_ -c "SELECT extversion = default_version FROM pg_extension, pg_available_extensions WHERE extname = 'akko_crypt' AND name = extname" akko_from_020)" = t ]
    check "on $major: and its 0.2.0 values open" \
        [ "$(keyed akko_from_020 "SELECT akko_crypt.open_pii(v) ->> 'name' FROM sealed WHERE id = 1")" = "Ada Lovelace" ]
    PGBIN=$new_bin "$here/cluster.sh" stop "$dir"
done

echo "pg_upgrade: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
