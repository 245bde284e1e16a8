# Issue 16, finding 1: a protected table restored from a table-level or schema-only dump
# came without its registry rows, and its trigger then stored new rows in clear. The
# trigger carries what it protects in its own arguments now and refuses every write until
# the registry agrees; status() lists the table; restore_protection registers it again from
# the trigger, and the restored rows open with the same root.
db=atk_restore
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE ROLE dba2 LOGIN" -c "CREATE ROLE clerk LOGIN" \
    -c "SELECT akko_crypt.grant_privilege('protect', 'dba2'), akko_crypt.grant_privilege('seal', 'dba2')" \
    -c "CREATE TABLE public.customers (id int PRIMARY KEY, name text, tax_id text, born date, notes jsonb)" \
    -c "ALTER TABLE public.customers OWNER TO dba2" -c "GRANT CREATE ON SCHEMA public TO dba2" \
    -c "INSERT INTO customers VALUES (1, 'Ada', '078-05-1120', '1815-12-10', '{\"vip\": true}')" \
    -c "SELECT akko_crypt.protect('customers', 'tax_id', bind_row => true, blind_index => true, unique_index => true)" \
    -c "SELECT akko_crypt.protect('customers', 'born')" \
    -c "SELECT akko_crypt.protect('customers', 'notes', mode => 'jsonb')" \
    -c "SET ROLE dba2" -c "SELECT akko_crypt.create_view('customers')" >/dev/null
check "control: three columns are protected, their rows open through the view" \
    [ "$(keyed_as postgres $db -c "SELECT tax_id || ' ' || born || ' ' || (SELECT count(*) FROM akko_crypt.protected_columns) FROM customers_decrypted")" = "078-05-1120 1815-12-10 3" ]
pg_dump -h "$dir" -p "$port" -U postgres -t customers -t customers_decrypted $db >"$dir/restore_table.sql"
pg_dump -h "$dir" -p "$port" -U postgres --schema-only $db >"$dir/restore_schema.sql"

# The DBA drops the table by mistake and restores it from the table-level dump.
psql_ -c "DROP TABLE customers CASCADE" $db >/dev/null
psql -X -q -h "$dir" -p "$port" -U postgres -v ON_ERROR_STOP=1 -f "$dir/restore_table.sql" $db >/dev/null 2>"$dir/restore_table.err"
check "the table-level dump restores (the trigger with it), without error" [ ! -s "$dir/restore_table.err" ]
count() { psql_ -c "SELECT count(*) FROM customers" "$1"; }
out=$(keyed_as postgres $db -c "INSERT INTO customers (id, name, tax_id) VALUES (2, 'Ben', '219-09-9999')")
check "a plaintext INSERT into the restored table is refused (55000), nothing stored" \
    bash -c 'grep -q "ERROR:  55000:" <<<"$1" && grep -q "restore_protection" <<<"$1" && [ "$2" = 1 ]' _ "$out" "$(count $db)"
out=$(keyed_as postgres $db -c "INSERT INTO customers_decrypted (id, name, tax_id) VALUES (2, 'Ben', '219-09-9999')")
check "... and through the restored view, 55000, nothing stored" \
    bash -c 'grep -q "ERROR:  55000:" <<<"$1" && [ "$2" = 1 ]' _ "$out" "$(count $db)"
out=$(keyed_as postgres $db -c "UPDATE customers SET name = 'Ada L.'" -c "COPY customers (id, tax_id) FROM PROGRAM 'echo 3,555-55-5555' WITH (FORMAT csv)")
check "... and so are an UPDATE and a COPY" \
    bash -c '[ "$(grep -c "ERROR:  55000:" <<<"$1")" = 2 ] && [ "$2" = 1 ]' _ "$out" "$(count $db)"
check "status() lists the table under incomplete_protection with its three columns" \
    [ "$(keyed_as postgres $db -c "SELECT akko_crypt.status() -> 'incomplete_protection'")" = '[{"table": "public.customers", "columns": ["born", "notes", "tax_id"]}]' ]
out=$(keyed_as postgres $db -c "SELECT akko_crypt.protect('customers', 'name')" \
    -c "SELECT akko_crypt.create_view('customers', 'customers_v2')" -c "SELECT akko_crypt.unprotect('customers', 'born')")
check "protect, create_view and unprotect refuse the table meanwhile (55000 each): a trigger made from the registry alone would seal nothing restored" \
    bash -c '[ "$(grep -c "ERROR:  55000:" <<<"$1")" = 3 ] && [ "$2" = 0 ]' _ "$out" "$(psql_ -c "SELECT count(*) FROM akko_crypt.protected_columns WHERE tbl = 'customers'::regclass" $db)"
out=$(run_as clerk $db -c "SELECT akko_crypt.restore_protection('customers')")
check "a role without protect cannot restore the registry rows (42501)" refused 42501 "$out"
out=$(keyed_as postgres $db -c "SET ROLE dba2" -c "SELECT akko_crypt.restore_protection('customers')")
check "nor can the owner with protect and seal only: tax_id's blind-index key tests guesses, which needs open (42501)" \
    bash -c 'grep -q "ERROR:  42501:" <<<"$1" && grep -q "open" <<<"$1"' _ "$out"
psql_ -c "SELECT akko_crypt.grant_privilege('open', 'dba2', 'identity')" $db >/dev/null
out=$(keyed_as postgres $db -c "SET ROLE dba2" -c "SELECT akko_crypt.restore_protection('customers')")
check "the table's owner, who may protect, seal and open, restores them: three columns" [ "$out" = 3 ]
check "... status() has nothing incomplete any more" \
    [ "$(keyed_as postgres $db -c "SELECT akko_crypt.status() -> 'incomplete_protection'")" = '[]' ]
check "... a second restore_protection registers nothing" \
    [ "$(keyed_as postgres $db -c "SET ROLE dba2" -c "SELECT akko_crypt.restore_protection('customers')")" = 0 ]
keyed_as postgres $db -c "INSERT INTO customers (id, name, tax_id, born, notes) VALUES (2, 'Ben', '219-09-9999', '1990-01-02', '{\"vip\": false}')" >/dev/null
check "writes seal again: no plaintext in the table" \
    [ "$(psql_ -c "SELECT count(*) FROM customers WHERE position('219-09'::bytea IN tax_id) > 0 OR notes::text LIKE '%\"vip\"%' OR position('1990-01'::bytea IN born) > 0" $db)" = 0 ]
check "... the restored view is akko_crypt's again: refresh_views rebuilds it" \
    [ "$(keyed_as postgres $db -c "SET ROLE dba2" -c "SELECT akko_crypt.refresh_views()")" = 1 ]
check "the restored rows and the new ones open through the restored view, row binding and all" \
    [ "$(keyed_as postgres $db -c "SELECT string_agg(tax_id || ' ' || born || ' ' || (notes->>'vip'), '; ' ORDER BY id) FROM customers_decrypted")" = "078-05-1120 1815-12-10 true; 219-09-9999 1990-01-02 false" ]
out=$(keyed_as postgres $db -c "INSERT INTO customers (id, name, tax_id) VALUES (3, 'Dup', '078-05-1120')")
check "the restored unique blind index refuses a duplicate (23505) without naming the value" \
    bash -c 'grep -q "ERROR:  23505:" <<<"$1" && ! grep -q "078-05" <<<"$1"' _ "$out"
check "a blind-index lookup finds the restored row" \
    [ "$(keyed_as postgres $db -c "SELECT id FROM customers WHERE tax_id_bidx = akko_crypt.blind_index('078-05-1120', 'customers', 'tax_id')")" = 1 ]

# A schema-only restore into another database: triggers, no registry rows.
new_db atk_restore_schema >/dev/null
psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/restore_schema.sql" atk_restore_schema >/dev/null 2>&1
keyed_as postgres atk_restore_schema -c "SELECT akko_crypt.rotate_key('identity')" >/dev/null
out=$(keyed_as postgres atk_restore_schema -c "INSERT INTO customers (id, name, tax_id) VALUES (1, 'Cy', '555-55-5555')")
check "after a schema-only restore the first write is refused (55000), nothing stored" \
    bash -c 'grep -q "ERROR:  55000:" <<<"$1" && [ "$2" = 0 ]' _ "$out" "$(count atk_restore_schema)"
check "... and status() names the table" \
    [ "$(keyed_as postgres atk_restore_schema -c "SELECT akko_crypt.status() -> 'incomplete_protection' -> 0 ->> 'table'")" = public.customers ]

# The owner, who may protect and so execute protect_row(), makes the trigger carry less: the
# registry and the trigger disagree, and nothing is written.
out=$(keyed_as postgres $db -c "SET ROLE dba2" -c "BEGIN" -c "DROP TRIGGER zz_akko_crypt_protect ON customers" \
    -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row()" \
    -c "INSERT INTO customers (id, name, tax_id) VALUES (4, 'Eve', '666-66-6666')" -c "ROLLBACK")
check "a trigger made again without its arguments refuses to write (55000)" refused 55000 "$out"
out=$(keyed_as postgres $db -c "SET ROLE dba2" -c "BEGIN" -c "DROP TRIGGER zz_akko_crypt_protect ON customers" \
    -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row('{\"column\": \"tax_id\"}')" \
    -c "INSERT INTO customers (id, name, tax_id) VALUES (4, 'Eve', '666-66-6666')" -c "ROLLBACK")
check "... and one whose arguments name other settings, too" refused 55000 "$out"
out=$(keyed_as postgres $db -c "CREATE TABLE plain (id int, v bytea)" \
    -c "CREATE TRIGGER t BEFORE INSERT ON plain FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row()" \
    -c "INSERT INTO plain VALUES (1, 'clear')")
check "protect_row() on a table akko_crypt does not protect refuses (55000)" \
    bash -c 'grep -q "ERROR:  55000:" <<<"$1" && [ "$2" = 0 ]' _ "$out" "$(psql_ -c "SELECT count(*) FROM plain" $db)"

# Review's variants. A trigger of that name that runs another function, made by any role that
# may create a table, is not akko_crypt's: status() neither fails nor lists it; one that runs
# protect_row() with arguments akko_crypt never writes refuses writes with 55000 (never XX000).
psql_ -c "CREATE ROLE squatter LOGIN" -c "GRANT CREATE ON SCHEMA public TO squatter" $db >/dev/null
run_as squatter $db -c "CREATE TABLE sq (id int)" -c "CREATE FUNCTION sq_noop() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NEW; END \$\$" \
    -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT ON sq FOR EACH ROW EXECUTE FUNCTION sq_noop('{}')" >/dev/null
check "a look-alike trigger of another function leaves status() working, and unlisted" \
    [ "$(keyed_as postgres $db -c "SELECT akko_crypt.status() -> 'incomplete_protection'")" = '[]' ]
for args in "'{}'" "'[]'" "'not json'" "'\"a string\"'"; do
    out=$(keyed_as postgres $db -c "SET ROLE dba2" -c "CREATE TABLE odd_args (id int, v bytea)" \
        -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT ON odd_args FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row($args)" \
        -c "INSERT INTO odd_args VALUES (1, 'clear')" -c "RESET ROLE" -c "SELECT akko_crypt.status() ->> 'cipher'" -c "DROP TABLE odd_args")
    check "protect_row($args): the write is refused (55000, never XX000) and status() still answers" \
        bash -c 'grep -q "ERROR:  55000:" <<<"$1" && ! grep -q XX000 <<<"$1" && grep -q "AES-256-GCM" <<<"$1"' _ "$out"
done
# A role that may protect and seal (not open) copies the restored table's trigger arguments
# onto a table of its own to take its row bindings: refused while the table carries them.
psql_ -c "CREATE ROLE thief LOGIN" -c "GRANT CREATE ON SCHEMA public TO thief" -c "GRANT SELECT ON customers TO thief" \
    -c "SELECT akko_crypt.grant_privilege('protect', 'thief'), akko_crypt.grant_privilege('seal', 'thief')" $db >/dev/null
out=$(run_as thief $db -c "CREATE TABLE loot (id int PRIMARY KEY, born bytea)" \
    -c "DO \$\$ DECLARE a text; BEGIN
          SELECT x INTO a FROM pg_trigger g, unnest(string_to_array(rtrim(encode(g.tgargs, 'escape'), '\\000'), '\\000')) x
           WHERE g.tgrelid = 'customers'::regclass AND x LIKE '%\"born\"%';
          EXECUTE format('CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON loot FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row(%L)', a);
        END \$\$" -c "SELECT akko_crypt.restore_protection('loot')")
check "a copied binding id is refused: another table's trigger carries it (55000)" \
    bash -c 'grep -q "ERROR:  55000:.*same row binding" <<<"$1"' _ "$out"
# A superuser's restore_protection takes back only views of the table's owner or its own.
psql_ -c "DROP TABLE customers CASCADE" $db >/dev/null
psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/restore_table.sql" $db >/dev/null 2>&1
run_as thief $db -c "CREATE VIEW public.customers_lookalike AS SELECT id, tax_id FROM customers" \
    -c "COMMENT ON VIEW public.customers_lookalike IS 'Decrypting view of public.customers made by akko_crypt.create_view; x'" >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.restore_protection('customers')" >/dev/null
check "a superuser's restore adopts the owner's restored view, not a look-alike of another role" \
    [ "$(psql_ -c "SELECT string_agg(view_name, ' ' ORDER BY view_name) FROM akko_crypt.decrypted_views" $db)" = customers_decrypted ]
# What protect refuses, restore_protection refuses too: a generated column that would
# replace the sealed value, inheritance, the blind_index class.
carried_for() { # carried_for COLUMN CLASS: trigger arguments for a bytea column of type text
    printf "'{\"mode\": \"bytea\", \"type\": \"text\", \"class\": \"%s\", \"column\": \"%s\", \"bind_row\": false, \"binding_id\": \"%s\", \"blind_index\": null, \"normalization\": null, \"plaintext_column\": null, \"restore_not_null\": false, \"blind_index_key_version\": null}'" "$2" "$1" "$3"
}
out=$(keyed_as postgres $db -c "CREATE TABLE gen (id int PRIMARY KEY, src text, secret bytea GENERATED ALWAYS AS (decode(src, 'escape')) STORED)" \
    -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON gen FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row($(carried_for secret identity 000000000000000000000000000000a1))" \
    -c "SELECT akko_crypt.restore_protection('gen')" \
    -c "CREATE TABLE par_t (id int PRIMARY KEY, v bytea)" -c "CREATE TABLE child_t () INHERITS (par_t)" \
    -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON par_t FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row($(carried_for v identity 000000000000000000000000000000a2))" \
    -c "SELECT akko_crypt.restore_protection('par_t')" \
    -c "CREATE TABLE bi_t (id int PRIMARY KEY, v bytea)" \
    -c "CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON bi_t FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row($(carried_for v blind_index 000000000000000000000000000000a3))" \
    -c "SELECT akko_crypt.restore_protection('bi_t')")
check "restore_protection refuses a generated column and inheritance (0A000 both) and the blind_index class (22023)" \
    bash -c '[ "$(grep -c "ERROR:  0A000:" <<<"$1")" = 2 ] && grep -q "ERROR:  22023:" <<<"$1"' _ "$out"
# A jsonb column whose online migration had not run when the table was dumped: restored, it
# is still migrating, and the migration seals what it holds.
keyed_as postgres $db -c "CREATE TABLE docs (id int PRIMARY KEY, body jsonb)" -c "INSERT INTO docs VALUES (1, '{\"secret\": \"DOCSECRET\"}')" \
    -c "SELECT akko_crypt.protect('docs', 'body', migrate => false)" >/dev/null
pg_dump -h "$dir" -p "$port" -U postgres -t docs $db >"$dir/restore_docs.sql"
psql_ -c "DROP TABLE docs" $db >/dev/null
psql -X -q -h "$dir" -p "$port" -U postgres -f "$dir/restore_docs.sql" $db >/dev/null 2>&1
out=$(keyed_as postgres $db -c "SELECT akko_crypt.restore_protection('docs')" \
    -c "SELECT state FROM akko_crypt.protected_columns WHERE tbl = 'docs'::regclass" -c "CALL akko_crypt.migrate('docs')")
check "a restored jsonb column mid-migration is registered as migrating, and the migration seals it" \
    bash -c 'grep -q "^migrating$" <<<"$1" && [ "$2" = 0 ]' _ "$out" \
    "$(psql_ -c "SELECT count(*) FROM docs WHERE body::text LIKE '%DOCSECRET%'" $db)"
