# Finding 2: opening without the right to open. The key administrator of the README holds
# the key and administers keys, but may not open: it cannot open a value through any
# function, test a guess against a blind index, make a trigger open a copied envelope for
# it (in a temporary table, or in a table of its own that it is even allowed to protect),
# or re-encrypt to read; nor can it grant itself the right. Roles that may seal, or open one
# class only, get no further.
db=atk_open
new_db $db >/dev/null
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" \
    -c "CREATE SCHEMA hr" -c "CREATE TABLE hr.people (id int PRIMARY KEY, name text, tax_id text)" \
    -c "INSERT INTO hr.people VALUES (1, 'Ada', '078-05-1120'), (2, 'Grace', '219-09-9999')" \
    -c "SELECT akko_crypt.protect('hr.people', 'tax_id', blind_index => true)" \
    -c "SELECT akko_crypt.create_view('hr.people')" \
    -c "CREATE TABLE hr.payroll (id int PRIMARY KEY, iban bytea)" \
    -c "INSERT INTO hr.payroll VALUES (1, akko_crypt.seal_pii('{\"iban\": \"GB33BUKB20201555555555\"}', 'financial'))" \
    -c "CREATE ROLE keyadm LOGIN" -c "SELECT akko_crypt.grant_privilege('admin', 'keyadm')" \
    -c "CREATE ROLE sealer LOGIN" -c "SELECT akko_crypt.grant_privilege('seal', 'sealer'), akko_crypt.grant_privilege('protect', 'sealer')" \
    -c "CREATE ROLE reader LOGIN" -c "SELECT akko_crypt.grant_privilege('open', 'reader', 'identity'), akko_crypt.grant_privilege('seal', 'reader', 'identity'), akko_crypt.grant_privilege('protect', 'reader')" \
    -c "GRANT USAGE ON SCHEMA hr TO keyadm, sealer, reader" \
    -c "GRANT SELECT ON hr.people, hr.people_decrypted, hr.payroll TO keyadm, sealer, reader" \
    -c "GRANT UPDATE ON hr.people TO keyadm" -c "GRANT CREATE ON SCHEMA public TO keyadm, sealer, reader" >/dev/null
check "control: the reader, who may open identity, reads the tax ids" \
    [ "$(keyed_as reader $db -c "SELECT string_agg(tax_id, ' ' ORDER BY id) FROM hr.people_decrypted")" = "078-05-1120 219-09-9999" ]

for statement in "SELECT akko_crypt.open_pii(tax_id) FROM hr.people" "SELECT akko_crypt.open_text(tax_id) FROM hr.people" \
    "SELECT akko_crypt.open_value(tax_id, NULL, NULL::text) FROM hr.people" "SELECT tax_id FROM hr.people_decrypted" \
    "SELECT id FROM hr.people WHERE tax_id_bidx = akko_crypt.blind_index('078-05-1120', 'hr.people', 'tax_id')"; do
    check "the key administrator, key loaded: $statement -> 42501" refused 42501 "$(keyed_as keyadm $db -c "$statement")"
done
oracle="CREATE TEMP TABLE oracle (id int PRIMARY KEY, tax_id text)"
check "the key administrator cannot protect a temporary table to use its trigger as an oracle" \
    refused 42501 "$(keyed_as keyadm $db -c "$oracle" -c "SELECT akko_crypt.protect('oracle', 'tax_id', blind_index => true)")"
keyed_as postgres $db -c "SELECT akko_crypt.grant_privilege('protect', 'keyadm')" >/dev/null
check "... nor, allowed to protect, a temporary one (0A000)" \
    refused 0A000 "$(keyed_as keyadm $db -c "$oracle" -c "SELECT akko_crypt.protect('oracle', 'tax_id', blind_index => true)")"
# A table of its own, protected with a blind index: the victims' envelopes copied in, and a
# guess for each: equal blind indexes would give the tax ids away.
attack_oracle() { # attack_oracle ROLE: the oracle attempt's output
    keyed_as "$1" $db -c "CREATE TABLE public.oracle_$1 (id int PRIMARY KEY, tax_id text)" \
        -c "SELECT akko_crypt.protect('public.oracle_$1', 'tax_id', blind_index => true)" \
        -c "INSERT INTO public.oracle_$1 SELECT id, tax_id FROM hr.people" \
        -c "INSERT INTO public.oracle_$1 SELECT 100 + g, akko_crypt.utf8_bytes(format('%s-%s-%s', '078', '05', 1100 + g)) FROM generate_series(0, 99) g" \
        -c "SELECT count(*) FROM public.oracle_$1 a JOIN public.oracle_$1 b ON a.tax_id_bidx = b.tax_id_bidx AND a.id < 100 AND b.id >= 100"
}
out=$(attack_oracle keyadm)
check "the key administrator, allowed to protect, cannot protect a table of its own: it may not seal (42501)" \
    grep -q 'ERROR:  42501: permission denied: role "keyadm" may not seal' <<<"$out"
out=$(attack_oracle sealer)
check "a role that may seal and protect, not open: the copied envelopes are refused (42501), its guesses sealed, no match" \
    bash -c 'grep -q "ERROR:  42501: permission denied: role \"sealer\" may not open" <<<"$1" && [ "$(tail -1 <<<"$1")" = 0 ]' _ "$out"
out=$(keyed_as reader $db -c "CREATE TABLE public.oracle_reader (id int PRIMARY KEY, iban text)" \
    -c "SELECT akko_crypt.protect('public.oracle_reader', 'iban')" -c "INSERT INTO public.oracle_reader SELECT id, iban FROM hr.payroll" \
    -c "SELECT count(*) FROM public.oracle_reader")
check "a role that may open identity copies a financial envelope into an identity column to have it resealed: refused (22023), nothing stored" \
    bash -c 'grep -q "ERROR:  22023: the envelope written to protected column \"iban\" is sealed under data class \"financial\"" <<<"$1" && [ "$(tail -1 <<<"$1")" = 0 ]' _ "$out"
out=$(keyed_as postgres $db -c "CREATE TABLE public.oracle_class (id int PRIMARY KEY, iban text)" \
    -c "SELECT akko_crypt.protect('public.oracle_class', 'iban')" -c "INSERT INTO public.oracle_class SELECT id, iban FROM hr.payroll")
check "even for a role that may open both, an envelope of another class is refused by the column (22023)" refused 22023 "$out"
keyed_as postgres $db -c "SELECT akko_crypt.rotate_key('identity')" >/dev/null
check "the key administrator cannot re-encrypt to open: 42501" \
    refused 42501 "$(keyed_as keyadm $db -c "CALL akko_crypt.reencrypt('hr.people', 'tax_id')")"
check "... and the values stay as they were, under the old version" \
    [ "$(psql_ -c "SELECT count(*) FROM hr.people WHERE get_byte(tax_id, 9) = 1" $db)" = 2 ]
check "the key administrator cannot unprotect another owner's table to read it back in clear" \
    refused 42501 "$(keyed_as keyadm $db -c "SELECT akko_crypt.unprotect('hr.people', 'tax_id')")"
check "a role that may open but not seal cannot write through the view (42501, seal), nothing stored" \
    bash -c 'grep -q "ERROR:  42501:" <<<"$1" && [ "$2" = 2 ]' _ \
    "$(keyed_as postgres $db -c "SELECT akko_crypt.revoke_privilege('seal', 'reader', 'identity')" -c "GRANT INSERT ON hr.people, hr.people_decrypted TO reader" >/dev/null;
       keyed_as reader $db -c "INSERT INTO hr.people_decrypted (id, name, tax_id) VALUES (3, 'Mal', '000-00-0000')")" \
    "$(psql_ -c "SELECT count(*) FROM hr.people" $db)"
# Separation of duties, which review found unenforced: the key administrator grants, but
# never to itself, nor through a role it is a member of, the right to open.
check "the key administrator grants itself open: refused (0LP01)" \
    refused 0LP01 "$(keyed_as keyadm $db -c "SELECT akko_crypt.grant_privilege('open', 'keyadm')")"
check "... nor admin to a role that may open (0LP01)" \
    refused 0LP01 "$(keyed_as keyadm $db -c "SELECT akko_crypt.grant_privilege('admin', 'reader')")"
keyed_as postgres $db -c "CREATE ROLE staff NOLOGIN" -c "GRANT staff TO keyadm" >/dev/null
check "the key administrator grants open to a role it is a member of: refused (0LP01)" \
    refused 0LP01 "$(keyed_as keyadm $db -c "SELECT akko_crypt.grant_privilege('open', 'staff')")"
keyed_as postgres $db -c "GRANT reader TO keyadm" >/dev/null
check "made a member of a role that may open, it still opens nothing: 42501, a key administrator opens nothing" \
    grep -q 'ERROR:  42501: permission denied: role "keyadm" administers keys, and a key administrator opens nothing' <<<"$(keyed_as keyadm $db -c "SELECT tax_id FROM hr.people_decrypted")"
check "... while the reader itself still reads" \
    [ "$(keyed_as reader $db -c "SELECT count(tax_id) FROM hr.people_decrypted")" = 2 ]
check "... nor after SET ROLE to that role (its session user administers keys): 42501" \
    grep -q 'ERROR:  42501: permission denied: role "keyadm" administers keys, and a key administrator opens nothing' \
    <<<"$(keyed_as keyadm $db -c "SET ROLE reader" -c "SELECT tax_id FROM hr.people_decrypted")"
check "... and, able to open now, it administers nothing either (42501)" \
    grep -q 'ERROR:  42501: permission denied: role "keyadm" may open values, and a role that opens administers no key' \
    <<<"$(keyed_as keyadm $db -c "SELECT akko_crypt.rotate_key('identity')")"
# CREATEROLE would let the key administrator make a role that opens, and log in as it.
keyed_as postgres $db -c "CREATE ROLE keyadm2 LOGIN CREATEROLE" >/dev/null
check "admin to a role that may create roles: refused (0LP01)" \
    refused 0LP01 "$(keyed_as postgres $db -c "SELECT akko_crypt.grant_privilege('admin', 'keyadm2')")"
keyed_as postgres $db -c "ALTER ROLE keyadm2 NOCREATEROLE" -c "SELECT akko_crypt.grant_privilege('admin', 'keyadm2')" \
    -c "ALTER ROLE keyadm2 CREATEROLE" >/dev/null
check "a key administrator given CREATEROLE afterwards administers nothing (42501)" \
    grep -q 'ERROR:  42501: permission denied: role "keyadm2" may create roles (CREATEROLE)' \
    <<<"$(keyed_as keyadm2 $db -c "SELECT akko_crypt.rotate_key('identity')")"
