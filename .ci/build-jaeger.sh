#!/usr/bin/env bash
# Builds Jaeger v2 (an OpenTelemetry Collector distribution) from the Go module
# proxy and caches the binary under $HOME/.cache/observe-test/. Prints the path.
#
# `go install …@latest` refuses Jaeger (its go.mod has replace directives), so we
# build it from a throwaway wrapper module that reuses Jaeger's own go.mod.
set -euo pipefail
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
CACHE="${HOME}/.cache/observe-test"
BIN="${CACHE}/jaeger-${JAEGER_VERSION}"
if [[ -x "${BIN}" ]]; then echo "${BIN}"; exit 0; fi
mkdir -p "${CACHE}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT
cd "${WORK}"
# Fetch Jaeger's module source to read its go.mod.
GOFLAGS=-mod=mod GOSUMDB=off go mod download -json "github.com/jaegertracing/jaeger@${JAEGER_VERSION}" > dl.json
SRC="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' dl.json)"
sed 's#^module .*#module observe.test/jaegerbuild#' "${SRC}/go.mod" > go.mod
# Ensure the Go version line does not stop the build on a newer toolchain.
echo "require github.com/jaegertracing/jaeger ${JAEGER_VERSION}" >> go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
GO
GOFLAGS=-mod=mod GOSUMDB=off go mod tidy -e >&2 || true
GOFLAGS=-mod=mod GOSUMDB=off go build -trimpath -o "${BIN}.tmp" github.com/jaegertracing/jaeger/cmd/jaeger >&2
mv "${BIN}.tmp" "${BIN}"
echo "${BIN}"
