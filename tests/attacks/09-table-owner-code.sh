# A variant of findings 1 and 2 that review found: the owner of an ordinary table gets its
# own code run with a superuser's rights when a superuser protects, migrates, unprotects or
# re-encrypts the table (its triggers, domain checks and index expressions run inside those
# statements), or plants operators that akko_crypt's own catalog reads pick up. Each runs as
# the table's owner now, in a security-restricted operation, and no catalog read of
# akko_crypt uses the caller's search_path. Tables with inheritance are refused, a dropped
# type stops only its own table, and refresh_views goes on past a table it cannot rebuild.
db=atk_owner
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE ROLE mallory LOGIN" -c "CREATE ROLE owner2 LOGIN" \
    -c "SELECT akko_crypt.grant_privilege('protect', 'mallory'), akko_crypt.grant_privilege('seal', 'mallory', 'identity')" \
    -c "SELECT akko_crypt.grant_privilege('protect', 'owner2'), akko_crypt.grant_privilege('seal', 'owner2'), akko_crypt.grant_privilege('open', 'owner2')" \
    -c "CREATE SCHEMA m AUTHORIZATION mallory" -c "CREATE SCHEMA o AUTHORIZATION owner2" \
    -c "GRANT CREATE ON SCHEMA public TO mallory" \
    -c "CREATE TABLE public.calls (who name, what text)" -c "GRANT INSERT ON public.calls TO PUBLIC" >/dev/null
# Every piece of code an owner plants records who ran it with this function (made by the
# superuser, so it runs as whoever calls it); as a superuser it would also make mallory one.
plant_recorder="CREATE FUNCTION public.record(what text) RETURNS boolean LANGUAGE plpgsql AS \$\$
BEGIN
    INSERT INTO public.calls VALUES (current_user, what);
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE mallory SUPERUSER';
    END IF;
    RETURN true;
END \$\$"
psql_ -c "$plant_recorder" $db >/dev/null
run_as mallory $db -c "CREATE FUNCTION m.on_write() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM public.record(TG_OP || ' trigger'); RETURN NEW; END \$\$" \
    -c "CREATE DOMAIN m.checked_text AS text CHECK (public.record('domain check'))" \
    -c "CREATE TABLE m.cust (id int PRIMARY KEY, name text, ssn text, note m.checked_text)" \
    -c "INSERT INTO m.cust VALUES (1, 'Ada', '078-05-1120', 'n1'), (2, 'Grace', '219-09-9999', 'n2')" \
    -c "CREATE TRIGGER aa_record BEFORE INSERT OR UPDATE ON m.cust FOR EACH ROW EXECUTE FUNCTION m.on_write()" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
ran=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('m.cust', 'ssn', migrate => false)" -c "CALL akko_crypt.migrate('m.cust')" \
    -c "SELECT akko_crypt.protect('m.cust', 'note')" -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CALL akko_crypt.reencrypt('m.cust', 'ssn')")
calls=$(psql_ -c "SELECT who || ': ' || what FROM public.calls GROUP BY 1 ORDER BY 1" $db | paste -sd ';')
check "control: a superuser protected, migrated and re-encrypted mallory's table, and her code ran ($calls)" \
    bash -c '! grep -q ERROR <<<"$1" && grep -q "UPDATE trigger" <<<"$2" && grep -q "domain check" <<<"$2"' _ "$ran" "$calls"
check "her trigger and domain check ran as mallory, never as the superuser" \
    [ "$(psql_ -c "SELECT count(*) FILTER (WHERE who <> 'mallory') FROM public.calls" $db)" = 0 ]
check "... and mallory is no superuser" [ "$(psql_ -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'" $db)" = f ]
check "the values were sealed all the same, and opened by the superuser's re-encryption" \
    [ "$(keyed_as postgres $db -c "SELECT count(*) FROM m.cust WHERE akko_crypt.open_text(ssn) LIKE '%-%'")" = 2 ]
# unprotect, with an owner that may open (unprotect hands the values to the owner); and an
# index expression, which the rewrites evaluate.
run_as owner2 $db -c "CREATE FUNCTION o.on_write() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM public.record('owner2 trigger'); RETURN NEW; END \$\$" \
    -c "CREATE FUNCTION o.key_of(jsonb) RETURNS text LANGUAGE plpgsql IMMUTABLE AS \$\$ BEGIN PERFORM public.record('index expression'); RETURN \$1::text; END \$\$" \
    -c "CREATE TABLE o.doc (id int PRIMARY KEY, body jsonb, tag text)" -c "INSERT INTO o.doc VALUES (1, '{\"a\": 1}', 't')" \
    -c "CREATE INDEX ON o.doc (o.key_of(body))" \
    -c "CREATE TRIGGER aa_record BEFORE UPDATE ON o.doc FOR EACH ROW EXECUTE FUNCTION o.on_write()" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.protect('o.doc', 'body', mode => 'jsonb')" -c "SELECT akko_crypt.protect('o.doc', 'tag')" \
    -c "SELECT akko_crypt.unprotect('o.doc', 'tag')" -c "SELECT akko_crypt.unprotect('o.doc', 'body')" >/dev/null
calls=$(psql_ -c "SELECT who || ': ' || what FROM public.calls GROUP BY 1 ORDER BY 1" $db | paste -sd ';')
check "a superuser's protect and unprotect run the owner's trigger and index expression as the owner ($calls)" \
    bash -c '[ "$1" = "owner2: index expression;owner2: owner2 trigger" ]' _ "$calls"
check "... and the document is back in clear" [ "$(psql_ -c "SELECT body->>'a' FROM o.doc" $db)" = 1 ]
# The migration seals as the owner: a superuser protecting an application's populated table
# needs the owner to hold seal on the class, and says so before changing anything.
out=$(keyed_as postgres $db -c "CREATE ROLE app_owner" -c "CREATE TABLE public.app (id int PRIMARY KEY, ssn text)" \
    -c "ALTER TABLE public.app OWNER TO app_owner" -c "INSERT INTO public.app VALUES (1, '078-05-1120')" \
    -c "SELECT akko_crypt.protect('public.app', 'ssn')")
check "a superuser protects a populated table whose owner may not seal: 42501 naming the owner, the column untouched" \
    bash -c 'grep -q "ERROR:  42501: permission denied: the owner of public.app, as whom the migration seals its values, may not seal data class \"identity\"" <<<"$1" && [ "$2" = text ]' _ "$out" \
    "$(psql_ -c "SELECT atttypid::regtype FROM pg_attribute WHERE attrelid = 'public.app'::regclass AND attname = 'ssn'" $db)"
out=$(keyed_as postgres $db -c "SELECT akko_crypt.grant_privilege('seal', 'app_owner', 'identity')" \
    -c "SELECT akko_crypt.protect('public.app', 'ssn')" -c "SELECT akko_crypt.create_view('public.app')" \
    -c "INSERT INTO public.app_decrypted VALUES (2, '219-09-9999')" -c "SELECT string_agg(ssn, ' ' ORDER BY id) FROM public.app_decrypted")
check "... with seal granted to the owner, it is sealed, and read back through the view" \
    bash -c '! grep -q ERROR <<<"$1" && [ "$(tail -1 <<<"$1")" = "078-05-1120 219-09-9999" ] && [ "$2" = 0 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM public.app WHERE substr(ssn, 1, 1) <> '\\xac'::bytea" $db)"
# A policy cannot hide rows from the migration (which would then drop their plaintext).
run_as owner2 $db -c "CREATE TABLE o.hidden (id int PRIMARY KEY, ssn text)" -c "INSERT INTO o.hidden VALUES (1, '078-05-1120')" \
    -c "ALTER TABLE o.hidden ENABLE ROW LEVEL SECURITY" -c "ALTER TABLE o.hidden FORCE ROW LEVEL SECURITY" \
    -c "CREATE POLICY nothing ON o.hidden USING (false)" >/dev/null
check "a forced row-security policy that hides every row stops protect (42501) instead of hiding rows from it" \
    refused 42501 "$(keyed_as postgres $db -c "SELECT akko_crypt.protect('o.hidden', 'ssn')")"
check "... and the value is there as it was" \
    [ "$(psql_ -c "SET row_security = off" -c "SELECT ssn FROM o.hidden" $db)" = 078-05-1120 ]

# Planted operators and functions ahead of pg_catalog: akko_crypt's first read of a table's
# primary key (the trigger's, blind_index's) never calls them.
run_as mallory $db -c "CREATE FUNCTION public.eq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS \$\$ BEGIN RAISE NOTICE 'planted = ran'; RETURN \$1 OPERATOR(pg_catalog.=) \$2; END \$\$" \
    -c "CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.eq)" \
    -c "CREATE FUNCTION public.eq2(int2, int2) RETURNS boolean LANGUAGE plpgsql AS \$\$ BEGIN RAISE NOTICE 'planted = ran'; RETURN \$1 OPERATOR(pg_catalog.=) \$2; END \$\$" \
    -c "CREATE OPERATOR public.= (LEFTARG = int2, RIGHTARG = int2, FUNCTION = public.eq2)" \
    -c "CREATE FUNCTION public.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS \$\$ BEGIN RAISE NOTICE 'planted unnest ran'; RETURN QUERY SELECT * FROM pg_catalog.unnest(\$1); END \$\$" >/dev/null
keyed_as postgres $db -c "CREATE TABLE public.bidx (id int PRIMARY KEY, email text)" \
    -c "SELECT akko_crypt.protect('public.bidx', 'email', bind_row => true, blind_index => true)" >/dev/null
planted=$(keyed_as postgres $db -c "SET search_path = public, pg_catalog" \
    -c "SELECT akko_crypt.blind_index('a@x.org', 'public.bidx', 'email') IS NOT NULL" -c "INSERT INTO public.bidx VALUES (1, 'a@x.org')")
control=$(keyed_as postgres $db -c "SET search_path = public, pg_catalog" -c "SELECT 1::oid = 1::oid, unnest(ARRAY[1])")
check "control: the planted = and unnest catch an unqualified call" \
    bash -c 'grep -q "planted = ran" <<<"$1" && grep -q "planted unnest ran" <<<"$1"' _ "$control"
check "a superuser with public ahead of pg_catalog: blind_index and the trigger's first write call none of them" \
    bash -c '! grep -q "planted" <<<"$1" && ! grep -q ERROR <<<"$1"' _ "$planted"

# The owner's code changes the caller's settings (search_path, DateStyle, the key) from inside
# a superuser's protect, migrate and reencrypt: every change is undone when akko_crypt's
# statement ends, so planted operators never run as the superuser, then or later.
run_as mallory $db -c "CREATE FUNCTION m.unsettle() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
        PERFORM set_config('search_path', 'public, pg_catalog', false);
        PERFORM set_config('DateStyle', 'SQL, DMY', false);
        RETURN NEW; END \$\$" \
    -c "CREATE TABLE m.settings (id int PRIMARY KEY, ssn text)" -c "INSERT INTO m.settings VALUES (1, '078-05-1120')" \
    -c "CREATE TRIGGER aa_unsettle BEFORE UPDATE ON m.settings FOR EACH ROW EXECUTE FUNCTION m.unsettle()" \
    -c "CREATE TABLE m.settings2 (id int PRIMARY KEY, ssn text)" -c "INSERT INTO m.settings2 VALUES (1, '078-05-1120')" \
    -c "CREATE TRIGGER aa_unsettle BEFORE UPDATE ON m.settings2 FOR EACH ROW EXECUTE FUNCTION m.unsettle()" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('m.settings', 'ssn')" -c "SELECT akko_crypt.create_view('m.settings')" \
    -c "SHOW search_path" -c "SHOW DateStyle" -c "SELECT 1::oid = 1::oid" \
    -c "SELECT akko_crypt.protect('m.settings2', 'ssn', migrate => false)" -c "CALL akko_crypt.migrate('m.settings2')" \
    -c "SELECT akko_crypt.rotate_key('identity')" -c "CALL akko_crypt.reencrypt('m.settings', 'ssn')" \
    -c "SHOW search_path" -c "SHOW DateStyle" -c "SELECT 1::oid = 1::oid" -c "SELECT akko_crypt.seal_pii('{}') IS NOT NULL")
check "after the owner's code reset search_path and DateStyle inside protect, migrate and reencrypt: the superuser's are as they were, its key too" \
    bash -c '! grep -q ERROR <<<"$1" && [ "$(grep -cxF "\"\$user\", public" <<<"$1")" = 2 ] && [ "$(grep -cxF "ISO, MDY" <<<"$1")" = 2 ] && [ "$(tail -1 <<<"$1")" = t ]' _ "$out"
check "... and no planted operator ran in that session ($(grep -c "planted" <<<"$out") notices); mallory is no superuser" \
    bash -c '! grep -q planted <<<"$1" && [ "$2" = f ]' _ "$out" "$(psql_ -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'" $db)"
# Her code cannot borrow the superuser's seal: a class she may not seal is refused up front.
run_as mallory $db -c "CREATE TABLE m.pay (id int PRIMARY KEY, iban text)" -c "INSERT INTO m.pay VALUES (1, 'GB33BUKB20201555555555')" >/dev/null
check "a superuser protecting her table in a class she may not seal (financial): 42501, nothing changed" \
    refused 42501 "$(keyed_as postgres $db -c "SELECT akko_crypt.protect('m.pay', 'iban', class => 'financial')")"
# reencrypt writes each resealed envelope for its own row: moved to the next row, it is
# authenticated like any written envelope (and mallory may not open).
keyed_as mallory $db -c "CREATE TABLE m.bound (id int PRIMARY KEY, ssn text)" -c "INSERT INTO m.bound VALUES (1, '078-05-1120'), (2, '219-09-9999')" \
    -c "SELECT akko_crypt.protect('m.bound', 'ssn', bind_row => true)" \
    -c "CREATE FUNCTION m.swap() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
            IF coalesce(current_setting('m.saved', true), '') = '' THEN PERFORM set_config('m.saved', encode(NEW.ssn, 'hex'), false);
            ELSE NEW.ssn := decode(current_setting('m.saved'), 'hex'); END IF;
            RETURN NEW; END \$\$" \
    -c "CREATE TRIGGER aa_swap BEFORE UPDATE ON m.bound FOR EACH ROW EXECUTE FUNCTION m.swap()" >/dev/null
binding=$(psql_ -c "SELECT encode(binding_id, 'hex') FROM akko_crypt.protected_columns WHERE tbl = 'm.bound'::regclass" $db)
out=$(keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CALL akko_crypt.reencrypt('m.bound', 'ssn', context => \$\$akko_crypt.row_context('\\x$binding'::bytea, id)\$\$)")
check "her trigger moves one row's resealed envelope into the other during a superuser's reencrypt: refused (42501), both still open" \
    bash -c 'grep -q "ERROR:  42501:" <<<"$1" && [ "$2" = "078-05-1120 219-09-9999" ]' _ "$out" \
    "$(keyed_as postgres $db -c "SELECT string_agg(akko_crypt.open_text(ssn, akko_crypt.row_context(p.binding_id, id)), ' ' ORDER BY id) FROM m.bound, akko_crypt.protected_columns p WHERE p.tbl = 'm.bound'::regclass")"
# A role that is not a member of the table's owner (the README's maintenance role) never runs
# the owner's code with its own rights, open included: reencrypt reads and writes the table
# as its owner, and the owner's trigger, which tries to open what it sees, cannot.
keyed_as postgres $db -c "CREATE ROLE maintenance LOGIN" \
    -c "SELECT akko_crypt.grant_privilege('seal', 'maintenance'), akko_crypt.grant_privilege('open', 'maintenance')" \
    -c "CREATE TABLE public.plain (id int PRIMARY KEY, v bytea)" -c "INSERT INTO public.plain VALUES (1, akko_crypt.seal_pii('{}'))" \
    -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "GRANT USAGE ON SCHEMA m TO maintenance" -c "GRANT SELECT, UPDATE ON m.cust, public.plain TO maintenance" >/dev/null
run_as mallory $db -c "CREATE TABLE m.loot (who name, what text)" -c "GRANT INSERT ON m.loot TO PUBLIC" \
    -c "CREATE FUNCTION m.steal() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
            BEGIN INSERT INTO m.loot VALUES (current_user, akko_crypt.open_text(NEW.ssn));
            EXCEPTION WHEN OTHERS THEN INSERT INTO m.loot VALUES (current_user, SQLSTATE); END;
            RETURN NEW; END \$\$" \
    -c "CREATE TRIGGER ab_steal BEFORE UPDATE ON m.cust FOR EACH ROW EXECUTE FUNCTION m.steal()" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
out=$(keyed_as maintenance $db -c "CALL akko_crypt.reencrypt('m.cust', 'ssn')")
check "the maintenance role re-encrypts mallory's table: done, and her code ran as mallory, opening nothing ($(psql_ -c "SELECT string_agg(DISTINCT who || ' ' || what, ', ') FROM m.loot" $db))" \
    bash -c '! grep -q ERROR <<<"$1" && [ "$2" = "mallory 42501" ] && [ "$3" = mallory ]' _ "$out" \
    "$(psql_ -c "SELECT string_agg(DISTINCT who || ' ' || what, ', ') FROM m.loot" $db)" \
    "$(psql_ -c "SELECT string_agg(DISTINCT who, ',') FROM public.calls" $db)"
check "... a context expression, which would run as the owner, is refused it (42501)" \
    refused 42501 "$(keyed_as maintenance $db -c "CALL akko_crypt.reencrypt('m.cust', 'ssn', context => 'NULL')")"
run_as mallory $db -c "ALTER TABLE m.cust ENABLE ROW LEVEL SECURITY" -c "CREATE POLICY own ON m.cust USING (current_user = 'mallory')" >/dev/null
check "... and so is a table with row security, whose rows as the owner it would see past its policies (42501)" \
    refused 42501 "$(keyed_as maintenance $db -c "CALL akko_crypt.reencrypt('m.cust', 'ssn')")"
run_as mallory $db -c "ALTER TABLE m.cust DISABLE ROW LEVEL SECURITY" >/dev/null
check "... and a table without code, as before" \
    bash -c '! grep -q ERROR <<<"$1"' _ "$(keyed_as maintenance $db -c "CALL akko_crypt.reencrypt('public.plain', 'v')")"
# What status() says of a trigger its owner disabled, changed or follows with another.
run_as mallory $db -c "CREATE FUNCTION m.unseal() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NEW; END \$\$" \
    -c "CREATE TRIGGER zzz_after_akko BEFORE INSERT ON m.settings2 FOR EACH ROW EXECUTE FUNCTION m.unseal()" >/dev/null
check "status() shows a later BEFORE trigger that could replace what the seal trigger wrote" \
    [ "$(keyed_as postgres $db -c "SELECT c ->> 'trigger' FROM jsonb_array_elements(akko_crypt.status() -> 'protected_columns') c WHERE c ->> 'table' = 'm.settings2'")" = "followed by another BEFORE trigger" ]
# unprotect does not rebuild an index over the plaintext: its errors would quote values.
run_as owner2 $db -c "CREATE TABLE o.uniq (id int PRIMARY KEY, ssn text)" -c "INSERT INTO o.uniq VALUES (1, '078-05-1120'), (2, '078-05-1120')" >/dev/null
keyed_as owner2 $db -c "SELECT akko_crypt.protect('o.uniq', 'ssn')" -c "CREATE INDEX ON o.uniq (ssn)" >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.unprotect('o.uniq', 'ssn')")
check "unprotect of a column an index uses: refused (0A000), no value in the error" \
    bash -c 'grep -q "ERROR:  0A000: column ssn of o.uniq is used by index" <<<"$1" && ! grep -q 078-05 <<<"$1"' _ "$out"

# Reading: a domain's CHECK is its owner's code; nobody who reads the decrypting view or looks
# a value up runs it (the value was checked when written; the view shows the base type).
keyed_as mallory $db -c "SELECT akko_crypt.create_view('m.cust')" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
out=$(keyed_as postgres $db -c "SELECT count(note) FROM m.cust_decrypted" \
    -c "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'm.cust_decrypted'::regclass AND attname = 'note'")
check "a superuser reads mallory's view of a domain column: the domain's CHECK does not run, the column reads as text" \
    bash -c '[ "$1" = "2
text" ] && [ "$2" = 0 ]' _ "$out" "$(psql_ -c "SELECT count(*) FROM public.calls" $db)"
# ... nor inside an array: the view reads an array of a domain as an array of its base type,
# a blind index is looked up the same way, and open_value opens as no type holding a domain.
run_as mallory $db -c "CREATE DOMAIN m.checked_int AS int CHECK (public.record('int domain check'))" \
    -c "CREATE TABLE m.tagged (id int PRIMARY KEY, tags m.checked_text[], grid m.checked_int[])" \
    -c "INSERT INTO m.tagged VALUES (1, '{a,b}', '{{1,2},{3,4}}'), (2, '{c}', NULL)" >/dev/null
keyed_as mallory $db -c "SELECT akko_crypt.protect('m.tagged', 'tags', blind_index => true)" \
    -c "SELECT akko_crypt.protect('m.tagged', 'grid')" -c "SELECT akko_crypt.create_view('m.tagged')" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
run_as mallory $db -c "SELECT '{x}'::m.checked_text[]" >/dev/null
check "control: an array of mallory's domain runs its CHECK for each element" \
    [ "$(psql_ -c "SELECT count(*) FROM public.calls" $db)" = 1 ]
psql_ -c "DELETE FROM public.calls" $db >/dev/null
out=$(keyed_as postgres $db -c "SELECT string_agg(array_to_string(tags, ',') || coalesce(grid::text, ''), ';' ORDER BY id) FROM m.tagged_decrypted" \
    -c "SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'm.tagged_decrypted'::regclass AND attname IN ('tags', 'grid')" \
    -c "SELECT count(*) FROM m.tagged WHERE tags_bidx = akko_crypt.blind_index('{a,b}', 'm.tagged', 'tags')")
check "a superuser reads and looks up arrays of mallory's domains: the values open, as text[] and integer[], and no CHECK runs" \
    bash -c '[ "$1" = "a,b{{1,2},{3,4}};c
text[],integer[]
1" ] && [ "$2" = 0 ]' _ "$out" "$(psql_ -c "SELECT count(*) FROM public.calls" $db)"
out=$(keyed_as postgres $db -c "SELECT akko_crypt.open_value(tags, NULL, NULL::m.checked_text[]) FROM m.tagged" \
    -c "SELECT akko_crypt.open_value(akko_crypt.seal_pii(to_jsonb('n'::text)), NULL, NULL::m.checked_text)")
check "open_value as a domain, or an array of one: refused (0A000) before any CHECK runs" \
    bash -c '[ "$(grep -c "ERROR:  0A000: akko_crypt.open_value does not open values as type" <<<"$1")" = 2 ] && [ "$2" = 0 ]' _ \
    "$out" "$(psql_ -c "SELECT count(*) FROM public.calls" $db)"
# A domain in a range or a composite type has no type to read it as without the domain: such
# a column is not protected, and a composite that gains one later fails closed for readers.
run_as mallory $db -c "CREATE TYPE m.checked_range AS RANGE (subtype = m.checked_int)" \
    -c "CREATE TYPE m.address AS (street text, city text)" \
    -c "CREATE TABLE m.holder (id int PRIMARY KEY, span m.checked_range, home m.address)" \
    -c "INSERT INTO m.holder VALUES (1, '[1,5)', '(Main St,Rome)')" >/dev/null
out=$(keyed_as mallory $db -c "SELECT akko_crypt.protect('m.holder', 'span')")
check "protect of a range over a domain: refused (0A000), the column keeps its values" \
    bash -c 'grep -q "ERROR:  0A000: column span of m.holder is of type m.checked_range, which holds a domain" <<<"$1" && [ "$2" = "[1,5)" ]' _ \
    "$out" "$(psql_ -c "SELECT span FROM m.holder" $db)"
keyed_as mallory $db -c "SELECT akko_crypt.protect('m.holder', 'home')" -c "SELECT akko_crypt.create_view('m.holder')" \
    -c "ALTER TYPE m.address ADD ATTRIBUTE note m.checked_text" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
out=$(keyed_as postgres $db -c "SELECT home FROM m.holder_decrypted" -c "SELECT akko_crypt.refresh_views()")
check "a composite type given a domain attribute after protect: the view read is refused (0A000) and runs no CHECK" \
    bash -c 'grep -q "ERROR:  0A000: akko_crypt.open_value does not open values as type m.address" <<<"$1" && [ "$2" = 0 ]' _ \
    "$out" "$(psql_ -c "SELECT count(*) FROM public.calls" $db)"
# ... nor when the composite gains one while a query runs: open_value checks again.
run_as mallory $db -c "CREATE TYPE m.address2 AS (street text, city text)" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
out=$(keyed_as postgres $db -c "DO \$\$ DECLARE s bytea := akko_crypt.seal_pii(to_jsonb('(Main St,Rome)'::text)); v text; BEGIN
    FOR i IN 1..2 LOOP
        v := akko_crypt.open_value(s, NULL, NULL::m.address2)::text;
        RAISE NOTICE 'opened %', v;
        IF i = 1 THEN EXECUTE 'ALTER TYPE m.address2 DROP ATTRIBUTE city, ADD ATTRIBUTE note m.checked_text'; END IF;
    END LOOP; END \$\$")
check "a composite given a domain attribute between two calls of one open_value: the first opens, the second is refused (0A000), no CHECK runs" \
    bash -c 'grep -q "opened (\"Main St\",Rome)" <<<"$1" && grep -q "ERROR:  0A000: akko_crypt.open_value does not open values as type m.address2" <<<"$1" && [ "$2" = 0 ]' _ \
    "$out" "$(psql_ -c "SELECT count(*) FROM public.calls" $db)"
# The view reads the stored columns as they are: retyped, one would be read through its
# owner's cast.
run_as mallory $db -c "CREATE TABLE m.boxed (id int, ssn text)" -c "INSERT INTO m.boxed VALUES (1, '078-05-1120')" >/dev/null
keyed_as mallory $db -c "SELECT akko_crypt.protect('m.boxed', 'ssn')" >/dev/null
run_as mallory $db -c "CREATE TYPE m.box AS (b bytea)" \
    -c "CREATE FUNCTION m.unbox(x m.box) RETURNS bytea LANGUAGE plpgsql AS \$\$ BEGIN PERFORM public.record('cast'); RETURN x.b; END \$\$" \
    -c "CREATE CAST (m.box AS bytea) WITH FUNCTION m.unbox(m.box) AS IMPLICIT" \
    -c "ALTER TABLE m.boxed ALTER COLUMN ssn TYPE m.box USING ROW(ssn)::m.box" >/dev/null
psql_ -c "DELETE FROM public.calls" $db >/dev/null
out=$(keyed_as postgres $db -c "SELECT akko_crypt.create_view('m.boxed')")
check "a protected column retyped to the owner's type with a cast to bytea: create_view refuses (42804), the cast never runs" \
    bash -c 'grep -q "ERROR:  42804: column ssn of m.boxed is not of type bytea" <<<"$1" && [ "$2" = 0 ]' _ \
    "$out" "$(psql_ -c "SELECT count(*) FROM public.calls" $db)"
# Row security runs the owner's policies for each reader, as the reader: status() says so.
run_as mallory $db -c "ALTER TABLE m.tagged ENABLE ROW LEVEL SECURITY" -c "CREATE POLICY everyone ON m.tagged USING (true)" >/dev/null
check "status() lists a protected table with row-security policies under reader_exposures" \
    [ "$(keyed_as postgres $db -c "SELECT e ->> 'exposure' FROM jsonb_array_elements(akko_crypt.status() -> 'reader_exposures') e WHERE e ->> 'table' = 'm.tagged'")" = "row security is on: its policies run for each reader, as the reader" ]
# PostgreSQL 15 lets the owner of an emptied table without triggers turn it into a view,
# whose query then runs for every reader: status() says so too. 16 and later refuse.
run_as mallory $db -c "CREATE TABLE m.turned (id int, ssn text)" -c "INSERT INTO m.turned VALUES (1, '078-05-1120')" >/dev/null
keyed_as mallory $db -c "SELECT akko_crypt.protect('m.turned', 'ssn')" >/dev/null
out=$(run_as mallory $db -c "CREATE TABLE m.turned_copy AS SELECT * FROM m.turned" -c "DELETE FROM m.turned" \
    -c "DROP TRIGGER zz_akko_crypt_protect ON m.turned" -c "VACUUM m.turned" \
    -c 'CREATE RULE "_RETURN" AS ON SELECT TO m.turned DO INSTEAD SELECT id, ssn FROM m.turned_copy')
turned_kind=$(psql_ -c "SELECT relkind FROM pg_class WHERE oid = 'm.turned'::regclass" $db)
exposure=$(keyed_as postgres $db -c "SELECT e ->> 'exposure' FROM jsonb_array_elements(akko_crypt.status() -> 'reader_exposures') e WHERE e ->> 'table' = 'm.turned'")
if [ "$server_major" -lt 16 ]; then
    check "control: mallory turned her protected table into a view" [ "$turned_kind" = v ]
    check "status() lists a protected table turned into a view under reader_exposures" \
        [ "$exposure" = "it is no longer an ordinary table: reading it runs the query its owner gave it" ]
else
    check "PostgreSQL $server_major refuses to turn the table into a view (42809), and status() lists no exposure for it" \
        bash -c 'grep -q "ERROR:  42809: relation \"turned\" cannot have ON SELECT rules" <<<"$1" && [ "$2" = r ] && [ -z "$3" ]' _ \
        "$out" "$turned_kind" "$exposure"
fi
# A row inserted while protect waits for the table is migrated, not lost.
run_as mallory $db -c "CREATE TABLE m.late (id int PRIMARY KEY, ssn text)" >/dev/null
(printf "BEGIN;\nINSERT INTO m.late VALUES (1, '078-05-1120');\n\\! sleep 2\nCOMMIT;\n" |
    psql -X -q -h "$dir" -p "$port" -U mallory $db >/dev/null 2>&1) &
writer=$!
sleep 1
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('m.late', 'ssn')")
wait $writer
check "a row committed while protect waited for it: sealed, and it opens" \
    [ "$(keyed_as postgres $db -c "SELECT akko_crypt.open_text(ssn) FROM m.late")" = 078-05-1120 ]
# unprotect over plaintext: a constraint's error does not show the row.
run_as owner2 $db -c "CREATE TABLE o.checked (id int PRIMARY KEY, n int, body jsonb)" \
    -c "INSERT INTO o.checked VALUES (1, -1, '{\"ssn\": \"555-66-7777\"}')" >/dev/null
keyed_as owner2 $db -c "SELECT akko_crypt.protect('o.checked', 'body', mode => 'jsonb')" \
    -c "ALTER TABLE o.checked ADD CONSTRAINT positive CHECK (n > 0) NOT VALID" >/dev/null
log_start=$(stat -c %s "$dir/server.log")
out=$(keyed_as postgres $db -c "SELECT akko_crypt.unprotect('o.checked', 'body')")
check "unprotect failing on another column's constraint (23514) shows no value, on screen or in the log" \
    bash -c 'grep -q "ERROR:  23514:" <<<"$1" && ! grep -q 555-66 <<<"$1" && ! tail -c +"$3" "$2" | grep -q 555-66' _ "$out" "$dir/server.log" "$log_start"

# Inheritance: ALTER TABLE would reach the children, the trigger and migration would not.
run_as mallory $db -c "CREATE TABLE m.parent (id int PRIMARY KEY, ssn text)" -c "CREATE TABLE m.child () INHERITS (m.parent)" \
    -c "INSERT INTO m.child VALUES (1, '078-05-1120')" >/dev/null
check "protect refuses an inheritance parent (0A000), and its child's value stays" \
    bash -c 'grep -q "ERROR:  0A000: .* inherits from, or is inherited by, another table" <<<"$1" && [ "$2" = 078-05-1120 ]' _ \
    "$(keyed_as mallory $db -c "SELECT akko_crypt.protect('m.parent', 'ssn')")" "$(psql_ -c "SELECT ssn FROM m.child" $db)"
check "... and an inheritance child (0A000)" refused 0A000 "$(keyed_as mallory $db -c "SELECT akko_crypt.protect('m.child', 'ssn')")"

# A type dropped after protect: its own table's uses fail with 42704, the rest goes on.
keyed_as mallory $db -c "CREATE TYPE m.mood AS ENUM ('happy', 'sad')" -c "CREATE TABLE m.moods (id int PRIMARY KEY, mood m.mood)" \
    -c "SELECT akko_crypt.protect('m.moods', 'mood')" -c "SELECT akko_crypt.create_view('m.moods')" \
    -c "CREATE TABLE m.kept (id int PRIMARY KEY, ssn text)" -c "SELECT akko_crypt.protect('m.kept', 'ssn')" -c "SELECT akko_crypt.create_view('m.kept')" \
    -c "DROP TYPE m.mood CASCADE" >/dev/null 2>&1
refresh=$(keyed_as postgres $db -c "SELECT akko_crypt.refresh_views()")
check "refresh_views as a superuser, past a table whose type was dropped: a warning naming it, no error" \
    bash -c 'grep -q "WARNING:  01000: akko_crypt: the views of table moods were not rebuilt: the type protected column \"mood\" of table \"moods\" held (OID [0-9]*) no longer exists" <<<"$1" && ! grep -q ERROR <<<"$1"' _ "$refresh"
check "... and the other tables' views were rebuilt" [ "$(psql_ -c "SELECT count(*) FROM pg_views WHERE viewname = 'kept_decrypted'" $db)" = 1 ]
for statement in "INSERT INTO m.moods VALUES (1, 'happy')" "SELECT akko_crypt.unprotect('m.moods', 'mood')" "SELECT akko_crypt.create_view('m.moods')"; do
    check "with the type gone, $statement: 42704, not an internal error" refused 42704 "$(keyed_as postgres $db -c "$statement")"
done
# A view of mallory's table that a superuser built stops only that table in her refresh.
keyed_as mallory $db -c "CREATE TABLE m.other (id int PRIMARY KEY, ssn text)" -c "SELECT akko_crypt.protect('m.other', 'ssn')" >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.create_view('m.other')" >/dev/null
refresh=$(keyed_as mallory $db -c "SELECT akko_crypt.refresh_views()")
check "mallory's refresh_views warns about the view a superuser owns and rebuilds her own" \
    bash -c 'grep -q "WARNING:  01000: akko_crypt: the views of table other were not rebuilt: must be" <<<"$1" && ! grep -q ERROR <<<"$1" && [ "$(tail -1 <<<"$1")" -ge 1 ]' _ "$refresh"

# reencrypt's context is one expression: it cannot close itself and run statements.
keyed_as postgres $db -c "CREATE TABLE public.r (id int PRIMARY KEY, v bytea)" \
    -c "INSERT INTO public.r VALUES (1, akko_crypt.seal_pii('{}'))" >/dev/null
for context in "NULL) FROM ONLY public.r LIMIT 0; CREATE TABLE public.injected (x int); SELECT (NULL" "NULL) FROM pg_authid --" "NULL), (1"; do
    check "reencrypt refuses a context that is more than an expression (42601): $context" \
        refused 42601 "$(keyed_as postgres $db -c "CALL akko_crypt.reencrypt('public.r', 'v', 10, \$\$$context\$\$)")"
done
check "... and nothing it carried ran" [ "$(psql_ -c "SELECT to_regclass('public.injected') IS NULL" $db)" = t ]
