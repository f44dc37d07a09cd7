#!/usr/bin/env bash
# End-to-end load test: wrk against the quickstart with and without observe's
# middleware, on loopback, at default settings; and, side by side in the same
# run, the same service with the usual peer stack (otelhttp + the OTel SDK,
# promhttp, slog's JSONHandler: bench/cmd/loadpeer) with and without it.
# Prints median req/s, p99 and the server's CPU time per request over the
# rounds, and the throughput ratios.
#   .ci/loadtest.sh [duration] [rounds]   (default 10s, 3 rounds; CI: a short form)
set -euo pipefail
cd "$(dirname "$0")/.."
d="${1:-10s}"
rounds="${2:-3}"
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/quickstart" ./examples/quickstart
(cd bench && go build -o "$tmp/loadpeer" ./cmd/loadpeer)

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# run BIN INSTRUMENT -> "rps p99_ms cpu_us_per_request"
run() {
  local bin=$1 inst=$2 port pid out t0 t1
  port=$(free_port)
  OBSERVE_ADMIN_ADDR=127.0.0.1:0 "$bin" -addr "127.0.0.1:$port" -instrument="$inst" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/hello/warmup" >/dev/null 2>&1 && break; sleep 0.1; done
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  out=$(wrk -t2 -c32 -d"$d" --latency "http://127.0.0.1:$port/hello/gopher")
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$out" "$t0" "$t1" "$(getconf CLK_TCK)" <<'EOF'
import re, sys
out, t0, t1, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
# A service answering errors (or dropping connections) fast is no result.
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
if bad and int(bad.group(1)) > 0:
    sys.exit(f"loadtest: {bad.group(1)} non-2xx responses:\n{out}")
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
if sock and sum(map(int, sock.groups())) > 0:
    sys.exit(f"loadtest: socket errors:\n{out}")
n = int(re.search(r"(\d+) requests in", out).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
print(f"{rps:.0f} {p99:.2f} {(t1 - t0) / hz * 1e6 / n:.1f}")
EOF
}

declare -A res
configs=("quickstart false" "quickstart true" "loadpeer false" "loadpeer true")
for ((r = 0; r < rounds; r++)); do
  for c in "${configs[@]}"; do
    read -r bin inst <<<"$c"
    res["$c"]+="$(run "$tmp/$bin" "$inst");"
  done
done

python3 - "$d" "$rounds" "${res["quickstart false"]}" "${res["quickstart true"]}" "${res["loadpeer false"]}" "${res["loadpeer true"]}" <<'EOF'
import statistics as st, sys
d, rounds = sys.argv[1], sys.argv[2]
rows = [("quickstart, without middleware", sys.argv[3]), ("quickstart, with observe (default settings)", sys.argv[4]),
        ("peer stack: same service, without instrumentation", sys.argv[5]), ("peer stack: otelhttp + OTel SDK, promhttp, slog JSON", sys.argv[6])]
med = []
for _, raw in rows:
    runs = [list(map(float, x.split())) for x in raw.strip(";").split(";")]
    med.append([st.median(col) for col in zip(*runs)])
print(f"wrk -t2 -c32 -d{d}, loopback, medians of {rounds} round(s)\n")
print("| /hello/{name} | req/s | p99 | server CPU per request |")
print("|---|---:|---:|---:|")
for (name, _), (rps, p99, cpu) in zip(rows, med):
    print(f"| {name} | {rps:.0f} | {p99:.2f} ms | {cpu:.1f} µs |")
print(f"\nthroughput ratio, observe: {med[1][0] / med[0][0]:.2f} (aim >= 0.85); peer stack: {med[3][0] / med[2][0]:.2f}")
print(f"CPU added per request: observe {med[1][2] - med[0][2]:.1f} µs, peer stack {med[3][2] - med[2][2]:.1f} µs")
EOF
