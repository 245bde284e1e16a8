# Finding 6: a BI role with a random key of its own claimed an empty keyring, and audit rows
# written as the extension owner named it instead of the caller. The first key of an empty
# keyring fixes the database's root, so only an administrator writes it; a role with
# another root is refused once it is written; and the audit log names who did each thing.
db=atk_claim
new_db $db >/dev/null
psql_ -c "CREATE ROLE bi LOGIN" -c "CREATE ROLE app LOGIN" -c "CREATE ROLE keyadm LOGIN" \
      -c "SELECT akko_crypt.grant_privilege('open', 'bi', 'identity')" \
      -c "SELECT akko_crypt.grant_privilege('seal', 'app'), akko_crypt.grant_privilege('open', 'app')" \
      -c "SELECT akko_crypt.grant_privilege('admin', 'keyadm')" -c "CREATE TABLE t (id int PRIMARY KEY, v text)" \
      -c "SELECT akko_crypt.protect('t', 'v')" -c "GRANT SELECT, INSERT ON t TO bi, app" $db >/dev/null 2>&1
other=$(head -c 32 /dev/urandom | base64)
as_with_key() { PGOPTIONS="-c akko_crypt.key=$1" run_as "$2" $db -c "$3"; }
check "control: the keyring is empty" [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.keyring" $db)" = 0 ]
check "a BI role with a key of its own cannot seal a first value (no EXECUTE on seal_pii)" \
    refused 42501 "$(as_with_key "$other" bi "SELECT akko_crypt.seal_pii('{}')")"
check "... nor make the protect trigger write one (42501, seal)" refused 42501 "$(as_with_key "$other" bi "INSERT INTO t VALUES (1, 'x')")"
check "the function 0.2.0 left open to PUBLIC for this, blind_index_key_version(), is gone (42883)" \
    refused 42883 "$(as_with_key "$other" bi "SELECT akko_crypt.blind_index_key_version()")"
check "an application that may seal, with a root of its own, cannot claim the empty keyring either (42501)" \
    grep -q "ERROR:  42501: the keyring is empty" <<<"$(as_with_key "$other" app "SELECT akko_crypt.seal_pii('{}')")"
check "nothing was written to the keyring" [ "$(psql_ -c "SELECT count(*) FROM akko_crypt.keyring" $db)" = 0 ]
as_with_key "$root" keyadm "SELECT akko_crypt.rotate_key('identity')" >/dev/null
check "the administrator starts the keyring under the real root" \
    [ "$(psql_ -c "SELECT root_fingerprint FROM akko_crypt.keyring" $db)" = c7bd0684b7e5534c ]
check "after that, the role with another root is refused (55000), its key never used" \
    grep -q "ERROR:  55000: this session's root key" <<<"$(as_with_key "$other" app "SELECT akko_crypt.seal_pii('{}', 'financial')")"
as_with_key "$root" app "SELECT akko_crypt.seal_pii('{}', 'financial')" >/dev/null
as_with_key "$root" app "SELECT akko_crypt.seal_pii('{}', subject => 'customer:1')" >/dev/null
check "the audit log names the caller for keys created from inside akko_crypt: keyadm rotated, app's first seals created financial and blind_index" \
    [ "$(psql_ -c "SELECT string_agg(operation || ' ' || class || ' by ' || role, ', ' ORDER BY id) FROM akko_crypt.audit_log WHERE class IS NOT NULL AND operation <> 'grant_privilege'" $db)" = \
      "rotate_key identity by keyadm, create_key financial by app, create_key blind_index by app" ]
