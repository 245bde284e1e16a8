#!/usr/bin/env bash
# Real clients from PyPI (psycopg 3, psycopg_pool, SQLAlchemy 2, in .venv) write a table
# protected in text mode the way applications and ORMs do, with the key loaded by the
# README's pool snippets as written (tests/clients.py), on a cluster of its own.
#   tests/clients.sh [DIR] [PORT] [PYTHON]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-/tmp/akko_crypt_clients} port=${2:-55450} python=${3:-$here/../.venv/bin/python}
"$here/cluster.sh" start "$dir" "$port"
trap '"$here/cluster.sh" stop "$dir"' EXIT
"$python" "$here/clients.py" "$dir" "$port" "$here/../README.md"
