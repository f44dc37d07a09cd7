#!/usr/bin/env bash
# End-to-end load test: wrk against the quickstart with and without observe's
# middleware, on loopback, at default settings. Prints throughput ratio and p99.
#   .ci/loadtest.sh [duration]     (default 10s; CI uses a short form)
set -euo pipefail
cd "$(dirname "$0")/.."
d="${1:-10s}"
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
bin="$(mktemp -d)/quickstart"
go build -o "$bin" ./examples/quickstart
run() { # $1: instrument true|false  -> "rps p99"
  local port; port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  OBSERVE_ADMIN_ADDR=127.0.0.1:0 "$bin" -addr "127.0.0.1:$port" -instrument="$1" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/hello/warmup" >/dev/null 2>&1 && break; sleep 0.1; done
  local out; out=$(wrk -t2 -c32 -d"$d" --latency "http://127.0.0.1:$port/hello/gopher")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$rps $p99"
}
read -r bare_rps bare_p99 < <(run false)
read -r obs_rps obs_p99 < <(run true)
ratio=$(python3 -c "print(f'{$obs_rps/$bare_rps:.2f}')")
echo "| quickstart /hello/{name} | req/s | p99 |"
echo "|---|---:|---:|"
echo "| without middleware | $bare_rps | $bare_p99 |"
echo "| with observe (default settings) | $obs_rps | $obs_p99 |"
echo "throughput ratio: $ratio (aim >= 0.85)"
