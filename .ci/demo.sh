#!/usr/bin/env bash
# make demo: real Prometheus and Jaeger (from the same installers as CI:
# Debian's prometheus package, .ci/build-jaeger.sh) and examples/services
# with traffic, everything on 127.0.0.1. Prints the URLs to open; Ctrl-C
# stops everything it started. DEMO_DURATION (a Go duration) ends it by
# itself, for a check; DEMO_*_PORT and DEMO_GATEWAY move it off the default
# ports.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus >/dev/null; then
  if [[ "$(id -u)" == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "demo: Prometheus is missing: sudo apt-get install -y prometheus (what .ci/run installs)" >&2; exit 1
  fi
fi
echo "demo: building (or finding) Jaeger v2; the first time takes a few minutes" >&2
JAEGER_BIN="$(.ci/build-jaeger.sh)"

PROM_PORT="${DEMO_PROMETHEUS_PORT:-9090}"
JAEGER_UI_PORT="${DEMO_JAEGER_PORT:-16686}"
OTLP_GRPC_PORT="${DEMO_OTLP_GRPC_PORT:-4317}"
OTLP_HTTP_PORT="${DEMO_OTLP_HTTP_PORT:-4318}"
GATEWAY="${DEMO_GATEWAY:-127.0.0.1:8080}"
ADMIN_PORT="${DEMO_ADMIN_PORT:-9464}"   # gateway; orders +1, inventory +2
work="$(mktemp -d)"
pids=()
# Each process runs in a session of its own (setsid), so a Ctrl-C reaches
# only this script, which stops them in order: the services first (they
# flush their spans to Jaeger), then Prometheus and Jaeger.
cleanup() {
  trap - INT TERM EXIT
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "${pids[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[i]}" 2>/dev/null || true # still there after 10s
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "${work}"
  echo "demo: stopped" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM # a Ctrl-C is how the demo ends: cleanup runs on the exit

# --- Jaeger: OTLP on 4317 (gRPC) and 4318 (HTTP), UI and query API on 16686
cat > "${work}/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, logs: {level: warn}}
extensions:
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: 127.0.0.1:${JAEGER_UI_PORT}}
    grpc: {endpoint: 127.0.0.1:0}
  jaeger_storage:
    backends: {mem: {memory: {max_traces: 100000}}}
receivers:
  otlp:
    protocols: {grpc: {endpoint: "127.0.0.1:${OTLP_GRPC_PORT}"}, http: {endpoint: "127.0.0.1:${OTLP_HTTP_PORT}"}}
processors:
  batch: {timeout: 200ms}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
YAML
OTEL_SDK_DISABLED=true setsid "${JAEGER_BIN}" --config="${work}/jaeger.yaml" >"${work}/jaeger.log" 2>&1 &
pids+=($!)

# --- Prometheus: scrapes the three services' admin /metrics; with
# cmd/observe present, the SLO rules it generates from examples/services/slo.yaml
rules=""
if [[ -d cmd/observe ]]; then
  if go run ./cmd/observe rules -f examples/services/slo.yaml >"${work}/slo-rules.yml" 2>"${work}/rules.err"; then
    rules="rule_files: [${work}/slo-rules.yml]"
  else
    echo "demo: SLO rules not generated: $(cat "${work}/rules.err")" >&2
  fi
fi
cat > "${work}/prometheus.yml" <<YAML
global: {scrape_interval: 5s, evaluation_interval: 5s}
${rules}
scrape_configs:
  - job_name: services
    static_configs:
      - targets: ["127.0.0.1:${ADMIN_PORT}"]
        labels: {service: gateway}
      - targets: ["127.0.0.1:$((ADMIN_PORT+1))"]
        labels: {service: orders}
      - targets: ["127.0.0.1:$((ADMIN_PORT+2))"]
        labels: {service: inventory}
YAML
setsid prometheus --config.file="${work}/prometheus.yml" --storage.tsdb.path="${work}/tsdb" \
  --web.listen-address="127.0.0.1:${PROM_PORT}" --enable-feature=exemplar-storage,native-histograms \
  >"${work}/prometheus.log" 2>&1 &
pids+=($!)

for i in $(seq 1 100); do
  curl -fs "http://127.0.0.1:${JAEGER_UI_PORT}/api/services" >/dev/null 2>&1 \
    && curl -fs "http://127.0.0.1:${PROM_PORT}/-/ready" >/dev/null 2>&1 && break
  [[ $i == 100 ]] && { echo "demo: backends not ready:"; cat "${work}"/*.log; exit 1; } >&2
  sleep 0.3
done

# --- the three services, exporting to Jaeger, with traffic
go build -o "${work}/services" ./examples/services
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:${OTLP_HTTP_PORT}" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
  setsid "${work}/services" -addr "${GATEWAY}" -admin-port "${ADMIN_PORT}" -traffic \
  ${DEMO_DURATION:+-duration "${DEMO_DURATION}"} 2>"${work}/services.log" &
pids+=($!)
svc=$!
for i in $(seq 1 100); do
  curl -fs "http://${GATEWAY}/orders/1" >/dev/null 2>&1 && break
  kill -0 "${svc}" 2>/dev/null || { echo "demo: services exited:"; cat "${work}/services.log"; exit 1; } >&2
  sleep 0.3
done

trace="$(curl -fsi "http://${GATEWAY}/orders/42" | tr -d '\r' | sed -n 's/^Trace-Id: //Ip')"
cat <<TXT

observe demo is running (Ctrl-C stops everything):

  gateway      curl -i http://${GATEWAY}/orders/42        (answers with its Trace-Id)
  Jaeger       http://127.0.0.1:${JAEGER_UI_PORT}/search?service=gateway
               one trace across gateway → orders → inventory: http://127.0.0.1:${JAEGER_UI_PORT}/trace/${trace}
  Prometheus   http://127.0.0.1:${PROM_PORT}/graph?g0.expr=sum%20by%20(service%2Chttp_route%2Chttp_response_status_code)(rate(http_server_request_duration_seconds_count%5B1m%5D))
               http://127.0.0.1:${PROM_PORT}/targets
  admin        http://127.0.0.1:${ADMIN_PORT}/metrics  (orders :$((ADMIN_PORT+1)), inventory :$((ADMIN_PORT+2)); /readyz, /loglevel)
  logs         ${work}/services.log
TXT
[[ -n "${rules}" ]] && echo "  SLO rules    http://127.0.0.1:${PROM_PORT}/rules" || echo "  (no SLO rules: cmd/observe is not in this tree yet)"
echo
if [[ -n "${DEMO_DURATION:-}" ]]; then
  # a bounded run is a check (.ci/run): the trace crossed all three services
  # in Jaeger, and Prometheus scrapes all three
  ok=""
  for i in $(seq 1 60); do
    t="$(curl -fs "http://127.0.0.1:${JAEGER_UI_PORT}/api/traces/${trace}" || true)"
    up="$(curl -fs "http://127.0.0.1:${PROM_PORT}/api/v1/targets" | grep -o '"health":"up"' | wc -l || true)"
    if [[ "${t}" == *'"serviceName":"gateway"'* && "${t}" == *'"serviceName":"orders"'* \
          && "${t}" == *'"serviceName":"inventory"'* && "${up}" -ge 3 ]]; then ok=1; break; fi
    sleep 0.5
  done
  [[ -n "${ok}" ]] || { echo "demo: check failed: trace ${trace}: ${t:0:300}; ${up} targets up" >&2; exit 1; }
  echo "demo: check ok: trace ${trace} crosses gateway, orders, inventory; ${up} targets up" >&2
fi
wait "${svc}"
