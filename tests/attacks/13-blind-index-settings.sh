# Issue 16, the review of the online migration's unique index and of blind indexes: the
# index survives a full dump and restore (it names the table, not its OID); unprotect works
# mid-migration; the plaintext a migration seals, and the blind index of a timestamptz, do not
# depend on the session's extra_float_digits or TimeZone; a default set on a decrypting view
# that another view reads survives its rebuild.
db=atk_bidx
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE TABLE m1 (id int PRIMARY KEY, email text)" -c "INSERT INTO m1 VALUES (1, 'a@x'), (2, 'b@x')" \
    -c "SELECT akko_crypt.protect('m1', 'email', blind_index => true, unique_index => true, migrate => false)" >/dev/null
pg_dump -Fc -h "$dir" -p "$port" -U postgres $db >"$dir/m1.dump"
psql_ -c "CREATE DATABASE ${db}_restored" postgres >/dev/null
PGOPTIONS="-c akko_crypt.key=$root" pg_restore -h "$dir" -p "$port" -U postgres -d ${db}_restored "$dir/m1.dump" 2>"$dir/m1.err"
out=$(keyed_as postgres ${db}_restored -c "INSERT INTO m1 VALUES (3, 'a@x')")
check "a full dump of a table migrating online restores its second unique index (by table name), which refuses a duplicate (23505)" \
    bash -c '[ ! -s "$1" ] && grep -q "ERROR:  23505:" <<<"$2"' _ "$dir/m1.err" "$out"
out=$(keyed_as postgres ${db}_restored -c "CALL akko_crypt.migrate('m1')" -c "SELECT string_agg(email, ' ' ORDER BY id) FROM m1_decrypted" 2>&1; \
      keyed_as postgres ${db}_restored -c "SELECT akko_crypt.create_view('m1')" -c "SELECT string_agg(email, ' ' ORDER BY id) FROM m1_decrypted")
check "... and the restored migration finishes" grep -q "^a@x b@x$" <<<"$out"

out=$(keyed_as postgres $db -c "SELECT akko_crypt.unprotect('m1', 'email')" -c "SELECT string_agg(email, ' ' ORDER BY id) FROM m1")
check "unprotect of a column migrating online with a unique blind index gives the values back" \
    bash -c '! grep -q ERROR <<<"$1" && grep -q "^a@x b@x$" <<<"$1"' _ "$out"

keyed_as postgres $db -c "CREATE TABLE f3 (id int PRIMARY KEY, v float8)" -c "INSERT INTO f3 VALUES (1, 0.1::float8 + 0.2::float8)" \
    -c "SET extra_float_digits = 0" \
    -c "SELECT akko_crypt.protect('f3', 'v', blind_index => true, unique_index => true, migrate => false)" >/dev/null
out=$(keyed_as postgres $db -c "INSERT INTO f3 VALUES (2, '0.3')" -c "INSERT INTO f3 VALUES (3, '0.30000000000000004')")
check "the migration's unique index holds every digit of a float, whatever extra_float_digits said: 0.3 is new, 0.30000000000000004 a duplicate" \
    bash -c '[ "$(grep -c "ERROR:  23505:" <<<"$1")" = 1 ] && [ "$2" = 2 ]' _ "$out" "$(psql_ -c "SELECT max(id) FROM f3 WHERE id < 3" $db)"
out=$(keyed_as postgres $db -c "SET extra_float_digits = 0" -c "CALL akko_crypt.migrate('f3')" >/dev/null 2>&1; \
      keyed_as postgres $db -c "SELECT akko_crypt.open_text(v) FROM f3 WHERE id = 1")
check "... and a migration run under extra_float_digits = 0 seals 0.30000000000000004, not 0.3" [ "$out" = "0.30000000000000004" ]

keyed_as postgres $db -c "CREATE TABLE tz (id int PRIMARY KEY, v timestamptz)" \
    -c "SELECT akko_crypt.protect('tz', 'v', blind_index => true, unique_index => true)" \
    -c "SET TimeZone = 'UTC'" -c "INSERT INTO tz VALUES (1, '2024-01-01 00:00:00+00')" >/dev/null
out=$(keyed_as postgres $db -c "SET TimeZone = 'Asia/Tokyo'" -c "INSERT INTO tz VALUES (2, '2024-01-01 09:00:00+09')")
check "a timestamptz's blind index is the instant's, whatever the writer's TimeZone: the same instant from Tokyo is a duplicate (23505)" \
    refused 23505 "$out"
check "... and a lookup from another TimeZone finds it" \
    [ "$(keyed_as postgres $db -c "SET TimeZone = 'America/New_York'" -c "SELECT id FROM tz WHERE v_bidx = akko_crypt.blind_index('2023-12-31 19:00:00-05', 'tz', 'v')")" = 1 ]

keyed_as postgres $db -c "CREATE TABLE v1 (id int PRIMARY KEY, name text, note text)" \
    -c "SELECT akko_crypt.protect('v1', 'note')" -c "SELECT akko_crypt.create_view('v1')" \
    -c "ALTER VIEW v1_decrypted ALTER COLUMN name SET DEFAULT 'anon'" \
    -c "CREATE VIEW v1_report AS SELECT id, name FROM v1_decrypted" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.refresh_views()" -c "SELECT akko_crypt.protect('v1', 'name')" \
    -c "INSERT INTO v1_decrypted (id, note) VALUES (1, 'n')" -c "SELECT name FROM v1_report")
check "a default set on a decrypting view that a view reads survives refresh_views and protect" \
    bash -c '! grep -q ERROR <<<"$1" && [ "$(tail -1 <<<"$1")" = anon ]' _ "$out"
