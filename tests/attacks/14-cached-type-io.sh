# Issue 16, the review of the trigger's cached type I/O: a protected column's input function
# is looked up once per transaction and its cache (a domain's constraints) reused from row to
# row. A domain CHECK that writes to the same table re-enters that input function while the
# outer call runs: the nested call must not share, and reset, the outer call's state (it put
# another row's value under the outer CHECK, and with a large value crashed the server). A
# constraint added after the first write, in the same transaction or the next, holds at once.
# From the second review: a table spec made again at every invalidation within one long
# transaction left its domain's state behind until the commit; blind_index() failed in a
# parallel worker (25000); a SQL_ASCII migration quoted a plaintext byte it could not convert.
db=atk_typeio
new_db $db >/dev/null
keyed_as postgres $db -c "CREATE TABLE r (id serial PRIMARY KEY, v text)" \
    -c "CREATE FUNCTION r_check(v text) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
    IF v LIKE 'outer%' THEN
        RAISE NOTICE 'before the nested insert: %', v;
        INSERT INTO r (v) VALUES (akko_crypt.utf8_bytes('inner')), (akko_crypt.utf8_bytes(repeat('Z', 40)));
        RAISE NOTICE 'after the nested insert: %', v;
    END IF;
    RETURN true;
END \$\$" \
    -c "CREATE DOMAIN checked_text AS text CHECK (r_check(VALUE || ''))" \
    -c "ALTER TABLE r ALTER COLUMN v TYPE checked_text" -c "SELECT akko_crypt.protect('r', 'v')" >/dev/null
out=$(keyed_as postgres $db -c "INSERT INTO r (v) VALUES (akko_crypt.utf8_bytes('first'))" \
    -c "INSERT INTO r (v) VALUES (akko_crypt.utf8_bytes('outer ' || repeat('x', 100)))" \
    -c "SELECT string_agg(left(akko_crypt.open_text(v), 8), ',' ORDER BY id) FROM r")
check "a domain CHECK that inserts into the same protected table checks its own value before and after the nested insert" \
    bash -c '[ "$(grep -c "insert: outer x" <<<"$1")" = 2 ] && ! grep -q "insert: ZZZ" <<<"$1"' _ "$out"
check "... and every value, the outer one and the nested ones, is stored sealed as written" \
    grep -q "^first,outer xx,inner,ZZZZZZZZ$" <<<"$out"
out=$(keyed_as postgres $db -c "INSERT INTO r (v) VALUES (akko_crypt.utf8_bytes('outer ' || repeat('x', 20000000)))" \
    -c "SELECT count(*) FROM r")
check "a 20 MB value under the re-entering CHECK is stored, and the server stays up" grep -q "^7$" <<<"$out"

keyed_as postgres $db -c "CREATE DOMAIN short_code AS text CHECK (length(VALUE) < 10)" \
    -c "CREATE TABLE c (id int PRIMARY KEY, code short_code)" -c "SELECT akko_crypt.protect('c', 'code', mode => 'text')" >/dev/null
out=$(keyed_as postgres $db -c "INSERT INTO c VALUES (1, 'ok'); ALTER DOMAIN short_code ADD CONSTRAINT no_bad CHECK (VALUE <> 'bad') NOT VALID; INSERT INTO c VALUES (2, 'bad')")
check "a domain constraint added in the transaction that already wrote through the cached input function is enforced (23514)" \
    refused 23514 "$out"
out=$(keyed_as postgres $db -c "INSERT INTO c VALUES (3, 'fine')" \
    -c "ALTER DOMAIN short_code ADD CONSTRAINT no_worse CHECK (VALUE <> 'worse') NOT VALID" \
    -c "INSERT INTO c VALUES (4, 'worse')" -c "ALTER DOMAIN short_code DROP CONSTRAINT no_worse" \
    -c "INSERT INTO c VALUES (5, 'worse')" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM c")
check "... and in the session's next transactions, added and then dropped" \
    bash -c 'grep -q "ERROR:  23514:" <<<"$1" && grep -q "^3,5$" <<<"$1"' _ "$out"

keyed_as postgres $db -c "CREATE FUNCTION short_ok(v text) RETURNS boolean LANGUAGE sql AS 'SELECT length(v) < 100'" \
    -c "CREATE DOMAIN checked_email AS text CHECK (short_ok(VALUE))" \
    -c "CREATE TABLE m (id int PRIMARY KEY, e checked_email)" -c "SELECT akko_crypt.protect('m', 'e', mode => 'text')" >/dev/null
spec_memory="SELECT coalesce(sum(total_bytes), 0) FROM pg_backend_memory_contexts WHERE name = 'akko_crypt table spec'"
out=$(keyed_as postgres $db -c "BEGIN" -c "INSERT INTO m VALUES (0, 'first')" -c "$spec_memory" \
    -c "DO \$\$ BEGIN FOR i IN 1..500 LOOP
            EXECUTE format('ALTER TABLE m SET (fillfactor = %s)', 50 + i % 50);
            INSERT INTO m VALUES (i, 'x' || i);
        END LOOP; END \$\$" -c "$spec_memory" -c "COMMIT" -c "SELECT count(*) FROM m")
check "500 invalidations of a protected table in one transaction, each followed by a write: its spec's memory stays that of one spec" \
    bash -c 'set -- $1; [ "$1" -gt 0 ] && [ "$2" -le "$1" ] && [ "$3" = 501 ]' _ "$(tr '\n' ' ' <<<"$out")"

keyed_as postgres $db -c "CREATE TABLE b (id int PRIMARY KEY, email text)" \
    -c "SELECT akko_crypt.protect('b', 'email', mode => 'text', blind_index => true, normalization => 'trim_lower')" \
    -c "INSERT INTO b SELECT g, 'User' || g || '@Example.com' FROM generate_series(1, 300) g" -c "ANALYZE b" >/dev/null
out=$(keyed_as postgres $db -c "$parallel_only" \
    -c "SELECT count(*) FROM b WHERE email_bidx = akko_crypt.blind_index(' user' || id || '@example.com ', 'b', 'email')")
check "blind_index() in a query that would run in parallel mode: every row found, no error (the query runs serially)" \
    grep -q "^300$" <<<"$out"

psql_ -c "CREATE DATABASE atk_typeio_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" postgres >/dev/null
keyed_as postgres atk_typeio_ascii -c "CREATE EXTENSION akko_crypt" -c "CREATE TABLE s (id int PRIMARY KEY, t text)" \
    -c "INSERT INTO s VALUES (1, convert_from('\\x736563726574fffe58'::bytea, 'SQL_ASCII'))" \
    -c "SELECT akko_crypt.protect('s', 't', migrate => false)" >/dev/null
log_start=$(($(stat -c %s "$dir/server.log") + 1))
out=$(keyed_as postgres atk_typeio_ascii -c "CALL akko_crypt.migrate('s')")
check "SQL_ASCII: migrating a value that is not UTF-8 is refused (22021) without its bytes, in the error or the log" \
    bash -c 'grep -q "ERROR:  22021:" <<<"$1" && ! grep -qi "0xff\|secret" <<<"$1" && ! tail -c +"$3" "$2" | grep -qi "0xff"' \
    _ "$out" "$dir/server.log" "$log_start"
