# Finding 4: the key reached the server log. This cluster logs every statement, every
# duration and every bound parameter in full (log_statement = all, log_min_duration_statement
# = 0, log_parameter_max_length = -1, and on error too); auto_explain logs nested plans with
# their query text. Each way an application sets a key gets a key of its own, so a hit names
# the way: none may appear in the log, in any encoding, nor in pg_stat_activity or
# pg_stat_statements (which records utility statements, SET and DO among them, as written).
db=atk_log
new_db $db >/dev/null
psql_ -c "CREATE EXTENSION pg_stat_statements" -c "SELECT pg_stat_statements_reset()" $db >/dev/null
psql_ -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" postgres >/dev/null
psql_ -c "CREATE FUNCTION public.use_key(k text) RETURNS text LANGUAGE sql AS \$\$ SELECT set_config('akko_crypt.key', k, false) \$\$" \
      -c "CREATE FUNCTION public.use_key_plpgsql(k text) RETURNS text LANGUAGE plpgsql AS \$\$ BEGIN RETURN set_config('akko_crypt.key', k, false); END \$\$" \
      -c "CREATE FUNCTION public.load_key_bytea(k bytea) RETURNS text LANGUAGE sql AS \$\$ SELECT set_config('akko_crypt.key', encode(k, 'hex'), false) \$\$" \
      -c "CREATE FUNCTION public.nested_control() RETURNS bigint LANGUAGE plpgsql AS \$\$ BEGIN RETURN (SELECT count(*) FROM pg_namespace); END \$\$" $db
keys=() ways=()
new_key() { # new_key WAY: key= a fresh key (base64) for one way of setting it, remembered with the way
    key=$(head -c 32 /dev/urandom | base64)
    keys+=("$key") ways+=("$1")
}
new_hex_key() { key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'); keys+=("$key") ways+=("$1"); }
bench() { # bench SCRIPT KEY: runs SCRIPT once over the extended protocol with :key bound
    printf '%s\n' "$1" >"$dir/attack.sql"
    pgbench -n -t 1 -M extended -h "$dir" -p "$port" -U postgres -f "$dir/attack.sql" -D key="$2" -D name=akko_crypt.key $db >/dev/null 2>&1
}
log_start=$(stat -c %s "$dir/server.log")

new_key 'set_config($1, $2) bound'
bench "SELECT set_config(:name, :key, false);" "$key"
new_key 'an SQL wrapper function, bound'
bench "SELECT public.use_key(:key);" "$key"
new_key 'a PL/pgSQL wrapper function, bound'
bench "SELECT public.use_key_plpgsql(:key);" "$key"
new_key 'a failing statement, bound'
bench "SELECT set_config(:name, :key, false), 1 / 0;" "$key"
new_key 'rewrap, bound'
bench "SELECT akko_crypt.rewrap(:key);" "$key"
new_hex_key 'set_config hex, bound'
bench "SELECT set_config('akko_crypt.key', :key, false);" "$key"
new_key 'SET, literal'
run_as postgres $db -c "SET akko_crypt.key = '$key'" >/dev/null
new_key 'set_config, literal'
run_as postgres $db -c "SELECT set_config('akko_crypt.key', '$key', false)" >/dev/null
new_key 'PREPARE and EXECUTE'
run_as postgres $db -c "PREPARE setkey(text) AS SELECT set_config('akko_crypt.key', \$1, false)" \
    -c "EXECUTE setkey('$key')" >/dev/null
new_key 'a wrapper function, literal'
run_as postgres $db -c "SELECT public.use_key('$key')" >/dev/null
new_key 'auto_explain, nested'
run_as postgres $db -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_nested_statements = on" \
    -c "SET auto_explain.log_analyze = on" -c "SELECT public.use_key_plpgsql('$key')" -c "SELECT public.nested_control()" >/dev/null
new_key 'rewrap, literal'
run_as postgres $db -c "SELECT akko_crypt.rewrap('$key')" >/dev/null
new_key 'a DO block, literal'
run_as postgres $db -c "DO \$\$ BEGIN PERFORM set_config('akko_crypt.key', '$key', false); END \$\$" >/dev/null
new_key 'SET in a DO block, literal'
run_as postgres $db -c "DO \$\$ BEGIN SET akko_crypt.key = '$key'; END \$\$" >/dev/null
new_key 'SET, literal, then a statement that fails'
run_as postgres $db -c "SET akko_crypt.key = '$key'; SELECT 1 / 0" >/dev/null 2>&1
# The key's bytes as a bytea literal, '\x' and 64 hex digits, through a function taking bytea.
new_hex_key 'a bytea wrapper, literal'
run_as postgres $db -c "SELECT public.load_key_bytea('\\x$key')" >/dev/null
new_hex_key 'a bytea wrapper, bound'
bench "SELECT public.load_key_bytea(:key);" "\\x$key"
new_hex_key 'PREPARE with a bytea parameter, EXECUTE'
run_as postgres $db -c "PREPARE pk(bytea) AS SELECT public.load_key_bytea(\$1)" -c "EXECUTE pk('\\x$key')" >/dev/null
new_hex_key 'set_config over a bytea literal'
run_as postgres $db -c "SELECT set_config('akko_crypt.' || 'key', encode('\\x$key'::bytea, 'hex'), false)" >/dev/null
new_hex_key 'a failing statement with a bytea literal, logged as STATEMENT'
run_as postgres $db -c "SELECT public.load_key_bytea('\\x$key') FROM public.no_such_table" >/dev/null
# The same bytes spaced as bytea input allows, and in bytea's escape format (inside E'',
# so each backslash doubled).
new_hex_key 'a bytea wrapper, spaced hex'
run_as postgres $db -c "SELECT public.load_key_bytea('\\x$(sed 's/../& /g; s/ $//' <<<"$key")')" >/dev/null
new_hex_key 'a bytea wrapper, escape format'
escaped=$(for ((i = 0; i < 64; i += 2)); do printf '\\\\%03o' "0x${key:i:2}"; done)
run_as postgres $db -c "SELECT public.load_key_bytea(E'$escaped')" >/dev/null
new_hex_key 'a bytea wrapper, the halves on two lines of an E string'
run_as postgres $db -c "SELECT public.load_key_bytea(E'\\\\x${key:0:32}\\n${key:32}')" >/dev/null
new_hex_key 'a bytea wrapper, the halves around a carriage return'
run_as postgres $db -c "SELECT public.load_key_bytea('\\x${key:0:32}$(printf '\r')${key:32}')" >/dev/null
# log_parameter_max_length above 0 cuts a bound value and adds "...": the start of a key is
# not left in the log either.
new_key 'bound, with log_parameter_max_length = 40'
printf '%s\n' "SELECT public.use_key(:key);" >"$dir/attack.sql"
PGOPTIONS="-c log_parameter_max_length=40" pgbench -n -t 1 -M extended -h "$dir" -p "$port" -U postgres \
    -f "$dir/attack.sql" -D key="$key" $db >/dev/null 2>&1
new_key 'a key too long'
run_as postgres $db -c "SET akko_crypt.key = '${key}x'" >/dev/null
# A statement that an aborted transaction refuses never reaches the key's check hook; it is
# replaced in pg_stat_activity all the same, while the session sits idle.
new_key 'a literal in an aborted transaction'
printf "BEGIN;\nSELECT 1 / 0;\nSET akko_crypt.key = '%s';\n\\\\! sleep 2\nROLLBACK;\n" "$key" |
    psql -X -q -h "$dir" -p "$port" -U postgres $db >/dev/null 2>&1 &
sleeper=$!
sleep 1
psql_ -c "SELECT query FROM pg_stat_activity WHERE datname = '$db'" postgres >"$dir/attack_activity.txt"
wait $sleeper
# The key of a session is in pg_stat_activity of another session neither while nor after it is set.
new_key 'idle after set_config, literal'
printf "SELECT set_config('akko_crypt.key', '%s', false);\n\\\\! sleep 2\n" "$key" |
    psql -X -q -h "$dir" -p "$port" -U postgres $db >/dev/null 2>&1 &
sleeper=$!
sleep 1
psql_ -c "SELECT query FROM pg_stat_activity WHERE datname = '$db'" postgres >>"$dir/attack_activity.txt"
wait $sleeper
psql_ -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" postgres >/dev/null
tail -c +"$log_start" "$dir/server.log" >"$dir/attack_log.txt"
psql_ -At -c "SELECT query FROM pg_stat_statements" $db >"$dir/attack_statements.txt"

# PostgreSQL 17 writes "Parameters:", earlier majors "parameters:".
check "control: the log holds the bound statements and their parameters" \
    bash -c 'grep -q "execute <unnamed>: SELECT public.use_key(\$1)" "$1" && grep -qi "DETAIL:  parameters: \$1 = " "$1"' _ "$dir/attack_log.txt"
check "control: the log holds auto_explain's nested plans" grep -q "Query Text: (SELECT count(\*) FROM pg_namespace)" "$dir/attack_log.txt"
check "control: pg_stat_activity was sampled while both sessions idled ($(wc -l <"$dir/attack_activity.txt") rows)" \
    [ "$(grep -c "redacted" "$dir/attack_activity.txt")" -eq 2 ]
check "control: pg_stat_statements recorded the SET and DO statements ($(wc -l <"$dir/attack_statements.txt") entries)" \
    bash -c 'grep -q "^SET akko_crypt.key = " "$1" && grep -q "^DO " "$1"' _ "$dir/attack_statements.txt"
for i in "${!keys[@]}"; do
    key=${keys[$i]}
    hex=$(printf '%s' "$key" | base64 -d 2>/dev/null | od -An -tx1 | tr -d ' \n')
    hits=0
    spellings=()
    if [[ $key =~ ^[0-9a-f]{64}$ ]]; then  # a hex key: also as spaced hex and escaped bytea
        spellings+=("$(sed 's/../& /g; s/ $//' <<<"$key")")
        spellings+=("$(for ((j = 0; j < 64; j += 2)); do printf '\\%03o' "0x${key:j:2}"; done)")
        spellings+=("$(for ((j = 0; j < 64; j += 2)); do printf '\\\\%03o' "0x${key:j:2}"; done)")
    fi
    # ... and any 20 characters of it.
    for needle in "$key" "${key%%=*}" ${hex:+"$hex"} "${spellings[@]}" "${key:0:20}" "${key:24:20}"; do
        if grep -qiF -- "$needle" "$dir/attack_log.txt" "$dir/attack_activity.txt" "$dir/attack_statements.txt"; then
            hits=$((hits + 1))
        fi
    done
    check "${ways[$i]}: the key is in neither the log, pg_stat_activity nor pg_stat_statements" [ "$hits" -eq 0 ]
done
