# Issue 16, finding 3, the DDL a DBA runs on a protected table: a renamed protected column
# stops writes and view rebuilds (42703) instead of serving envelopes as plain bytea under its
# new name; a dropped one is forgotten by unprotect, and writes work again; a generated column
# computed from a column keeps protect away from it (0A000) instead of being recomputed from
# envelopes; a table with a generated column gets its view.
db=atk_ddl
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE TABLE people (id int PRIMARY KEY, name text, ssn text, city text)" \
    -c "INSERT INTO people VALUES (1, 'Ada', '078-05-1120', 'London')" \
    -c "SELECT akko_crypt.protect('people', 'ssn')" -c "SELECT akko_crypt.protect('people', 'city')" \
    -c "SELECT akko_crypt.create_view('people')" >/dev/null
check "control: the view opens the protected columns" \
    [ "$(keyed_as postgres $db -c "SELECT ssn || ' ' || city FROM people_decrypted")" = "078-05-1120 London" ]

psql_ -c "ALTER TABLE people RENAME COLUMN ssn TO tax_id" $db >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.refresh_views()")
check "after a protected column is renamed, refresh_views does not rebuild the view over it (a warning naming the column)" \
    bash -c 'grep -q "tax_id\|ssn" <<<"$1" && grep -q "WARNING" <<<"$1"' _ "$out"
check "... and nothing serves the envelope as plain bytea under the new name: the view still opens it" \
    [ "$(keyed_as postgres $db -c "SELECT ssn FROM people_decrypted")" = "078-05-1120" ]
out=$(keyed_as postgres $db -c "INSERT INTO people VALUES (2, 'Ben', '219-09-9999', 'Rome')")
check "... writes to the table are refused (42703), nothing stored" \
    bash -c 'grep -q "ERROR:  42703:" <<<"$1" && [ "$2" = 1 ]' _ "$out" "$(psql_ -c "SELECT count(*) FROM people" $db)"
psql_ -c "ALTER TABLE people RENAME COLUMN tax_id TO ssn" $db >/dev/null
check "renamed back, writes seal again" \
    [ "$(keyed_as postgres $db -c "INSERT INTO people_decrypted VALUES (2, 'Ben', '219-09-9999', 'Rome')" -c "SELECT count(*) FROM people WHERE substr(ssn, 1, 2) = '\\xac4b'")" = "2" ]

psql_ -c "ALTER TABLE people DROP COLUMN city CASCADE" $db >/dev/null 2>&1
out=$(keyed_as postgres $db -c "INSERT INTO people (id, name, ssn) VALUES (3, 'Cy', '555-55-5555')")
check "a dropped protected column stops writes (42703, the hint names unprotect)" \
    bash -c 'grep -q "ERROR:  42703:" <<<"$1" && grep -q "unprotect" <<<"$1"' _ "$out"
out=$(keyed_as postgres $db -c "SELECT akko_crypt.unprotect('people', 'city')" -c "INSERT INTO people (id, name, ssn) VALUES (3, 'Cy', '555-55-5555')" \
    -c "SELECT akko_crypt.create_view('people')" -c "SELECT string_agg(ssn, ' ' ORDER BY id) FROM people_decrypted")
check "unprotect forgets it; writes seal again and the view is back" \
    bash -c '! grep -q ERROR <<<"$1" && grep -q "078-05-1120 219-09-9999 555-55-5555" <<<"$1"' _ "$out"
check "... and ssn stays sealed in every row" \
    [ "$(psql_ -c "SELECT count(*) FROM people WHERE substr(ssn, 1, 2) = '\\xac4b'" $db)" = 3 ]

keyed_as postgres $db -c "CREATE TABLE orders (id int PRIMARY KEY, price numeric, qty int, total numeric GENERATED ALWAYS AS (price * qty) STORED, note text)" \
    -c "INSERT INTO orders (id, price, qty, note) VALUES (1, 2.5, 4, 'fragile')" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('orders', 'price')")
check "protect refuses a column a generated column is computed from (0A000, naming it)" \
    bash -c 'grep -q "ERROR:  0A000:" <<<"$1" && grep -q "total" <<<"$1"' _ "$out"
check "... and the generated value is still there" [ "$(psql_ -c "SELECT total FROM orders" $db)" = "10.0" ]
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('orders', 'note')" -c "SELECT akko_crypt.create_view('orders')" \
    -c "INSERT INTO orders_decrypted (id, price, qty, note) VALUES (2, 1.5, 2, 'glass')" \
    -c "SELECT string_agg(total || ' ' || note, ', ' ORDER BY id) FROM orders_decrypted")
check "a table with a generated column gets its view; writes through it compute the column and seal the note" \
    bash -c '! grep -q ERROR <<<"$1" && grep -q "10.0 fragile, 3.0 glass" <<<"$1"' _ "$out"
# An UPDATE through the view writes a column it changes even when the value's text, under
# the session's settings, looks the same (extra_float_digits = 0 prints 0.3 for both).
out=$(keyed_as postgres $db -c "CREATE TABLE floats (id int PRIMARY KEY, f float8, note text)" -c "INSERT INTO floats VALUES (1, 0.3, 'n')" \
    -c "SELECT akko_crypt.protect('floats', 'note')" -c "SELECT akko_crypt.create_view('floats')" \
    -c "SET extra_float_digits = 0" -c "UPDATE floats_decrypted SET f = 0.1::float8 + 0.2::float8 WHERE id = 1" \
    -c "RESET extra_float_digits" -c "SELECT f FROM floats")
check "an UPDATE through the view keeps a float that prints as the old one: 0.30000000000000004" \
    grep -q "^0.30000000000000004$" <<<"$out"

# Issue 16, finding 5: a unique blind index meets a duplicate while the migration seals: the
# refusal names the row that holds the value by its key, never the value, and the migration
# goes on once one of the two is changed.
keyed_as postgres $db -c "CREATE TABLE members (id int PRIMARY KEY, email text)" \
    -c "INSERT INTO members VALUES (1, 'dup@example.com'), (2, 'other@example.com'), (3, 'DUP@example.com')" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('members', 'email', blind_index => true, normalization => 'lower', unique_index => true)")
check "the default migration refuses the duplicate (23505), naming the row (id)=(1) and neither value" \
    bash -c 'grep -q "ERROR:  23505:.*row (id)=(3) holds the same value (after normalisation) as the row (id)=(1)" <<<"$1" && ! grep -qi "dup@" <<<"$1" && ! grep -q "DETAIL" <<<"$1"' _ "$out"
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('members', 'email', blind_index => true, normalization => 'lower', unique_index => true, migrate => false)")
check "... so does protect for an online migration, before it starts: the same refusal, nothing protected" \
    bash -c 'grep -q "ERROR:  23505:.*row (id)=(3) holds the same value (after normalisation) as the row (id)=(1)" <<<"$1" && ! grep -qi "dup@" <<<"$1" && ! grep -q "DETAIL" <<<"$1" && [ "$2" = 0 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM akko_crypt.protected_columns WHERE tbl = 'members'::regclass" $db)"
keyed_as postgres $db -c "UPDATE members SET email = 'dup3@example.com' WHERE id = 3" \
    -c "SELECT akko_crypt.protect('members', 'email', blind_index => true, normalization => 'lower', unique_index => true, migrate => false)" \
    -c "CREATE ROLE ddl_writer LOGIN" -c "GRANT INSERT ON members TO ddl_writer" \
    -c "SELECT akko_crypt.grant_privilege('seal', 'ddl_writer', 'identity')" >/dev/null
out=$(keyed_as ddl_writer $db -c "INSERT INTO members VALUES (4, 'OTHER@example.com')")
check "while it migrates, a duplicate of a value not migrated yet is refused (23505), for a role that may only seal" \
    bash -c 'grep -q "ERROR:  23505:" <<<"$1" && ! grep -qi "other@" <<<"$1"' _ "$out"
out=$(keyed_as ddl_writer $db -c "INSERT INTO members VALUES (4, 'new@example.com')")
check "... and a new value is written, sealed" \
    bash -c '! grep -q ERROR <<<"$1" && [ "$2" = 1 ]' _ "$out" "$(psql_ -c "SELECT count(*) FROM members WHERE id = 4 AND substr(email, 1, 2) = '\\xac4b'" $db)"
out=$(keyed_as postgres $db -c "CALL akko_crypt.migrate('members')" -c "SELECT string_agg(email, ' ' ORDER BY id) FROM members_decrypted" 2>&1; keyed_as postgres $db -c "SELECT akko_crypt.create_view('members')" -c "SELECT string_agg(email, ' ' ORDER BY id) FROM members_decrypted")
check "once one is changed the migration finishes, every value sealed" \
    bash -c 'grep -q "dup@example.com other@example.com dup3@example.com new@example.com" <<<"$1" && [ "$2" = 0 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM members WHERE substr(email, 1, 2) <> '\\xac4b'" $db)"
check "... the migration's second unique index went with the plaintext column; the blind index's stays" \
    [ "$(psql_ -c "SELECT string_agg((indexdef LIKE '%migrating_blind_index%') || ' ' || (indexdef LIKE 'CREATE UNIQUE%'), ',') FROM pg_indexes WHERE tablename = 'members' AND indexname <> 'members_pkey'" $db)" = "false true" ]
out=$(keyed_as ddl_writer $db -c "INSERT INTO members VALUES (5, 'Dup@example.com')")
check "... and it refuses duplicates as before (23505)" refused 23505 "$out"

# A user's view over a decrypting view: the rebuild replaces the decrypting view in place and
# the user's view keeps working; when the view's columns must change (the online migration
# moves its column to the end) the refusal names what depends on it (2BP01) and changes nothing.
keyed_as postgres $db -c "CREATE TABLE clients (id int PRIMARY KEY, name text, ssn text, city text)" \
    -c "INSERT INTO clients VALUES (1, 'Ada', '078-05-1120', 'London')" \
    -c "SELECT akko_crypt.protect('clients', 'ssn')" -c "SELECT akko_crypt.create_view('clients')" \
    -c "CREATE VIEW client_report AS SELECT name, ssn, city FROM clients_decrypted" \
    -c "CREATE ROLE ddl_reader" -c "GRANT SELECT ON clients_decrypted TO ddl_reader" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.refresh_views()" -c "SELECT akko_crypt.protect('clients', 'city')" \
    -c "SELECT name || ' ' || ssn || ' ' || city FROM client_report")
check "refresh_views and protect rebuild a decrypting view that a user's view reads; the user's view reads on" \
    bash -c '! grep -q "ERROR\|WARNING" <<<"$1" && grep -q "^Ada 078-05-1120 London$" <<<"$1"' _ "$out"
check "... the view kept in place keeps its grants and security_invoker" \
    [ "$(psql_ -c "SELECT has_table_privilege('ddl_reader', 'clients_decrypted', 'SELECT') AND 'security_invoker=true' = ANY (reloptions) FROM pg_class WHERE oid = 'clients_decrypted'::regclass" $db)" = t ]
check "... the rebuilt view opens city, and the table holds it sealed" \
    [ "$(keyed_as postgres $db -c "INSERT INTO clients_decrypted VALUES (2, 'Ben', '219-09-9999', 'Rome')" -c "SELECT string_agg(city, ' ' ORDER BY city) FROM client_report")/$(psql_ -c "SELECT count(*) FROM clients WHERE substr(city, 1, 2) = '\\xac4b'" $db)" = "London Rome/2" ]
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('clients', 'name', migrate => false)")
check "a change that moves the view's columns is refused (2BP01), naming the user's view" \
    bash -c 'grep -q "ERROR:  2BP01:" <<<"$1" && grep -q "client_report" <<<"$1"' _ "$out"
check "... and changed nothing: name is not protected, the user's view reads on" \
    [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.protected_columns WHERE tbl = 'clients'::regclass AND col = 'name'" $db)/$(keyed_as postgres $db -c "SELECT string_agg(name, ' ' ORDER BY name) FROM client_report")" = "0/Ada Ben" ]

# Renaming a protected table: the trigger, the registry and the view follow its OID.
out=$(keyed_as postgres $db -c "ALTER TABLE clients RENAME TO patrons" -c "INSERT INTO patrons VALUES (3, 'Cy', '555-55-5555', 'Oslo')" \
    -c "SELECT akko_crypt.refresh_views()" -c "SELECT string_agg(ssn || ' ' || city, ', ' ORDER BY id) FROM clients_decrypted")
check "a renamed table keeps sealing writes and its view opens them" \
    bash -c '! grep -q ERROR <<<"$1" && grep -q "078-05-1120 London, 219-09-9999 Rome, 555-55-5555 Oslo" <<<"$1" && [ "$2" = 3 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM patrons WHERE substr(ssn, 1, 2) = '\\xac4b' AND substr(city, 1, 2) = '\\xac4b'" $db)"
