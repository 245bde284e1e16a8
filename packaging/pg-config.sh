#!/usr/bin/env bash
# The pg_config of PostgreSQL MAJOR as the Makefile and the tests use it: Debian's for 15,
# otherwise the one unpacked by fetch-majors.sh into .pg/MAJOR.
#   packaging/pg-config.sh MAJOR
set -euo pipefail
case "$1" in
15) echo /usr/lib/postgresql/15/bin/pg_config ;;
16 | 17 | 18) echo "$(cd "$(dirname "$0")/.." && pwd)/.pg/$1/bin/pg_config" ;;
*)
    echo "pg-config.sh: PostgreSQL $1 is not supported (15, 16, 17, 18)" >&2
    exit 2
    ;;
esac
