#!/usr/bin/env bash
# Instructions per row, counted by callgrind: the one figure this noisy machine repeats
# exactly. Each statement runs in a single-user backend on the benchmark's stopped cluster,
# once for 1 row and once for 10,001; the difference over 10,000 is the cost of a row.
# Under valgrind the crypto crates take their portable code paths (no AES-NI or SHA
# extensions), so the instructions spent in them are counted apart and left out: the
# rest is what PostgreSQL and the trigger or view do around the cryptography.
#   bench/instructions.sh DATADIR ROOT_KEY   prints NAME|OTHER|CRYPTO, one line a statement
set -euo pipefail
data=$1 key=$2
work=$(mktemp -d)
chown postgres: "$work"
trap 'rm -rf "$work"' EXIT
crypto='sha2::|aes::|polyval|ghash|aead::|aes_gcm|cipher::|universal_hash|digest::|hmac::|ctr::|inout::'

# run SETUP STATEMENT: "CRYPTO OTHER" instructions of the whole single-user session
run() {
    rm -f "$work/cg.out"
    printf '%s\n' "SELECT set_config('akko_crypt.key', '$key', false);" "$1" "$2" |
        sudo -u postgres env -u RUST_BACKTRACE valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
            /usr/lib/postgresql/15/bin/postgres --single -D "$data" postgres >"$work/out" 2>/dev/null
    if grep -q ERROR "$work/out"; then grep ERROR "$work/out" >&2; exit 1; fi
    callgrind_annotate --threshold=100 "$work/cg.out" 2>/dev/null |
        awk -v crypto="$crypto" '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ {
            n = $1; gsub(",", "", n); if ($0 ~ crypto) c += n; else o += n }
            END { printf "%d %d\n", c, o }'
}
# per_row NAME SETUP STATEMENT: STATEMENT has @N@ for its row count
per_row() {
    local a b
    read -r -a a <<<"$(run "$2" "${3//@N@/1}")"
    read -r -a b <<<"$(run "$2" "${3//@N@/10001}")"
    echo "$1|$(( (b[1] - a[1]) / 10000 ))|$(( (b[0] - a[0]) / 10000 ))"
}
serial="SET max_parallel_workers_per_gather = 0;"
per_row read_plain "$serial" "COPY (SELECT * FROM plain_customers LIMIT @N@) TO '/dev/null';"
per_row read_view "$serial" "COPY (SELECT * FROM sealed_customers_decrypted LIMIT @N@) TO '/dev/null';"
per_row insert_plain "TRUNCATE plain_customers;" "INSERT INTO plain_customers SELECT * FROM src WHERE id <= @N@;"
per_row insert_ciphertext_only "TRUNCATE ciphertext_only;" "INSERT INTO ciphertext_only SELECT * FROM sealed_rows WHERE id <= @N@;"
per_row insert_protected "TRUNCATE sealed_customers;" "INSERT INTO sealed_customers_decrypted SELECT * FROM src WHERE id <= @N@;"
per_row insert_text_mode "TRUNCATE text_customers;" "INSERT INTO text_customers SELECT * FROM src WHERE id <= @N@;"
