# Shared by the out-of-process test tiers (sourced; they set dir and port first): psql
# against the test cluster, and a check that counts passes and failures.
psql_() { psql -X -q -A -t -h "$dir" -p "$port" -U postgres "$@"; }
passed=0 failed=0
check() { # check NAME COMMAND...: passes when COMMAND succeeds
    local name=$1; shift
    if "$@"; then passed=$((passed + 1)); echo "ok - $name"; else failed=$((failed + 1)); echo "not ok - $name"; fi
}
