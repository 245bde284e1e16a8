# A real OpenBao dev server on loopback (bao server -dev, everything in memory), for
# tests/vault.sh, demo/demo.sh and bench/bench.sh. Source it; it uses $bao, $BAO_ADDR
# (http://127.0.0.1:PORT) and $BAO_TOKEN (the dev root token).

bao_start() { # bao_start LOG: starts the server with a Transit key akko_root; sets bao_pid
    "$bao" server -dev -dev-root-token-id="$BAO_TOKEN" -dev-listen-address="${BAO_ADDR#http://}" >>"$1" 2>&1 &
    bao_pid=$!
    for _ in $(seq 100); do "$bao" status >/dev/null 2>&1 && break; sleep 0.1; done
    "$bao" secrets enable transit >/dev/null
    "$bao" write -f transit/keys/akko_root >/dev/null
}

bao_token_file() { # bao_token_file FILE POLICY...: a token with those policies, readable by postgres only
    local file=$1 policy args=()
    shift
    for policy in "$@"; do args+=("-policy=$policy"); done
    "$bao" token create "${args[@]}" -field=token >"$file"
    chown postgres: "$file" && chmod 600 "$file"
}
