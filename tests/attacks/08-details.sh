# Finding 8, the smaller ones: one key both sealed and keyed blind indexes; row contexts
# depended on TimeZone and DateStyle; forget_subject left the subject's name behind;
# refresh_views quoted role names twice; PUBLIC could execute 23 functions and write both
# registries (and, review found, could not reach lock() for want of USAGE on the schema;
# a dropped role's privileges stayed behind). (Wiping palloc'd plaintext on error paths is in the code, datum::Wiped; a
# black-box test cannot see memory.)
db=atk_details
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" >/dev/null
check "the class blind_index seals nothing (22023)" refused 22023 "$(keyed_as postgres $db -c "SELECT akko_crypt.seal_pii('{}', 'blind_index')")"
check "... and no role can be granted to open it (22023)" refused 22023 "$(keyed_as postgres $db -c "SELECT akko_crypt.grant_privilege('open', 'postgres', 'blind_index')")"
# A value bound to a timestamptz key, written under one TimeZone and DateStyle, opens under others.
keyed_as postgres $db -c "CREATE TABLE ledger (at timestamptz, day date, amount text, PRIMARY KEY (at, day))" \
    -c "SELECT akko_crypt.protect('ledger', 'amount', bind_row => true)" -c "SELECT akko_crypt.create_view('ledger')" \
    -c "SET TimeZone = 'UTC'" -c "SET DateStyle = 'ISO, YMD'" \
    -c "INSERT INTO ledger_decrypted VALUES ('2026-03-29 01:30:00+00', '2026-03-29', '100.00 EUR')" >/dev/null
for settings in "SET TimeZone = 'Europe/Paris'" "SET DateStyle = 'SQL, DMY'" "SET TimeZone = 'America/New_York'; SET DateStyle = 'German'" \
                "SET IntervalStyle = 'sql_standard'; SET extra_float_digits = 3"; do
    check "a row-bound value opens after: $settings" \
        [ "$(keyed_as postgres $db -c "$settings" -c "SELECT amount FROM ledger_decrypted")" = "100.00 EUR" ]
done
check "row_context gives the same bytes under any TimeZone (it is IMMUTABLE, and now is)" \
    [ "$(keyed_as postgres $db -c "SET TimeZone = 'Asia/Tokyo'" -c "SELECT akko_crypt.row_context('\\x00000000000000000000000000000000', '2026-03-29 01:30:00+00'::timestamptz) =
            (SELECT akko_crypt.row_context('\\x00000000000000000000000000000000', '2026-03-29 03:30:00+02'::timestamptz))")" = t ]
# forget_subject: the name is in neither the subjects table, the audit log nor the audit lines
# of the server log. (The name is bound here, as an application binds it.)
printf "SELECT akko_crypt.seal_pii('{}', subject => :'name') IS NOT NULL;\nSELECT akko_crypt.forget_subject(:'name');\n" >"$dir/forget.sql"
log_start=$(stat -c %s "$dir/server.log")
PGOPTIONS="-c akko_crypt.key=$root" psql -X -q -h "$dir" -p "$port" -U postgres -v name=subject-name-5150 -f "$dir/forget.sql" $db >/dev/null
check "forget_subject: the subjects table never held the name" \
    [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.subjects" $db)" = 0 ]
check "the audit log names the subject by its random id, not its name" \
    bash -c '[ "$1" = t ]' _ "$(psql_ -c "SELECT detail ~ '^subject id [0-9a-f]{32}$' FROM akko_crypt.audit_log WHERE operation = 'forget_subject'" $db)"
check "the server log's audit line does not name it either" \
    bash -c '! tail -c +"$2" "$1" | grep "akko_crypt audit" | grep -q subject-name-5150' _ "$dir/server.log" "$log_start"
# refresh_views keeps grants and owners whose role names need quoting.
keyed_as postgres $db -c 'CREATE ROLE "BI Team"' -c 'CREATE ROLE "Owner ""O"""' -c "GRANT \"Owner \"\"O\"\"\" TO postgres" \
    -c 'GRANT SELECT ON ledger_decrypted TO "BI Team"' -c 'ALTER VIEW ledger_decrypted OWNER TO "Owner ""O"""' >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.refresh_views()")
check "refresh_views with roles named \"BI Team\" and \"Owner \"\"O\"\"\": no error, grant and owner kept" \
    bash -c '! grep -q ERROR <<<"$1" && [ "$2" = "true Owner \"O\"" ]' _ "$out" \
    "$(psql_ -c "SELECT has_table_privilege('BI Team', 'ledger_decrypted', 'SELECT') || ' ' || pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'ledger_decrypted'" $db)"
# What PUBLIC may do: execute lock() and two functions of their arguments, read the class names.
check "PUBLIC may execute only lock, row_context, utf8_bytes and the text-mode envelope encoders" \
    [ "$(psql_ -c "SELECT string_agg(proname, ' ' ORDER BY proname) FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                  WHERE p.pronamespace = 'akko_crypt'::regnamespace AND a.grantee = 0" $db)" = "envelope_as_text envelope_from_text lock row_context utf8_bytes" ]
check "PUBLIC holds nothing on the extension's tables but SELECT on data_class" \
    [ "$(psql_ -c "SELECT string_agg(c.relname || ' ' || a.privilege_type, ', ') FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                  WHERE c.relkind IN ('r', 'v', 'S') AND c.relnamespace = 'akko_crypt'::regnamespace AND a.grantee = 0" $db)" = "data_class SELECT" ]
check "functions whose body has no pinned search_path: the two committing procedures only" \
    [ "$(psql_ -c "SELECT string_agg(p.proname, ' ' ORDER BY p.proname) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
                  WHERE p.pronamespace = 'akko_crypt'::regnamespace AND l.lanname IN ('sql', 'plpgsql')
                    AND NOT coalesce(p.proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp', 'search_path=pg_catalog'], false)" $db)" = "migrate reencrypt" ]
check "a role with no akko_crypt privilege can call what PUBLIC holds: lock(), row_context, data_class" \
    bash -c '! grep -q ERROR <<<"$1"' _ "$(psql_ -c "CREATE ROLE nobody LOGIN" $db >/dev/null;
        run_as nobody $db -c "SELECT akko_crypt.lock()" -c "SELECT akko_crypt.row_context('\\x00000000000000000000000000000000', 1)" \
            -c "SELECT count(*) FROM akko_crypt.data_class")"
check "... and nothing else: seal_pii 42501" refused 42501 "$(run_as nobody $db -c "SELECT akko_crypt.seal_pii('{}')")"
# A dropped role's privileges do not wait for a new role with its OID.
stale="SELECT count(*) FROM akko_crypt.privileges p WHERE NOT EXISTS (SELECT FROM pg_roles r WHERE r.oid = p.grantee)"
keyed_as postgres $db -c "CREATE ROLE gone" -c "SELECT akko_crypt.grant_privilege('open', 'gone', 'identity')" \
    -c "DROP OWNED BY gone" -c "DROP ROLE gone" >/dev/null
check "control: DROP ROLE left the dropped role's row" [ "$(psql_ -c "$stale" $db)" = 1 ]
keyed_as postgres $db -c "SELECT akko_crypt.grant_privilege('seal', 'nobody', 'identity')" >/dev/null
check "the next grant removes the rows of a dropped role; status() lists only existing roles" \
    [ "$(psql_ -c "$stale" $db) $(keyed_as postgres $db -c "SELECT count(*) FROM jsonb_array_elements(akko_crypt.status() -> 'privileges') p WHERE p ->> 'role' ~ '^[0-9]+$'")" = "0 0" ]
