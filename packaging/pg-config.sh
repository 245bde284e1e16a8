#!/usr/bin/env bash
# The pg_config of PostgreSQL MAJOR that the Makefile builds, installs and tests against:
# Debian's (/usr/lib/postgresql/MAJOR, with its server headers) where it is installed, as 15
# is on Debian 12 and later majors are from the PGDG archive; otherwise the tree that
# fetch-majors.sh unpacked into .pg/MAJOR.
#   packaging/pg-config.sh MAJOR
set -euo pipefail
case "$1" in
15 | 16 | 17 | 18) ;;
*)
    echo "pg-config.sh: PostgreSQL $1 is not supported (15, 16, 17, 18)" >&2
    exit 2
    ;;
esac
debian=/usr/lib/postgresql/$1/bin/pg_config
if [ -x "$debian" ] && [ -f "$("$debian" --includedir-server)/postgres.h" ]; then
    echo "$debian"
else
    echo "$(cd "$(dirname "$0")/.." && pwd)/.pg/$1/bin/pg_config"
fi
