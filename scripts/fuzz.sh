#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given budget each.
set -euo pipefail
budget=${1:-3s}
cd "$(dirname "$0")/.."
status=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do
    echo "fuzz $dir $target ($budget)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "./$dir" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; status=1; }
  done
done < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' 2>/dev/null || true)
rm -f /tmp/fuzz.$$.log
exit $status
