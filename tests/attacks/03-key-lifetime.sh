# Finding 3: the key outlived lock(), RESET and DISCARD ALL in parallel workers, and a key
# from the startup options survived DISCARD ALL in the leader. Whatever way the key arrived,
# after each exit neither the leader nor a worker of a forced parallel plan opens anything,
# and SHOW and status() say so. (tests/sql/parallel.sql tries set_config and SET; the
# pgbouncer tier the next client of a pooled server connection.)
db=atk_lifetime
new_db $db >/dev/null
keyed_as postgres $db -c "CREATE TABLE par AS SELECT g, akko_crypt.seal_pii(jsonb_build_object('g', g)) AS s FROM generate_series(1, 3000) g" \
    -c "ANALYZE par" >/dev/null
opened_by() { # opened_by SQL...: after SQL, what SHOW, status() and a workers-only parallel scan say
    keyed_as postgres $db "$@" -c "SELECT 'show=' || current_setting('akko_crypt.key')" \
        -c "SELECT 'unlocked=' || (akko_crypt.status() ->> 'unlocked')" \
        -c "$parallel_only EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(akko_crypt.open_pii(s)) FROM par" \
        -c "SELECT 'leader=' || count(akko_crypt.open_pii(s)) FROM par WHERE g = 1" | grep -E "^(show|unlocked|leader)=|Workers Launched|ERROR"
}
control=$(opened_by -c "SELECT 1")
check "control: with the startup key, SHOW has the fingerprint and workers launched and opened" \
    bash -c 'grep -q "^show=c7bd0684b7e5534c" <<<"$1" && grep -q "Workers Launched: [12]" <<<"$1" && ! grep -q ERROR <<<"$1"' _ "$control"
for exit in "DISCARD ALL" "RESET ALL" "RESET akko_crypt.key" "SET akko_crypt.key TO DEFAULT" \
            "SELECT set_config('akko_crypt.key', NULL, false)" "SELECT akko_crypt.lock()" \
            "BEGIN; SELECT akko_crypt.lock(); ROLLBACK" "BEGIN; SAVEPOINT s; SELECT akko_crypt.lock(); ROLLBACK TO s; COMMIT" \
            "SELECT akko_crypt.lock(); RESET akko_crypt.key" "SELECT akko_crypt.lock(); DISCARD ALL"; do
    out=$(opened_by -c "$exit")
    check "startup key, then $exit: SHOW empty, status locked, workers and leader refuse (55000)" \
        bash -c 'grep -qx "show=" <<<"$1" && grep -qx "unlocked=false" <<<"$1" && [ "$(grep -c "ERROR:  55000: no akko_crypt key is loaded" <<<"$1")" -eq 2 ]' _ "$out"
done
for way in "SET akko_crypt.key = '$root'" "SELECT set_config('akko_crypt.key', '$root', false)"; do
    out=$(run_as postgres $db -c "$way" -c "BEGIN" -c "SELECT akko_crypt.lock()" -c "ROLLBACK" -c "SELECT 'show=' || current_setting('akko_crypt.key')" \
        -c "$parallel_only SELECT count(akko_crypt.open_pii(s)) FROM par")
    check "${way%%=*}... then a rolled-back lock(): SHOW empty, workers refuse" \
        bash -c 'grep -qx "show=" <<<"$1" && grep -q "ERROR:  55000: no akko_crypt key is loaded" <<<"$1"' _ "$out"
done
out=$(run_as postgres $db -c "BEGIN" -c "SELECT set_config('akko_crypt.key', '$root', true)" -c "SELECT count(akko_crypt.open_pii(s)) FROM par WHERE g = 2" \
    -c "COMMIT" -c "$parallel_only SELECT count(akko_crypt.open_pii(s)) FROM par")
check "a key set for one transaction (set_config(..., true)) opens in it, and no worker opens after it" \
    bash -c '[ "$(grep -c "^1$" <<<"$1")" -eq 1 ] && grep -q "ERROR:  55000" <<<"$1"' _ "$out"
out=$(run_as postgres $db -c "$parallel_only SELECT 1" -c "SET akko_crypt.handoff = ''" \
    -c "SELECT akko_crypt.open_pii(s) FROM par WHERE g = 3")
check "a session without a key cannot hand its workers one by setting akko_crypt.handoff" refused 55000 "$out"
# With Vault configured and no key loaded, a session whose privilege lookup itself plans in
# parallel (any costs a user may set) came back into that lookup from the parallel-plan hook:
# XX000 for every call. A role without unlock gets 42501, and Vault is never asked.
db=atk_reentry
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" -c "CREATE ROLE reentry_reader LOGIN" \
    -c "SELECT akko_crypt.grant_privilege('open', 'reentry_reader', 'identity')" \
    -c "CREATE TABLE public.u (id int PRIMARY KEY, email text)" -c "SELECT akko_crypt.protect('public.u', 'email')" \
    -c "INSERT INTO public.u VALUES (1, 'a@example.org')" -c "GRANT SELECT ON public.u TO reentry_reader" \
    -c "ALTER DATABASE $db SET akko_crypt.vault_addr = 'http://127.0.0.1:9'" >/dev/null
out=$(run_as reentry_reader $db -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
    -c "SET min_parallel_table_scan_size = 0" -c "SELECT count(akko_crypt.open_text(email)) FROM public.u" \
    -c "SET $force_parallel = on" -c "SELECT 1")
check "Vault configured, no key, parallel privilege lookups: 42501 for a role without unlock, then queries run; no XX000" \
    bash -c 'grep -q "ERROR:  42501:" <<<"$1" && ! grep -q XX000 <<<"$1" && grep -qx 1 <<<"$1"' _ "$out"
