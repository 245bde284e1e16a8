#!/usr/bin/env bash
# The secret-leak scan: runs the whole demo (demo/demo.sh) on a cluster that logs every
# statement and its duration at debug1, with pg_stat_statements and auto_explain (every plan,
# nested statements included) loaded, while pg_stat_activity is sampled; then searches the
# server log, pg_stat_statements, the samples and a pg_dump of the demo database for both root
# keys (the demo's, and the one Transit made), every data and blind-index key, both Vault tokens
# and every personal value of the demo (demo/people.csv). Controls show that each place
# recorded the demo and that the search finds what it looks for.
#   tests/leaks.sh DIR PORT   (uses DIR-leaks, DIR-leakscan and ports PORT+6, PORT+26)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1-leaks port=$(($2 + 6))
. "$here/checks.sh"
scan=$1-leakscan
rm -rf "$scan" && mkdir -p "$scan"
bao=${AKKO_BAO:-$here/../.venv/bin/bao}
python=$here/../.venv/bin/python

export AKKO_DEMO_DIR=$dir AKKO_DEMO_PORT=$port AKKO_DEMO_KEEP=1
AKKO_DEMO_KEY=$(head -c 32 /dev/urandom | base64)
export AKKO_DEMO_KEY
export AKKO_CLUSTER_SETTINGS="shared_preload_libraries = 'akko_crypt,pg_stat_statements,auto_explain'
pg_stat_statements.track = all
pg_stat_statements.track_utility = on
auto_explain.log_min_duration = 0
auto_explain.log_analyze = on
auto_explain.log_verbose = on
auto_explain.log_nested_statements = on
log_min_duration_statement = 0
log_parameter_max_length_on_error = -1"

# pg_stat_activity, sampled by one connection as often as it can, until the demo ends. Each
# sample ends with a line 'sample'. The connection is retried while the cluster is not up.
sample_activity() {
    while [ ! -e "$scan/demo_done" ]; do
        while [ ! -e "$scan/demo_done" ]; do
            echo "COPY (SELECT datname, state, query FROM pg_stat_activity
                        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) TO STDOUT;"
            echo '\echo sample'
            sleep 0.005
        done | psql_ postgres >>"$scan/activity.txt" 2>/dev/null || sleep 0.05
    done
}
# The demo leaves its cluster and OpenBao running for the scan; they stop when this script ends,
# however it ends.
stop_demo() {
    touch "$scan/demo_done"
    if [ -f "$dir/bao.pid" ]; then kill "$(cat "$dir/bao.pid")" 2>/dev/null; fi
    "$here/cluster.sh" stop "$dir"
}
trap stop_demo EXIT
sample_activity &
sampler=$!
"$here/../demo/demo.sh" >"$scan/demo.out" 2>&1
demo_status=$?
touch "$scan/demo_done"
wait $sampler
check "the demo ran to the end" [ "$demo_status" -eq 0 ]
[ "$demo_status" -eq 0 ] || { tail -20 "$scan/demo.out"; exit 1; }

# The haystacks, taken before this script sends statements of its own.
cp "$dir/server.log" "$scan/server.log"
psql_ -c "CREATE EXTENSION pg_stat_statements" postgres
psql_ -c "COPY (SELECT query FROM pg_stat_statements) TO STDOUT" postgres >"$scan/pg_stat_statements.txt"
pg_dump -h "$dir" -p "$port" -U postgres demo >"$scan/pg_dump.sql"

vector() { grep -m1 "^$1 " "$here/../docs/FORMAT.md" | awk '{ print $3 }'; }
from_vector=$(echo "wrapped|$(vector class)|$(vector key_version)|$(vector wrapped_key)" |
    "$python" "$here/keyring_keys.py" "$(vector root_key)" | head -2)
check "control: keyring_keys.py reproduces the fingerprint and data key of FORMAT.md's first vector" \
    [ "$from_vector" = "fingerprint $(vector fingerprint)"$'\n'"$(vector data_key)" ]

# The needles. The Transit root is recovered from its wrapped form with the dev server's root
# token; keyring_keys.py unwraps every data key with the roots and derives the blind-index
# key, checking each against what the database stores.
export BAO_ADDR="http://127.0.0.1:$((port + 20))" BAO_TOKEN=akko-demo-root
transit_root=$("$bao" write -field=plaintext transit/decrypt/akko_root \
    ciphertext="$(psql_ -c "SELECT wrapped_root FROM akko_crypt.transit_root" demo)")
{
    psql_ -F '|' -c "SELECT 'wrapped', class, version, encode(wrapped_key, 'hex') FROM akko_crypt.keyring
                     WHERE wrapped_key IS NOT NULL ORDER BY class, version" demo
    psql_ -F '|' -c "SELECT 'blind_index', encode(p.binding_id, 'hex'), p.bidx_key_version, encode(b.email_bidx, 'hex'), b.id
                     FROM bank_customers b, akko_crypt.protected_columns p
                     WHERE p.tbl = 'bank_customers'::regclass AND p.col = 'email' ORDER BY b.id" demo |
        while IFS='|' read -r kind binding version stored id; do
            echo "$kind|$binding|$version|$stored|$(awk -F, -v id="$id" '$1 == id { print $5 }' "$here/../demo/people.csv")"
        done
    # Every value the demo left that is not a (forgotten) subject's, with its context.
    psql_ -F '|' -c "SELECT 'envelope', encode(v, 'hex'), coalesce(encode(ctx, 'hex'), '-') FROM (
        SELECT pii AS v, CASE id WHEN 2 THEN 'customers:2'::bytea END AS ctx FROM customers WHERE get_byte(pii, 5) & 2 = 0
        UNION ALL SELECT name, NULL FROM bank_customers UNION ALL SELECT tax_id, NULL FROM bank_customers
        UNION ALL SELECT email, NULL FROM bank_customers
        UNION ALL SELECT b.dob, akko_crypt.row_context(p.binding_id, b.id) FROM bank_customers b, akko_crypt.protected_columns p
                  WHERE p.tbl = 'bank_customers'::regclass AND p.col = 'dob'
        UNION ALL SELECT decode(pii ->> '\$akko', 'base64'), NULL FROM events WHERE pii IS NOT NULL) e" demo
} >"$scan/keyring_rows.txt"
"$python" "$here/keyring_keys.py" "$AKKO_DEMO_KEY" "$transit_root" <"$scan/keyring_rows.txt" >"$scan/keys.txt"
check "every wrapped key opens under a root, every blind index matches its key, every value opens under its value key (keyring_keys.py)" [ $? -eq 0 ]
keys=$(grep -vc '^fingerprint' "$scan/keys.txt")
wrapped=$(grep -c '^wrapped' "$scan/keyring_rows.txt")
envelopes=$(grep -c '^envelope' "$scan/keyring_rows.txt")
check "keys to look for: $wrapped data keys, 1 blind-index key, 1 subject lookup key and the value keys of $envelopes values, in 3 encodings each ($keys)" \
    [ "$keys" -gt $(((wrapped + 2) * 3)) ]
demo_fingerprint=$(sed -n 1p "$scan/keys.txt" | cut -d' ' -f2)
transit_fingerprint=$(sed -n 2p "$scan/keys.txt" | cut -d' ' -f2)
check "the demo showed the fingerprint of its key" grep -qx " $demo_fingerprint" "$scan/demo.out"
check "the demo showed the fingerprint of the root Transit made" grep -qx " $transit_fingerprint" "$scan/demo.out"

needles=$scan/needles.txt
{
    for root in "$AKKO_DEMO_KEY" "$transit_root"; do
        echo "$root" | tr -d '='
        echo "$root" | base64 -d | od -An -tx1 | tr -d ' \n'
        echo
    done
    grep -v '^fingerprint' "$scan/keys.txt"
    echo "$BAO_TOKEN"
    cat "$dir/vault.token"
    echo
    tail -n +2 "$here/../demo/people.csv" | cut -d, -f2- | tr , '\n'
} | grep -v '^$' >"$needles"
check "needles: 2 roots in 2 encodings, $keys key encodings, 2 Vault tokens, 15 personal values ($(wc -l <"$needles"))" \
    [ "$(wc -l <"$needles")" -eq $((4 + keys + 2 + 15)) ]

# Each place recorded the demo: statements, plans, nested statements, samples and rows.
statements=$(grep -cE '@demo LOG:  statement: ' "$scan/server.log")
plans=$(grep -cE '@demo LOG:  duration: [0-9.]+ ms  plan:' "$scan/server.log")
check "control: the server log has the demo's statements ($statements) and their durations" \
    grep -qE 'statement: COPY +people FROM STDIN' "$scan/server.log"
check "control: the server log has auto_explain plans ($plans), the migration's nested statements too" \
    grep -q 'Query Text: UPDATE ONLY public.bank_customers' "$scan/server.log"
check "control: the server log has debug1 messages" grep -q 'DEBUG:' "$scan/server.log"
check "control: pg_stat_statements kept the demo's statements ($(wc -l <"$scan/pg_stat_statements.txt") entries)" \
    grep -q 'akko_crypt.seal_pii' "$scan/pg_stat_statements.txt"
samples=$(grep -c '^sample$' "$scan/activity.txt")
seen=$(grep -c 'akko_crypt\.' "$scan/activity.txt")
check "control: $samples pg_stat_activity samples, $seen rows showing a demo statement" [ "$samples" -ge 20 -a "$seen" -ge 1 ]
check "control: the dump holds the protected tables' rows" \
    grep -q '^COPY public.bank_customers (id, name, tax_id, dob, email, email_bidx) FROM stdin;' "$scan/pg_dump.sql"
check "control: the search finds every personal value in the demo's own output (its client's screen)" \
    [ "$(grep -oiFf <(tail -n +2 "$here/../demo/people.csv" | cut -d, -f2- | tr , '\n') "$scan/demo.out" | sort -u | wc -l)" -eq 15 ]

hits_in() { # hits_in FILE: how many needles FILE contains, case-insensitively
    local hits=0 needle
    while IFS= read -r needle; do
        if grep -qiF -- "$needle" "$1"; then hits=$((hits + 1)); fi
    done <"$needles"
    echo $hits
}
for haystack in server.log pg_stat_statements.txt activity.txt pg_dump.sql; do
    hits=$(hits_in "$scan/$haystack")
    check "$haystack ($(wc -c <"$scan/$haystack") bytes): $hits of the $(wc -l <"$needles") secrets and personal values" [ "$hits" -eq 0 ]
done
check "the server log shows no backend crash" \
    bash -c "! grep -qE 'terminated by signal|PANIC|server process .* was terminated' '$scan/server.log'"

echo "leaks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
