# Issue 16, finding 4, and the review of text mode: what applications write straight into a
# text-mode table is sealed and comes back unchanged; a role that may only seal cannot store
# an envelope it did not just write, nor a blind index that does not match its value; text
# shaped like an envelope that protect finds is refused, never left in clear; text in a
# database of another encoding is refused without its bytes in the error.
db=atk_text
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE TABLE acc (id int PRIMARY KEY, email text, tax text)" \
    -c "INSERT INTO acc VALUES (10, 'a@x', '111'), (11, 'b@x', '222'), (12, 'c@x', '333'), (13, 'd@x', '444')" \
    -c "SELECT akko_crypt.protect('acc', 'email', mode => 'text', blind_index => true, unique_index => true, normalization => 'lower', bind_row => true)" \
    -c "SELECT akko_crypt.protect('acc', 'tax', mode => 'text')" -c "SELECT akko_crypt.create_view('acc')" \
    -c "CREATE ROLE atk_w LOGIN" -c "GRANT SELECT, INSERT, UPDATE ON acc TO atk_w" \
    -c "SELECT akko_crypt.grant_privilege('seal', 'atk_w', 'identity')" >/dev/null
lookup() { keyed_as postgres $db -c "SELECT coalesce(string_agg(id::text, ',' ORDER BY id), 'none') FROM acc WHERE email_bidx = akko_crypt.blind_index('$1', 'acc', 'email')"; }
check "control: the blind index finds c@x in row 12" [ "$(lookup c@x)" = 12 ]

out=$(keyed_as atk_w $db -c "INSERT INTO acc (id, email) VALUES (12, 'forged@x') ON CONFLICT (id) DO UPDATE SET email_bidx = EXCLUDED.email_bidx" \
    -c "UPDATE acc SET email_bidx = '\\x00' WHERE id = 13" \
    -c "UPDATE acc SET email_bidx = (SELECT email_bidx FROM acc WHERE id = 10) WHERE id = 11")
check "a role that may only seal writes <col>_bidx alone (upsert, UPDATE, another row's index): the old index is put back" \
    [ "$(lookup forged@x)/$(lookup c@x)/$(lookup d@x)/$(lookup a@x)/$(lookup b@x)" = "none/12/13/10/11" ]

out=$(keyed_as atk_w $db -c "INSERT INTO acc (id, email, tax) VALUES (13, 'e@x', '555') ON CONFLICT (id) DO UPDATE SET tax = (SELECT tax FROM acc WHERE id = 10)")
check "an upsert that writes another row's envelope is authenticated: 42501 for a role that may only seal" \
    refused 42501 "$out"
out=$(keyed_as atk_w $db -c "WITH moved AS (INSERT INTO acc (id, email) VALUES (20, 'f@x') RETURNING email) UPDATE acc SET tax = (SELECT email FROM moved) WHERE id = 10")
check "an envelope just written to one column and copied into another by a writable CTE is authenticated (42501)" \
    refused 42501 "$out"
check "... rows 10 and 13 hold what they held" \
    [ "$(keyed_as postgres $db -c "SELECT string_agg(id || ' ' || email || ' ' || tax, '; ' ORDER BY id) FROM acc_decrypted WHERE id IN (10, 13)")" = "10 a@x 111; 13 d@x 444" ]

keyed_as postgres $db -c "CREATE TABLE planted (id int PRIMARY KEY, t text)" \
    -c "INSERT INTO planted VALUES (1, '\$akko:SSN 123-45-6789'), (2, 'ok')" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('planted', 't', mode => 'text')")
check "protect in text mode refuses a column holding text shaped like an envelope (22023), left unprotected" \
    bash -c 'grep -q "ERROR:  22023:" <<<"$1" && [ "$2" = 0 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM akko_crypt.protected_columns WHERE tbl = 'planted'::regclass" $db)"

keyed_as postgres $db -c "CREATE TABLE styled (id int PRIMARY KEY, ds date[], dr daterange, f float8, ts tstzrange)" \
    -c "SELECT akko_crypt.protect('styled', c, mode => 'text') FROM unnest('{ds,dr,f,ts}'::text[]) c" \
    -c "SELECT akko_crypt.create_view('styled')" >/dev/null
# A float's text is what the writer's session printed (a float parameter or the view's cast
# under extra_float_digits = 0 rounds before akko_crypt sees it); text with every digit keeps them.
keyed_as postgres $db -c "SET DateStyle = 'SQL, DMY'" -c "SET extra_float_digits = 0" \
    -c "INSERT INTO styled_decrypted VALUES (1, ARRAY['2005-04-03'::date], daterange('2005-04-03', '2005-04-05'), NULL, tstzrange('2005-04-03 10:00+00', NULL))" \
    -c "INSERT INTO styled (id, ds, f) VALUES (2, '{03/04/2005}', '0.30000000000000004')" >/dev/null
check "dates in arrays and ranges written under DateStyle SQL, DMY, and a float's digits under extra_float_digits = 0, read back unchanged" \
    [ "$(keyed_as postgres $db -c "SET TimeZone = 'UTC'" -c "SELECT string_agg(concat_ws(' ', ds, dr, f, ts), '; ' ORDER BY id) FROM styled_decrypted")" = \
      '{2005-04-03} [2005-04-03,2005-04-05) ["2005-04-03 10:00:00+00",); {2005-04-03} 0.30000000000000004' ]

# CAFÉ in each database's encoding: UTF-8 bytes are what SQL_ASCII text holds.
declare -A cafe=([SQL_ASCII]='\x434146c389' [LATIN1]='\x434146c9')
for encoding in SQL_ASCII LATIN1; do
    edb="atk_text_$(tr 'A-Z' 'a-z' <<<"$encoding")"
    psql_ -c "CREATE DATABASE $edb ENCODING '$encoding' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" postgres >/dev/null
    keyed_as postgres $edb -c "CREATE EXTENSION akko_crypt" -c "SELECT akko_crypt.rotate_key('identity')" \
        -c "CREATE TABLE s (id int PRIMARY KEY, t text)" \
        -c "SELECT akko_crypt.protect('s', 't', mode => 'text', blind_index => true)" >/dev/null
    log_start=$(($(stat -c %s "$dir/server.log") + 1))
    if [ $encoding = SQL_ASCII ]; then
        out=$(keyed_as postgres $edb -c "INSERT INTO s VALUES (1, convert_from('\\xf0414243'::bytea, 'SQL_ASCII'))")
        check "SQL_ASCII: text that is not UTF-8 is refused (22021) without its bytes, in the error or the log" \
            bash -c 'grep -q "ERROR:  22021:" <<<"$1" && ! grep -qi "0x41\|0xf0" <<<"$1" && ! tail -c +"$3" "$2" | grep -qi "0xf0 0x41"' \
            _ "$out" "$dir/server.log" "$log_start"
    fi
    keyed_as postgres $edb -c "INSERT INTO s VALUES (2, convert_from('${cafe[$encoding]}'::bytea, '$encoding'))" >/dev/null
    check "$encoding: a non-ASCII value is sealed, and blind_index() finds it" \
        [ "$(keyed_as postgres $edb -c "SELECT id FROM s WHERE t LIKE '\$akko:%' AND t_bidx = akko_crypt.blind_index(convert_from('${cafe[$encoding]}'::bytea, '$encoding'), 's', 't')")" = 2 ]
done

# A text-mode table dropped and restored from a table-level dump: writes are refused until
# restore_protection, then its rows open, row binding and blind index included.
db=atk_text
keyed_as postgres $db -c "CREATE TABLE tm (id int PRIMARY KEY, email text, born date)" \
    -c "INSERT INTO tm VALUES (1, 'ada@x', '1815-12-10')" \
    -c "SELECT akko_crypt.protect('tm', 'email', mode => 'text', bind_row => true, blind_index => true, unique_index => true)" \
    -c "SELECT akko_crypt.protect('tm', 'born', mode => 'text')" -c "SELECT akko_crypt.create_view('tm')" >/dev/null
pg_dump -h "$dir" -p "$port" -U postgres -t tm -t tm_decrypted $db >"$dir/text_table.sql"
psql_ -c "DROP TABLE tm CASCADE" $db >/dev/null
psql -X -q -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -f "$dir/text_table.sql" $db >/dev/null 2>"$dir/text_table.err"
out=$(keyed_as postgres $db -c "INSERT INTO tm VALUES (2, 'ben@x', '1900-01-01')")
check "a text-mode table restored from a table-level dump refuses writes (55000), nothing stored in clear" \
    bash -c '[ ! -s "$1" ] && grep -q "ERROR:  55000:" <<<"$2" && [ "$3" = 1 ]' _ "$dir/text_table.err" "$out" "$(psql_ -c "SELECT count(*) FROM tm" $db)"
out=$(keyed_as postgres $db -c "SELECT akko_crypt.restore_protection('tm')" -c "INSERT INTO tm VALUES (2, 'ben@x', '1900-01-01')" \
    -c "SELECT string_agg(id || ' ' || email || ' ' || born, ', ' ORDER BY id) FROM tm_decrypted" \
    -c "SELECT id FROM tm WHERE email_bidx = akko_crypt.blind_index('ada@x', 'tm', 'email')")
check "... after restore_protection it writes sealed and the restored row opens, blind index included" \
    bash -c '! grep -q ERROR <<<"$1" && grep -q "^1 ada@x 1815-12-10, 2 ben@x 1900-01-01$" <<<"$1" && [ "$(tail -1 <<<"$1")" = 1 ] && [ "$2" = 2 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM tm WHERE email LIKE '\$akko:%' AND born LIKE '\$akko:%'" $db)"
