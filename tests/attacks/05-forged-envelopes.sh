# Finding 5: anything shaped like an envelope was stored unopened, and a forged value that
# failed its type's cast put its plaintext in the error. An envelope written into a
# protected column is opened before it is stored, under the column's class, bound to the
# row, holding a valid value of the column's type; or it is refused and nothing is stored.
# No error about such a value shows it. The restore paths that must keep working do: a full
# pg_dump restore, a data-only restore with the key, and logical replication's apply.
db=atk_forge
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE TABLE people (id int PRIMARY KEY, ssn text, dob date)" \
    -c "SELECT akko_crypt.protect('people', 'ssn', bind_row => true), akko_crypt.protect('people', 'dob')" \
    -c "SELECT akko_crypt.create_view('people')" \
    -c "INSERT INTO people_decrypted VALUES (1, '078-05-1120', '1815-12-10'), (2, '219-09-9999', '1906-12-09')" \
    -c "CREATE TABLE events (id int PRIMARY KEY, pii jsonb)" \
    -c "SELECT akko_crypt.protect('events', 'pii', mode => 'jsonb', class => 'operational')" \
    -c "INSERT INTO events VALUES (1, '{\"email\": \"a@x.org\"}')" \
    -c "CREATE ROLE app LOGIN" -c "SELECT akko_crypt.grant_privilege('seal', 'app'), akko_crypt.grant_privilege('open', 'app')" \
    -c "GRANT SELECT, INSERT, UPDATE ON people, people_decrypted, events TO app" >/dev/null
# A hand-built envelope: a valid header (bound to a context, as the column's values are),
# zero nonce and tag, and a plain SSN as its "ciphertext".
forged="'\\xac4b4345020100000001086964656e74697479'::bytea || '\\x00000000000000000000000000000000000000000000000000000000'::bytea
        || convert_to('\"123-45-6789\"', 'UTF8') || '\\x00000000000000000000000000000000'::bytea"
forged_event="'\\xac4b43450200000000010b6f7065726174696f6e616c'::bytea || '\\x00000000000000000000000000000000000000000000000000000000'::bytea
        || convert_to('{\"email\": \"a@x.org\"}', 'UTF8') || '\\x00000000000000000000000000000000'::bytea"
forged_v1="'\\xac4b4345010100000001086964656e74697479000000000000000000000000'::bytea || convert_to('\"123-45-6789\"', 'UTF8')
           || '\\x00000000000000000000000000000000'::bytea"
check "control: the forged bytes parse as an envelope (open_pii fails on the tag, XX001)" \
    refused XX001 "$(keyed_as app $db -c "SELECT akko_crypt.open_pii($forged, 'x'::bytea)")"
check "a session without the key writes a forged envelope: refused (55000), it is not stored" \
    refused 55000 "$(run_as app $db -c "INSERT INTO people (id, ssn) VALUES (3, $forged)")"
check "... a forged format 1 one: refused (55000)" refused 55000 "$(run_as app $db -c "INSERT INTO people (id, ssn) VALUES (3, $forged_v1)")"
check "a session with the key writes it: refused (XX001)" refused XX001 "$(keyed_as app $db -c "INSERT INTO people (id, ssn) VALUES (3, $forged)")"
check "... by COPY too (XX001)" refused XX001 \
    "$(keyed_as app $db -c "CREATE TEMP TABLE f AS SELECT 3 AS id, $forged AS ssn" -c "\\copy f TO '$dir/forged.copy'" \
        -c "\\copy people (id, ssn) FROM '$dir/forged.copy'")"
check "in jsonb mode, {\"\$akko\": <the forgery>} from client JSON: refused (XX001)" refused XX001 \
    "$(keyed_as app $db -c "INSERT INTO events VALUES (2, jsonb_build_object('\$akko', translate(encode($forged_event, 'base64'), E'\\n', '')))")"
check "an envelope bound to row 1, copied to row 2: refused (XX001)" refused XX001 \
    "$(keyed_as app $db -c "UPDATE people SET ssn = (SELECT ssn FROM people WHERE id = 1) WHERE id = 2")"
check "an envelope cut to its header and a tag's length: refused" \
    grep -qE "ERROR:  (22P03|XX001):" <<<"$(keyed_as app $db -c "INSERT INTO people (id, ssn) SELECT 3, substr(ssn, 1, 66) FROM people WHERE id = 1")"
check "a valid envelope of another class: refused (22023)" refused 22023 \
    "$(keyed_as app $db -c "INSERT INTO people (id, dob) VALUES (3, akko_crypt.seal_pii('\"1815-12-10\"', 'financial'))")"
check "nothing forged was stored: two rows, both open through the view" \
    [ "$(keyed_as app $db -c "SELECT count(*) || ' ' || count(ssn) FROM people_decrypted")" = "2 2" ]
# A valid envelope whose plaintext is no date, the plaintext arriving by COPY (never logged):
# neither the refused write nor a typed open shows it.
printf 'secret-marker-4711\n' >"$dir/marker.copy"
chmod a+r "$dir/marker.copy"
out=$(keyed_as app $db -c "CREATE TEMP TABLE staging (v text)" -c "\\copy staging FROM '$dir/marker.copy'" \
    -c "INSERT INTO people (id, dob) SELECT 4, akko_crypt.seal_pii(to_jsonb(v)) FROM staging" \
    -c "SELECT akko_crypt.open_value(akko_crypt.seal_pii(to_jsonb(v)), NULL, NULL::date) FROM staging" \
    -c "SELECT akko_crypt.open_value(akko_crypt.seal_pii(to_jsonb(v)), NULL, NULL::integer) FROM staging")
check "a sealed non-date written to the date column: refused (22007), and the error does not show it" \
    bash -c 'grep -q "ERROR:  22007: the value written to protected column \"dob\" is not a valid date" <<<"$1" && ! grep -q secret-marker <<<"$1"' _ "$out"
check "opened as a date, or as an integer, it errs without showing it (22007, 22P02)" \
    bash -c '[ "$(grep -cE "ERROR:  22(007|P02): a value opened from a protected column is not a valid (date|integer)" <<<"$1")" -eq 2 ] && ! grep -q secret-marker <<<"$1"' _ "$out"
check "... nor does the server log" bash -c '! grep -q secret-marker "$1"' _ "$dir/server.log"

# The restore paths.
pg_dump -h "$dir" -p "$port" -U postgres $db >"$dir/forge_full.sql"
psql_ -c "CREATE DATABASE atk_restored" postgres >/dev/null
psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/forge_full.sql" atk_restored >/dev/null 2>"$dir/forge_restore.err"
check "a full pg_dump restore brings every envelope back; they open with the root" \
    [ "$(keyed_as postgres atk_restored -c "SELECT string_agg(ssn, ' ' ORDER BY id) FROM people_decrypted")" = "078-05-1120 219-09-9999" ]
pg_dump -h "$dir" -p "$port" -U postgres -a -t people $db >"$dir/forge_data.sql"
psql_ -c "TRUNCATE people" atk_restored >/dev/null
check "a data-only restore without the key is refused (the trigger authenticates each envelope): 55000, nothing stored" \
    bash -c 'grep -q "no akko_crypt key is loaded" <<<"$1" && [ "$2" = 0 ]' _ \
    "$(psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/forge_data.sql" atk_restored 2>&1)" \
    "$(psql_ -c "SELECT count(*) FROM people" atk_restored)"
PGOPTIONS="-c akko_crypt.key=$root" psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/forge_data.sql" atk_restored >/dev/null 2>&1
check "with the key it restores, and every row opens" \
    [ "$(keyed_as postgres atk_restored -c "SELECT count(ssn) FROM people_decrypted")" = 2 ]
# Logical replication: the subscriber applies envelopes as they are, without a key (its
# apply worker fires no ordinary trigger); they open there with the same keyring and root.
psql_ -c "TRUNCATE people" atk_restored >/dev/null
psql_ -c "CREATE PUBLICATION atk_pub FOR TABLE people" -c "SELECT pg_create_logical_replication_slot('atk_sub', 'pgoutput')" $db >/dev/null
psql_ -c "CREATE SUBSCRIPTION atk_sub CONNECTION 'host=$dir port=$port dbname=$db user=postgres' PUBLICATION atk_pub
          WITH (create_slot = false, slot_name = 'atk_sub')" atk_restored >/dev/null
keyed_as app $db -c "INSERT INTO people_decrypted VALUES (5, '555-55-5555', '1930-05-11')" >/dev/null
for _ in $(seq 100); do
    [ "$(psql_ -c "SELECT count(*) FROM people" atk_restored)" = 3 ] && break
    sleep 0.1
done
check "logical replication applies the envelopes, and they open on the subscriber" \
    [ "$(keyed_as postgres atk_restored -c "SELECT string_agg(ssn, ' ' ORDER BY id) FROM people_decrypted")" = "078-05-1120 219-09-9999 555-55-5555" ]
psql_ -c "DROP SUBSCRIPTION atk_sub" atk_restored >/dev/null 2>&1

# Review's variants: envelopes that got into a table before protect, or past a trigger its
# owner disabled, are never opened for that owner. mallory may protect and seal, not open.
keyed_as postgres $db -c "CREATE ROLE mallory LOGIN" \
    -c "SELECT akko_crypt.grant_privilege('protect', 'mallory'), akko_crypt.grant_privilege('seal', 'mallory')" \
    -c "GRANT SELECT ON people, events TO mallory" -c "GRANT CREATE ON SCHEMA public TO mallory" >/dev/null
out=$(keyed_as mallory $db -c "CREATE TABLE m_events (id int PRIMARY KEY, pii jsonb)" \
    -c "INSERT INTO m_events SELECT id, pii FROM events" -c "INSERT INTO m_events VALUES (2, '{\"\$akko\": \"not-an-envelope 123-45-6789\"}')" \
    -c "SELECT akko_crypt.protect('m_events', 'pii', mode => 'jsonb', class => 'operational')")
check "jsonb-mode protect over envelopes already in the column (copied, or garbage): refused (22023), the column stays unprotected" \
    bash -c 'grep -q "ERROR:  22023: column pii of public.m_events already holds 2 values shaped like akko_crypt envelopes" <<<"$1" && [ "$2" = 0 ]' _ \
    "$out" "$(psql_ -c "SELECT count(*) FROM akko_crypt.protected_columns WHERE tbl = 'm_events'::regclass" $db)"
keyed_as mallory $db -c "CREATE TABLE m_people (id int PRIMARY KEY, ssn text)" -c "SELECT akko_crypt.protect('m_people', 'ssn')" \
    -c "ALTER TABLE m_people DISABLE TRIGGER zz_akko_crypt_protect" -c "INSERT INTO m_people SELECT id, dob FROM people" >/dev/null
check "an owner can disable the trigger of its own table: status() shows the trigger disabled" \
    [ "$(keyed_as postgres $db -c "SELECT c ->> 'trigger' FROM jsonb_array_elements(akko_crypt.status() -> 'protected_columns') c WHERE c ->> 'table' = 'public.m_people'")" = disabled ]
out=$(keyed_as postgres $db -c "SELECT akko_crypt.unprotect('m_people', 'ssn')")
check "a superuser asked to unprotect it refuses (42501): the values would go in clear to an owner who may not open" \
    grep -q "ERROR:  42501: permission denied: unprotect would give the plaintext of column ssn to the owner of public.m_people, who may not open data class \"identity\"" <<<"$out"
check "... and mallory's table still holds only envelopes" \
    [ "$(psql_ -c "SELECT count(*) FROM m_people WHERE substr(ssn, 1, 1) <> '\\xac'::bytea" $db)" = 0 ]

# COPY quotes a failing input line in its error's CONTEXT: that line holds the row's
# protected values in clear. Neither the client nor the server log gets it.
keyed_as postgres $db -c "CREATE ROLE copier LOGIN" -c "GRANT INSERT ON people TO copier" >/dev/null
log_start=$(stat -c %s "$dir/server.log")
out=$(printf '7\tCOPYSECRET-777\t1999-01-01\n' | run_as copier $db -c "COPY people (id, ssn, dob) FROM STDIN")
out+=$(printf '8\tCOPYSECRET-888\t1999-99-99\n' | keyed_as postgres $db -c "COPY people (id, ssn, dob) FROM STDIN")
out+=$(printf '9,"COPYSECRET-999\nCOPYSECRET-999",1999-01-01,x\n' | keyed_as postgres $db -c "COPY people (id, ssn, dob) FROM STDIN (FORMAT csv)")
check "control: three COPYs refused (42501 no seal, 22008 a bad date, 22P04 an extra column), with COPY's context" \
    bash -c 'refused() { grep -q "ERROR:  $1:" <<<"$2"; }; refused 42501 "$1" && refused 22008 "$1" && refused 22P04 "$1" && [ "$(grep -c "CONTEXT:  COPY people, line [0-9]" <<<"$1")" -eq 3 ]' _ "$out"
check "the rows' values are neither in the client's errors nor in the server log" \
    bash -c '! grep -q COPYSECRET <<<"$1" && ! tail -c +"$3" "$2" | grep -q COPYSECRET' _ "$out" "$dir/server.log" "$log_start"
# A document the JSON parser refuses, written to a jsonb-protected column as applications
# write (bound, with parameters kept out of the log, or by COPY): its DETAIL names the token
# it stopped at and its CONTEXT quotes the document; neither reaches anyone.
log_start=$(stat -c %s "$dir/server.log")
printf 'INSERT INTO events VALUES (9, :doc);\n' >"$dir/json.sql"
out=$(PGOPTIONS="-c akko_crypt.key=$root -c log_parameter_max_length=0 -c log_parameter_max_length_on_error=0" \
    pgbench -n -t 1 -M extended -h "$dir" -p "$port" -U postgres -f "$dir/json.sql" \
    -D doc='{"name": "JSONSECRET-NAME", "ssn": JSONSECRET-SSN}' $db 2>&1)
out+=$(printf '10\t{"name": "JSONSECRET-COPY", "ssn": 1-2}\n' | keyed_as postgres $db -c "COPY events FROM STDIN")
check "control: both refused as invalid json" [ "$(grep -c "invalid input syntax for type json" <<<"$out")" = 2 ]
check "the refused documents are neither in the client's errors nor in the server log" \
    bash -c '! grep -q JSONSECRET <<<"$1" && ! tail -c +"$3" "$2" | grep -q JSONSECRET' _ "$out" "$dir/server.log" "$log_start"
# A COPY whose columns are out of line puts a protected value where an integer goes: the
# input function's message would quote it.
log_start=$(stat -c %s "$dir/server.log")
out=$(printf 'COPYSECRET-444\t1999-01-01\n' | keyed_as postgres $db -c "COPY people (id, dob) FROM STDIN")
check "a value in the wrong COPY column (22P02) is quoted neither on screen nor in the log" \
    bash -c 'grep -q "ERROR:  22P02: invalid input syntax for type integer" <<<"$1" && ! grep -q COPYSECRET <<<"$1" && ! tail -c +"$3" "$2" | grep -q COPYSECRET' _ "$out" "$dir/server.log" "$log_start"
