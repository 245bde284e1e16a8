#!/usr/bin/env bash
# The root key from a real OpenBao (bao server -dev on loopback): KV v2 and Transit, lazy
# unlock, Vault's refusals, a black-hole address cut short by statement_timeout and
# pg_cancel_backend, and Vault stopped in the middle of a session.
#   tests/vault.sh DIR PORT BAO     (against the running test cluster)
set -uo pipefail
dir=$1 port=$2 bao=$3
# bao also listens on the next port up, for cluster traffic.
vport=$((port + 20))
export BAO_ADDR="http://127.0.0.1:$vport" BAO_TOKEN=akko-dev-root
. "$(dirname "$0")/checks.sh"
root_hex=000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
root_fingerprint=c7bd0684b7e5534c

. "$(dirname "$0")/bao.sh"
start_bao() {
    bao_start "$dir/bao.log"
    # A dev server keeps everything in memory: each start provisions it again.
    "$bao" kv put secret/akko_crypt root_key="$root_hex" >/dev/null
    "$bao" kv put secret/short root_key=c2hvcnQ= >/dev/null
    printf 'path "secret/data/akko_crypt" { capabilities = ["read"] }\npath "secret/data/short" { capabilities = ["read"] }\npath "secret/data/missing" { capabilities = ["read"] }\n' |
        "$bao" policy write akko_kv - >/dev/null
    printf 'path "transit/datakey/wrapped/akko_root" { capabilities = ["update"] }\npath "transit/decrypt/akko_root" { capabilities = ["update"] }\n' |
        "$bao" policy write akko_transit - >/dev/null
    bao_token_file "$dir/vault.token" akko_kv akko_transit
}
stop_bao() { kill "$bao_pid" 2>/dev/null; wait "$bao_pid" 2>/dev/null; }
start_bao
trap stop_bao EXIT
echo "not-a-token" >"$dir/wrong.token" && chown postgres: "$dir/wrong.token"
echo "$BAO_TOKEN" >"$dir/root.token" && chown postgres: "$dir/root.token" && chmod 600 "$dir/root.token"

psql_ -c "CREATE DATABASE akko_vault" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_vault
psql_ -c "ALTER DATABASE akko_vault SET akko_crypt.vault_addr = '$BAO_ADDR'" \
      -c "ALTER DATABASE akko_vault SET akko_crypt.vault_token_file = '$dir/vault.token'" \
      -c "ALTER DATABASE akko_vault SET akko_crypt.vault_kv_path = 'secret/data/akko_crypt'" postgres

# KV: unlock at checkout, and lazily on first use.
check "unlock() fetches the root from KV and returns its fingerprint" \
    [ "$(psql_ -c "SELECT akko_crypt.unlock()" akko_vault)" = "$root_fingerprint" ]
lazy=$(psql_ -c "SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{\"via\": \"vault\"}')) ->> 'via'" \
             -c "SHOW akko_crypt.key" -c "SELECT akko_crypt.status() ->> 'key_source'" akko_vault | paste -sd ' ')
check "the first seal unlocks by itself (lazy), SHOW gives the fingerprint, status names the source" \
    [ "$lazy" = "vault $root_fingerprint vault kv" ]
check "a value sealed with the Vault root opens with the same key given directly" \
    [ "$(psql_ -c "SELECT set_config('akko_crypt.key', '$root_hex', false) IS NULL" \
               -c "SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{\"a\": 1}')) ->> 'a'" akko_vault | tail -1)" = 1 ]
# A parallel query as the session's first use: workers get only the key their leader holds
# when the query starts, so the leader unlocks before a parallel plan that needs the key.
parallel_first=$(psql_ -c "CREATE TABLE IF NOT EXISTS par AS SELECT g FROM generate_series(1, 5000) g" \
    -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0" \
    -c "SET parallel_leader_participation = off" \
    -c "SELECT count(*) FILTER (WHERE akko_crypt.open_pii(akko_crypt.seal_pii(jsonb_build_object('g', g))) ->> 'g' = g::text) FROM par" \
    -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) SELECT count(akko_crypt.seal_pii(jsonb_build_object('g', g))) FROM par" \
    akko_vault 2>&1)
check "a parallel query as a session's first use unlocks first, and its workers seal and open" \
    [ "$(head -1 <<<"$parallel_first") $(grep -c "Workers Launched: [12]" <<<"$parallel_first")" = "5000 1" ]
unlocks=$(psql_ -c "SELECT count(*) FROM akko_crypt.audit_log WHERE operation = 'unlock' AND detail LIKE '%source vault kv%'" akko_vault)
check "each unlock is in the audit log with its source" [ "$unlocks" -ge 3 ]
locked=$(psql_ -c "SELECT akko_crypt.unlock() IS NOT NULL" -c "SELECT akko_crypt.lock()" \
               -c "SELECT akko_crypt.seal_pii('{}')" akko_vault 2>&1)
check "after lock() no lazy unlock brings the key back" grep -q "no akko_crypt key is loaded" <<<"$locked"

# A role without the privilege to unlock never makes akko_crypt ask Vault for the root: not
# through a protected table's trigger, not through seal_pii; and nothing it writes is stored.
psql_ -c "CREATE TABLE guarded (id int PRIMARY KEY, ssn text)" -c "SELECT akko_crypt.protect('guarded', 'ssn')" \
      -c "CREATE ROLE akko_seals_only LOGIN" -c "SELECT akko_crypt.grant_privilege('seal', 'akko_seals_only')" \
      -c "CREATE ROLE akko_no_grant LOGIN" -c "GRANT INSERT ON guarded TO akko_seals_only, akko_no_grant" akko_vault >/dev/null
unlocks_before=$(psql_ -c "SELECT count(*) FROM akko_crypt.audit_log WHERE operation = 'unlock'" akko_vault)
as_writer() { psql -X -q -A -t -h "$dir" -p "$port" -U "$1" -c "\\set VERBOSITY verbose" -c "$2" akko_vault 2>&1; }
out=$(as_writer akko_seals_only "INSERT INTO guarded VALUES (1, '078-05-1120')")
check "a role that may seal but not unlock: its write through the trigger gets 42501 (unlock)" \
    grep -q '42501: permission denied: role "akko_seals_only" may not unlock' <<<"$out"
out=$(as_writer akko_seals_only "SELECT akko_crypt.seal_pii('{}')")
check "... and so does its seal_pii" grep -q '42501: permission denied: role "akko_seals_only" may not unlock' <<<"$out"
out=$(as_writer akko_no_grant "INSERT INTO guarded VALUES (2, '078-05-1120')")
check "a role with no akko_crypt privilege: 42501 (seal), before any key is sought" \
    grep -q '42501: permission denied: role "akko_no_grant" may not seal' <<<"$out"
check "neither made akko_crypt unlock from Vault, and nothing was stored" \
    [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.audit_log WHERE operation = 'unlock'" -c "SELECT count(*) FROM guarded" akko_vault | paste -sd ' ')" = "$unlocks_before 0" ]

# Vault's refusals, per role: each role can log in with its own identity.
refusal() { # refusal ROLE SETTING VALUE: the error a fresh session of ROLE meets
    psql_ -c "DROP ROLE IF EXISTS $1" -c "CREATE ROLE $1 LOGIN" \
          -c "SELECT akko_crypt.grant_privilege('seal', '$1'), akko_crypt.grant_privilege('unlock', '$1')" \
          -c "ALTER ROLE $1 SET $2 = '$3'" akko_vault >/dev/null
    psql -X -q -A -t -h "$dir" -p "$port" -U "$1" -c "\\set VERBOSITY verbose" \
         -c "SELECT akko_crypt.seal_pii('{}')" akko_vault 2>&1
}
out=$(refusal akko_wrong_token akko_crypt.vault_token_file "$dir/wrong.token")
check "a wrong token: 42501 with Vault's own message" grep -q "42501: .*HTTP 403: permission denied" <<<"$out"
out=$(refusal akko_missing akko_crypt.vault_kv_path secret/data/missing)
check "a missing secret: 42704" grep -q "42704: .*HTTP 404" <<<"$out"
out=$(refusal akko_short akko_crypt.vault_kv_path secret/data/short)
check "a secret that is not a 32-byte key: 22023, the value not echoed" \
    bash -c "grep -q '22023: the root key from vault kv is not 32 bytes' <<<'$out' && ! grep -q 'c2hvcnQ' <<<'$out'"

# A black hole: a listener that accepts and never answers.
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $((vport + 5)))); s.listen(16); held = []
while True: held.append(s.accept())" &
hole=$!
# Ready once it accepts (a loaded machine may take longer than any fixed sleep to start it).
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$((vport + 5))) 2>/dev/null && break; sleep 0.1; done
hole_session() { # hole_session SQL...: a superuser session pointed at the black hole
    psql_ -c "SET akko_crypt.vault_addr = 'http://127.0.0.1:$((vport + 5))'" "$@" akko_vault 2>&1
}
elapsed() { local t0=$(date +%s%N); "$@" >"$dir/hole.out"; echo $(( ($(date +%s%N) - t0) / 1000000 )); }
ms=$(elapsed hole_session -c "SET akko_crypt.vault_timeout = 400" -c "SELECT akko_crypt.unlock()")
check "akko_crypt.vault_timeout ends the wait: 08006 after ${ms} ms" \
    bash -c "grep -q 'Vault did not answer in time' '$dir/hole.out' && [ $ms -lt 2500 ]"
ms=$(elapsed hole_session -c "SET akko_crypt.vault_timeout = 60000" -c "SET statement_timeout = 300" -c "SELECT akko_crypt.unlock()")
check "statement_timeout cuts the wait short (${ms} ms)" \
    bash -c "grep -q 'canceling statement due to statement timeout' '$dir/hole.out' && [ $ms -lt 2500 ]"
(sleep 0.7; psql_ -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%akko_crypt.unlock()%' AND pid <> pg_backend_pid()" postgres >/dev/null) &
ms=$(elapsed hole_session -c "SET akko_crypt.vault_timeout = 60000" -c "SELECT akko_crypt.unlock()")
check "pg_cancel_backend cuts the wait short (${ms} ms)" \
    bash -c "grep -q 'canceling statement due to user request' '$dir/hole.out' && [ $ms -lt 3000 ]"
kill $hole

# Vault stopped in the middle of a session: the session keeps working, a new one fails
# fast and clearly, and once Vault is back the next call succeeds.
cat >"$dir/vault_down.sql" <<SQL
SELECT akko_crypt.unlock() = '$root_fingerprint' AS unlocked;
\\! kill $bao_pid; sleep 0.5
SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{"while": "down"}')) ->> 'while' AS still_sealing;
SQL
out=$(psql_ -f "$dir/vault_down.sql" akko_vault 2>&1 | paste -sd ' ')
check "a session holding the key keeps sealing while Vault is down" [ "$out" = "t down" ]
fresh_seal() { psql_ -c "SELECT akko_crypt.seal_pii('{}')" akko_vault 2>&1; }
ms=$(elapsed fresh_seal)
check "a new session fails fast and clearly while Vault is down (${ms} ms)" \
    bash -c "grep -q 'could not reach Vault' '$dir/hole.out' && [ $ms -lt 2500 ]"
start_bao
check "once Vault is back the next session unlocks with no operator action" \
    [ "$(psql_ -c "SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{\"back\": true}')) ->> 'back'" akko_vault)" = true ]

# Transit: the root is created by Transit and stored only wrapped; every unlock decrypts it.
psql_ -c "CREATE DATABASE akko_transit" postgres
psql_ -c "CREATE EXTENSION akko_crypt" akko_transit
psql_ -c "ALTER DATABASE akko_transit SET akko_crypt.vault_addr = '$BAO_ADDR'" \
      -c "ALTER DATABASE akko_transit SET akko_crypt.vault_token_file = '$dir/vault.token'" \
      -c "ALTER DATABASE akko_transit SET akko_crypt.vault_transit_key = 'akko_root'" postgres
out=$(psql_ -c "SELECT akko_crypt.seal_pii('{}')" akko_transit 2>&1)
check "Transit mode before vault_init_transit: a clear error" grep -q "no Transit-wrapped root key" <<<"$out"
transit_fp=$(psql_ -c "SELECT akko_crypt.vault_init_transit()" akko_transit)
check "vault_init_transit returns the new root's fingerprint" grep -qE '^[0-9a-f]{16}$' <<<"$transit_fp"
psql_ -c "CREATE TABLE t (v bytea)" -c "INSERT INTO t SELECT akko_crypt.seal_pii('{\"transit\": true}')" akko_transit
check "a new session unlocks through Transit and opens" \
    [ "$(psql_ -c "SELECT akko_crypt.open_pii(v) ->> 'transit' FROM t" -c "SHOW akko_crypt.key" akko_transit | paste -sd ' ')" = "true $transit_fp" ]
check "only the Transit-wrapped root is stored" \
    [ "$(psql_ -c "SELECT wrapped_root LIKE 'vault:v1:%' FROM akko_crypt.transit_root" akko_transit)" = t ]

# Logins with an identity of the role's own: AppRole, and a JWT signed by a key Vault trusts.
# Each AppRole login uses up one use of the secret_id, so Vault itself counts the logins.
"$bao" auth enable approle >/dev/null
"$bao" write auth/approle/role/akko token_policies=akko_kv token_ttl=2s token_max_ttl=2s >/dev/null
role_id=$("$bao" read -field=role_id auth/approle/role/akko/role-id)
"$bao" write -field=secret_id auth/approle/role/akko/secret-id num_uses=100 >"$dir/approle.secret"
logins() { echo $((100 - $("$bao" write -field=secret_id_num_uses auth/approle/role/akko/secret-id/lookup secret_id="$(cat "$dir/approle.secret")"))); }
openssl genrsa -out "$dir/jwt.key" 2048 2>/dev/null
openssl rsa -in "$dir/jwt.key" -pubout -out "$dir/jwt.pub" 2>/dev/null
"$bao" auth enable jwt >/dev/null
"$bao" write auth/jwt/config jwt_validation_pubkeys=@"$dir/jwt.pub" >/dev/null
"$bao" write auth/jwt/role/akko_bi role_type=jwt bound_audiences=akko_crypt user_claim=sub \
    token_policies=akko_kv token_ttl=1h >/dev/null
b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
jwt() { # jwt AUDIENCE: a JWT for subject bi-reader, signed RS256 with jwt.key
    local now header payload
    now=$(date +%s)
    header=$(printf '{"alg":"RS256","typ":"JWT"}' | b64url)
    payload=$(printf '{"sub":"bi-reader","aud":"%s","iat":%d,"exp":%d}' "$1" "$now" $((now + 600)) | b64url)
    printf '%s.%s.%s' "$header" "$payload" \
        "$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$dir/jwt.key" | b64url)"
}
jwt akko_crypt >"$dir/good.jwt"
jwt someone_else >"$dir/other_audience.jwt"
chown postgres: "$dir/approle.secret" "$dir/good.jwt" "$dir/other_audience.jwt"
login_role() { # login_role ROLE SETTING=VALUE...: a login role whose Vault settings a superuser set
    local role=$1; shift
    psql_ -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN" \
          -c "SELECT akko_crypt.grant_privilege('open', '$role'), akko_crypt.grant_privilege('unlock', '$role')" akko_vault >/dev/null
    for setting in "$@"; do psql_ -c "ALTER ROLE $role SET akko_crypt.${setting%%=*} = '${setting#*=}'" akko_vault >/dev/null; done
}
as_role() { local role=$1; shift; psql -X -q -A -t -h "$dir" -p "$port" -U "$role" "$@" akko_vault 2>&1; }
login_role akko_approle vault_auth=approle vault_approle_role_id="$role_id" vault_approle_secret_id_file="$dir/approle.secret"
sealed=$(psql_ -c "SELECT encode(akko_crypt.seal_pii('{\"for\": \"bi\"}'), 'base64')" akko_vault | tr -d '\n')
before=$(logins)
out=$(as_role akko_approle -c "SELECT akko_crypt.unlock()" -c "SELECT akko_crypt.open_pii(decode('$sealed', 'base64')) ->> 'for'" \
    -c "SELECT pg_sleep(2.5)" -c "SELECT akko_crypt.unlock()" | paste -sd ' ')
check "AppRole: a role logs in with its own role_id and secret_id, and opens" \
    [ "$(cut -d' ' -f1-2 <<<"$out")" = "$root_fingerprint bi" ]
new_logins=$(($(logins) - before))
check "AppRole: a login token past its TTL is replaced by a new login in the same session ($new_logins logins)" \
    [ "$(cut -d' ' -f4 <<<"$out") $new_logins" = "$root_fingerprint 2" ]
login_role akko_jwt vault_auth=jwt vault_jwt_role=akko_bi vault_jwt_file="$dir/good.jwt"
check "JWT: a role logs in with a signed JWT, and opens" \
    [ "$(as_role akko_jwt -c "SELECT akko_crypt.open_pii(decode('$sealed', 'base64')) ->> 'for'")" = bi ]
login_role akko_jwt_other vault_auth=jwt vault_jwt_role=akko_bi vault_jwt_file="$dir/other_audience.jwt"
out=$(as_role akko_jwt_other -c "\set VERBOSITY verbose" -c "SELECT akko_crypt.unlock()")
check "JWT: a token for another audience is refused (28000) with Vault's own message" \
    grep -q "28000: .*Vault refused the login (HTTP 400): .*aud" <<<"$out"

# TLS: https to a dev server with its own CA; trusted only through akko_crypt.vault_ca_file.
tport=$((vport + 10))
mkdir -p "$dir/tls"
"$bao" server -dev -dev-tls -dev-tls-cert-dir="$dir/tls" -dev-root-token-id="$BAO_TOKEN" \
    -dev-listen-address="127.0.0.1:$tport" >>"$dir/bao_tls.log" 2>&1 &
tls_pid=$!
tls_bao() { BAO_ADDR="https://127.0.0.1:$tport" BAO_CACERT="$dir/tls/vault-ca.pem" "$bao" "$@"; }
for _ in $(seq 100); do tls_bao status >/dev/null 2>&1 && break; sleep 0.1; done
tls_bao kv put secret/akko_crypt root_key="$root_hex" >/dev/null
chmod -R a+rX "$dir/tls"
tls_session() { psql_ -c "SET akko_crypt.vault_addr = 'https://127.0.0.1:$tport'" "$@" -c "SELECT akko_crypt.unlock()" akko_vault 2>&1; }
check "https with akko_crypt.vault_ca_file: unlocks" \
    [ "$(tls_session -c "SET akko_crypt.vault_token_file = '$dir/root.token'" -c "SET akko_crypt.vault_ca_file = '$dir/tls/vault-ca.pem'")" = "$root_fingerprint" ]
out=$(tls_session -c "SET akko_crypt.vault_token_file = '$dir/root.token'" -c "\set VERBOSITY verbose")
check "https to a certificate no configured CA signed: refused (08006)" grep -q "08006: .*could not reach Vault: .*[Cc]ertificate" <<<"$out"
kill $tls_pid

# A sealed Vault answers 503: 55000, with a hint to unseal.
"$bao" operator seal >/dev/null
out=$(psql_ -c "\set VERBOSITY verbose" -c "SELECT akko_crypt.unlock()" akko_vault 2>&1)
check "a sealed Vault: 55000 with Vault's message and a hint to unseal" \
    bash -c "grep -q '55000: .*HTTP 503' <<<'$out' && grep -q 'unseal' <<<'$out'"

token=$(cat "$dir/vault.token")
check "the server log holds neither a Vault token, a secret_id, a JWT nor the root key" \
    bash -c "! grep -qF -e '$token' -e '$BAO_TOKEN' -e '$root_hex' -e '$(cat "$dir/approle.secret")' -e '$(cat "$dir/good.jwt")' '$dir/server.log'"

echo "vault: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
