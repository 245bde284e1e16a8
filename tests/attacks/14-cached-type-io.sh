# Issue 16, the review of the trigger's cached type I/O: a protected column's input function
# is looked up once per transaction and its cache (a domain's constraints) reused from row to
# row. A domain CHECK that writes to the same table re-enters that input function while the
# outer call runs: the nested call must not share, and reset, the outer call's state (it put
# another row's value under the outer CHECK, and with a large value crashed the server). A
# constraint added after the first write, in the same transaction or the next, holds at once.
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
