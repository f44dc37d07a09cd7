#!/usr/bin/env bash
# Runs every Fuzz target in the module for a short time each.
#
# `go test -fuzz` can end a short run with a bare "context deadline exceeded"
# when a worker is still busy (minimizing a slow input) at -fuzztime's end; that
# is the toolchain, not a finding (a finding writes "Failing input …"). Such a
# run is retried once; any real failure fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
t="${1:-5s}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
run() { go test -run='^$' -fuzz="^${2}\$" -fuzztime="$t" -fuzzminimizetime=1x "$1" >"$log" 2>&1; }
for pkg in $(go list ./...); do
  dir="$(go list -f '{{.Dir}}' "$pkg")"
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz $pkg $f ($t)"
    if run "$pkg" "$f"; then continue; fi
    if grep -q "context deadline exceeded" "$log" && ! grep -q "Failing input" "$log"; then
      echo "  toolchain deadline flake; retrying once"
      run "$pkg" "$f" && continue
    fi
    cat "$log"; exit 1
  done
done
