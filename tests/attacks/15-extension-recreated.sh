# The review of issue 17's session caches: an administrator drops and creates the extension
# again while a pooled session stays connected. The extension's tables get new OIDs; a
# session that remembered the old ones must still see every later key change and revoke
# (a destroyed key, a revoked class, a rotation) and write the keyring without XX000, and so
# must the session that made the extension again.
db=atk_recreated
new_db $db >/dev/null
psql_ -c "CREATE ROLE atk_pooled LOGIN" postgres >/dev/null
out=$("$here/../../.venv/bin/python" - "$dir" "$port" "$db" "$root" <<'PY'
import sys
import psycopg

host, port, db, root = sys.argv[1:]


def connect(user):
    c = psycopg.connect(host=host, port=port, user=user, dbname=db, autocommit=True)
    c.execute("SELECT set_config('akko_crypt.key', %s, false)", (root,))
    return c


def run(c, sql, params=None):
    """The first column of the first row, or the error's SQLSTATE."""
    try:
        return "ok:%s" % (c.execute(sql, params).fetchone()[0],)
    except psycopg.Error as e:
        return e.sqlstate


def value(c, sql, params=None):
    """The first column of the first row, or None after an error (printed)."""
    try:
        return c.execute(sql, params).fetchone()[0]
    except psycopg.Error as e:
        print("error=%s %s" % (e.sqlstate, sql))
        return None


def version(c, envelope):
    return run(c, "SELECT (get_byte(e, 6) << 24) + (get_byte(e, 7) << 16) + (get_byte(e, 8) << 8) + get_byte(e, 9) "
                  "FROM (SELECT %s::bytea) s(e)", (envelope,))


admin = connect("postgres")
for sql in ["SELECT akko_crypt.grant_privilege('seal', 'atk_pooled')",
            "SELECT akko_crypt.grant_privilege('open', 'atk_pooled')",
            "SELECT akko_crypt.rotate_key('identity')"]:
    admin.execute(sql)
pooled = connect("atk_pooled")
print("before=" + run(pooled, "SELECT length(akko_crypt.seal_pii('{}')) > 0"))
# The same administrator session drops the extension and makes it again.
admin.execute("DROP EXTENSION akko_crypt CASCADE")
admin.execute("CREATE EXTENSION akko_crypt")
admin.execute("SELECT set_config('akko_crypt.key', %s, false)", (root,))
for sql in ["SELECT akko_crypt.grant_privilege('seal', 'atk_pooled')",
            "SELECT akko_crypt.grant_privilege('open', 'atk_pooled', 'identity')",
            "SELECT akko_crypt.grant_privilege('open', 'atk_pooled', 'financial')"]:
    admin.execute(sql)
print("admin_rotates=" + run(admin, "SELECT akko_crypt.rotate_key('identity')"))
# The rest of the administration from a new session, so that the pooled session's checks
# do not depend on the one above.
admin = connect("postgres")
print("admin_rotates_financial=" + run(admin, "SELECT akko_crypt.rotate_key('financial')"))
old = value(pooled, "SELECT akko_crypt.seal_pii('{\"old\": 1}')")
money = value(admin, "SELECT akko_crypt.seal_pii('{\"iban\": 1}', 'financial')")
print("opens_old=" + run(pooled, "SELECT akko_crypt.open_pii(%s) ->> 'old'", (old,)))
print("opens_money=" + run(pooled, "SELECT akko_crypt.open_pii(%s) ->> 'iban'", (money,)))
for sql in ["SELECT akko_crypt.rotate_key('identity')",
            "SELECT akko_crypt.retire_key('identity', 1, true)",
            "SELECT akko_crypt.destroy_key('identity', 1)",
            "SELECT akko_crypt.revoke_privilege('open', 'atk_pooled', 'financial')"]:
    print("admin=" + run(admin, sql))
print("destroyed=" + run(pooled, "SELECT akko_crypt.open_pii(%s) ->> 'old'", (old,)))
print("revoked=" + run(pooled, "SELECT akko_crypt.open_pii(%s) ->> 'iban'", (money,)))
print("seals_under=" + version(pooled, value(pooled, "SELECT akko_crypt.seal_pii('{}')")))
print("subject=" + run(pooled, "SELECT length(akko_crypt.seal_pii('{}', subject => 'atk_x1')) > 0"))
print("forgotten=" + run(admin, "SELECT akko_crypt.forget_subject('atk_x1')"))
PY
)
echo "$out" | sed "s/^/#   /"
check "control: the pooled session sealed before, and opened both classes after the extension was made again; the changes took" \
    bash -c 'grep -qx "before=ok:True" <<<"$1" && grep -qx "opens_old=ok:1" <<<"$1" && grep -qx "opens_money=ok:1" <<<"$1" &&
        grep -qx "admin_rotates_financial=ok:1" <<<"$1" && [ "$(grep -c "^admin=ok" <<<"$1")" -eq 4 ]' _ "$out"
check "the session that made the extension again rotates keys (no XX000)" grep -qx "admin_rotates=ok:1" <<<"$out"
check "the pooled session no longer opens under the destroyed key (42704)" grep -qx "destroyed=42704" <<<"$out"
check "the pooled session no longer opens the revoked class (42501)" grep -qx "revoked=42501" <<<"$out"
check "the pooled session seals under the rotated version 2" grep -qx "seals_under=ok:2" <<<"$out"
check "the pooled session registers a new subject (no XX000), which forget_subject finds" \
    bash -c 'grep -qx "subject=ok:True" <<<"$1" && grep -qx "forgotten=ok:True" <<<"$1"' _ "$out"
psql_ -c "DROP DATABASE $db" -c "DROP ROLE atk_pooled" postgres >/dev/null
