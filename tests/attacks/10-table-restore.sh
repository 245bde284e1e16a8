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
check "the table's owner, who may protect, restores them: three columns" [ "$out" = 3 ]
check "... status() has nothing incomplete any more" \
    [ "$(keyed_as postgres $db -c "SELECT akko_crypt.status() -> 'incomplete_protection'")" = '[]' ]
check "... a second restore_protection registers nothing" \
    [ "$(keyed_as postgres $db -c "SET ROLE dba2" -c "SELECT akko_crypt.restore_protection('customers')")" = 0 ]
keyed_as postgres $db -c "INSERT INTO customers (id, name, tax_id, born, notes) VALUES (2, 'Ben', '219-09-9999', '1990-01-02', '{\"vip\": false}')" >/dev/null
check "writes seal again: no plaintext in the table" \
    [ "$(psql_ -c "SELECT count(*) FROM customers WHERE tax_id::text LIKE '%219%' OR notes::text LIKE '%vip%' OR position('\\x3139'::bytea IN born) > 0" $db)" = 0 ]
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
