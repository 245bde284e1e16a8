#!/usr/bin/env bash
# The packages of `make package` and `make dist`. Each major's .deb, read with dpkg-deb: its
# name and version, Depends on postgresql-MAJOR, and exactly the library, the control file, the
# scripts of this release, the earlier ones and the upgrade path where that major's Debian
# packages keep extensions, and its docs. The PostgreSQL 15 one is installed with dpkg -i into
# Debian's PostgreSQL 15 (what make install put there set aside first, and put back at the
# end), owns its files, and works in a fresh cluster: CREATE EXTENSION, seal and open, a
# protected table written and read through its view; dpkg -r then removes every file it
# brought. META.json passes PGXN's validator and names this release, and the PGXN archive
# holds it under akko_crypt-VERSION/ with the sources, and nothing built or fetched.
#   tests/packages.sh DIR PORT MAJOR...
set -uo pipefail
dir=$1 port=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
. "$here/checks.sh"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$project/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
packages=$project/target/packages
rm -rf "$dir" && mkdir -p "$dir"

for major in "$@"; do
    deb=$packages/postgresql-$major-akko-crypt_$version-1_$arch.deb
    check "$major: make package built $(basename "$deb")" [ -f "$deb" ]
    [ -f "$deb" ] || continue
    check "$major: it is postgresql-$major-akko-crypt $version-1 and depends on postgresql-$major" \
        bash -c '[ "$(dpkg-deb --field "$1" Package Version | paste -sd " ")" = "Package: postgresql-$2-akko-crypt Version: $3-1" ] &&
                 dpkg-deb --field "$1" Depends | grep -Eq "(^|, )postgresql-$2(,|$)"' _ "$deb" "$major" "$version"
    expected=$( (
        echo "usr/lib/postgresql/$major/lib/akko_crypt.so"
        echo "usr/share/postgresql/$major/extension/akko_crypt.control"
        echo "usr/share/postgresql/$major/extension/akko_crypt--$version.sql"
        for script in "$project"/sql/akko_crypt--*--*.sql "$project"/sql/releases/*.sql; do
            echo "usr/share/postgresql/$major/extension/$(basename "$script")"
        done
        echo "usr/share/doc/postgresql-$major-akko-crypt/README.Debian"
        echo "usr/share/doc/postgresql-$major-akko-crypt/copyright"
    ) | sort)
    check "$major: it holds the library, control file and every script where Debian's postgresql-$major keeps extensions, and nothing else" \
        [ "$(dpkg-deb --contents "$deb" | awk '$1 !~ /^d/ { sub(/^\.\//, "", $6); print $6 }' | sort)" = "$expected" ]
    check "$major: README.Debian says to preload it" \
        bash -c 'dpkg-deb --fsys-tarfile "$1" | tar -xO ./usr/share/doc/postgresql-$2-akko-crypt/README.Debian |
                 grep -q "shared_preload_libraries = '"'"'akko_crypt'"'"'"' _ "$deb" "$major"
done

# Installed with dpkg into Debian's PostgreSQL 15.
deb=$packages/postgresql-15-akko-crypt_$version-1_$arch.deb
if [[ " $* " == *" 15 "* ]] && [ -f "$deb" ]; then
    lib=/usr/lib/postgresql/15/lib share=/usr/share/postgresql/15/extension
    mkdir -p "$dir/set_aside/share"
    mv "$lib/akko_crypt.so" "$dir/set_aside/" 2>/dev/null
    mv "$share"/akko_crypt* "$dir/set_aside/share/" 2>/dev/null
    restore() {
        mv "$dir/set_aside/akko_crypt.so" "$lib/" 2>/dev/null
        mv "$dir"/set_aside/share/akko_crypt* "$share/" 2>/dev/null
        true
    }
    trap restore EXIT
    dpkg -s postgresql-15-akko-crypt >/dev/null 2>&1 && dpkg -r postgresql-15-akko-crypt >/dev/null
    dpkg -i "$deb" >"$dir/dpkg-install.log" 2>&1
    check "15: dpkg -i installs it into Debian's PostgreSQL 15" \
        bash -c 'dpkg -s postgresql-15-akko-crypt | grep -q "^Status: install ok installed"'
    check "15: dpkg owns the library and the control file" \
        bash -c 'dpkg -S /usr/lib/postgresql/15/lib/akko_crypt.so /usr/share/postgresql/15/extension/akko_crypt.control >/dev/null'
    PGBIN=/usr/lib/postgresql/15/bin "$here/cluster.sh" start "$dir/cluster" "$port"
    cluster=$dir/cluster
    smoke=$(dir=$cluster keyed postgres "CREATE EXTENSION akko_crypt;
        SELECT akko_crypt.rotate_key('identity');
        SELECT akko_crypt.open_pii(akko_crypt.seal_pii('{\"from\": \"the package\"}')) ->> 'from';
        CREATE TABLE customers (id serial PRIMARY KEY, email text);
        SELECT akko_crypt.protect('customers', 'email');
        SELECT akko_crypt.create_view('customers');
        INSERT INTO customers_decrypted (email) VALUES ('ada@example.com');
        SELECT email FROM customers_decrypted;
        SELECT count(*) FROM customers WHERE substr(email, 1, 4) = '\\xac4b4345';
        SELECT extversion FROM pg_extension WHERE extname = 'akko_crypt'" 2>&1)
    check "15: the packaged extension seals and opens, protects a table and its view reads it" \
        [ "$(paste -sd ' ' <<<"$smoke")" = "1 the package protected customers_decrypted ada@example.com 1 $version" ]
    PGBIN=/usr/lib/postgresql/15/bin "$here/cluster.sh" stop "$dir/cluster"
    files=$(dpkg -L postgresql-15-akko-crypt | while read -r f; do [ -f "$f" ] && echo "$f"; done)
    dpkg -r postgresql-15-akko-crypt >"$dir/dpkg-remove.log" 2>&1
    check "15: dpkg -r removes every file it brought ($(wc -l <<<"$files") files)" \
        bash -c 'for f in $1; do [ ! -e "$f" ] || exit 1; done; ! dpkg -s postgresql-15-akko-crypt 2>/dev/null | grep -q "ok installed"' _ "$files"
    restore
    trap - EXIT
fi

# The PGXN release.
check "META.json passes PGXN's validator (pgxn_meta)" pgxn_meta "$project/META.json"
check "META.json's version is the release's: $version" \
    python3 -c 'import json, sys; m = json.load(open(sys.argv[1])); sys.exit(not (m["version"] == m["provides"]["akko_crypt"]["version"] == sys.argv[2]))' \
    "$project/META.json" "$version"
zip=$packages/akko_crypt-$version.zip
check "make dist built $(basename "$zip"): META.json, the sources, the docs under akko_crypt-$version/, nothing built" \
    python3 - "$zip" "$version" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
prefix = f"akko_crypt-{sys.argv[2]}/"
required = ["META.json", "README.md", "Makefile", "Cargo.toml", "Cargo.lock", "akko_crypt.control", "src/lib.rs", "docs/FORMAT.md"]
sys.exit(not (all(n.startswith(prefix) for n in names)
              and all(prefix + r in names for r in required)
              and not any(part in n.split("/") for n in names for part in ("target", ".pg", ".venv"))))
PY

echo "packages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
