# Finding 7: nothing bounded the seals under one data key, so a role that may seal could
# exhaust AES-GCM's random-nonce limit on purpose. Every value is sealed under a value key
# of its process's own random subkey id, which the process replaces after 2^20 seals
# (docs/FORMAT.md, "Nonces and bounds"): sealing more only draws more subkey ids.
db=atk_bound
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" >/dev/null
# The subkey id of a format 2 envelope of class identity (no subject): bytes 19 to 34.
per_subkey=$(keyed_as postgres $db -c "SELECT string_agg(n::text, ' ' ORDER BY n DESC) || ' format ' || min(f) FROM (
    SELECT count(*) AS n, min(get_byte(e, 4)) AS f FROM (SELECT akko_crypt.seal_pii('{}') AS e FROM generate_series(1, 1048577)) s
    GROUP BY substr(e, 20, 16)) k")
check "1,048,577 seals in one session: 2^20 under one subkey id, then a new one ($per_subkey)" \
    [ "$per_subkey" = "1048576 1 format 2" ]
sessions=$(for _ in 1 2 3; do keyed_as postgres $db -c "SELECT encode(substr(akko_crypt.seal_pii('{}'), 20, 16), 'hex')"; done | sort -u | wc -l)
check "three sessions draw three subkey ids" [ "$sessions" = 3 ]
check "status() reports the budget of a value key" \
    [ "$(keyed_as postgres $db -c "SELECT akko_crypt.status() ->> 'seals_per_value_key'")" = 1048576 ]
opened=$(keyed_as postgres $db -c "SELECT count(*) FROM generate_series(1, 1000) g
                                   WHERE akko_crypt.open_pii(akko_crypt.seal_pii(jsonb_build_object('g', g))) ->> 'g' = g::text")
check "every value still opens ($opened of 1000)" [ "$opened" = 1000 ]
