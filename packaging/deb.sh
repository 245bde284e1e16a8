#!/usr/bin/env bash
# Builds postgresql-MAJOR-akko-crypt_VERSION-1_ARCH.deb into OUT: the library, the control
# file and the SQL scripts (this release's, the earlier releases' and the upgrade scripts)
# where Debian's postgresql-MAJOR keeps extensions, with README.Debian and copyright. Its
# dependencies are postgresql-MAJOR and what dpkg-shlibdeps finds the library linked against.
#   packaging/deb.sh MAJOR OUT
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
major=$1 out=$2
pg_config=$("$here/pg-config.sh" "$major")
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$project/Cargo.toml" | head -1)
package=postgresql-$major-akko-crypt
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The build install made, laid out under the paths of this major's pg_config.
cargo pgrx package --manifest-path "$project/Cargo.toml" --pg-config "$pg_config" \
    --out-dir "$work/staged" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
tree=$work/$package
lib=$tree/usr/lib/postgresql/$major/lib
extension=$tree/usr/share/postgresql/$major/extension
doc=$tree/usr/share/doc/$package
install -d "$lib" "$extension" "$doc" "$tree/DEBIAN"
install -m 0644 "$work/staged$("$pg_config" --pkglibdir)/akko_crypt.so" "$lib/"
strip --strip-debug "$lib/akko_crypt.so"
install -m 0644 "$work/staged$("$pg_config" --sharedir)"/extension/akko_crypt* "$project"/sql/releases/*.sql "$extension/"
sed "s/@MAJOR@/$major/g" "$here/README.Debian" >"$doc/README.Debian"
install -m 0644 "$here/copyright" "$doc/copyright"
chmod 0644 "$doc"/*

# dpkg-shlibdeps reads the source package's name from debian/control.
mkdir -p "$work/debian"
printf 'Source: akko-crypt\n\nPackage: %s\nArchitecture: any\n' "$package" >"$work/debian/control"
libraries=$(cd "$work" && dpkg-shlibdeps -O --warnings=0 -e"$lib/akko_crypt.so" | sed -n 's/^shlibs:Depends=//p')
cat >"$tree/DEBIAN/control" <<CONTROL
Package: $package
Version: $version-1
Architecture: $arch
Maintainer: akko_crypt maintainers <maintainers@akko-crypt.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)
Depends: postgresql-$major, $libraries
Section: database
Priority: optional
Description: encryption of personal data inside PostgreSQL $major
 akko_crypt seals values with AES-256-GCM in a versioned envelope, under
 per-class data keys wrapped by a root key that never lives in the database,
 and keeps table columns sealed with a trigger. It must be preloaded
 (shared_preload_libraries); see README.Debian.
CONTROL
(cd "$tree" && find usr -type f -exec md5sum {} + | sort -k2) >"$tree/DEBIAN/md5sums"
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$tree" "$out/${package}_$version-1_$arch.deb" >/dev/null
echo "$out/${package}_$version-1_$arch.deb"
