# The README's test command is `go test -race ./...`; these are conveniences.
.PHONY: test ci bench loadtest fuzz demo

test:
	go test -race ./...

ci:
	.ci/run

# Full comparative benchmark suite: medians of 5 runs, ratios vs observe.
BENCHTIME ?= 1s
COUNT ?= 5
bench:
	cd bench && go test -run='^$$' -bench=. -benchmem -count=$(COUNT) -benchtime=$(BENCHTIME) ./... | tee /tmp/observe-bench.txt | go run ./cmd/benchtable

# wrk against the quickstart (and the peer stack, bench/cmd/loadpeer), with
# and without instrumentation: medians of 3 rounds of 10s.
loadtest:
	.ci/loadtest.sh 10s 3

fuzz:
	.ci/fuzz.sh 30s

# Prometheus + Jaeger + examples/services with traffic, on 127.0.0.1; prints
# the URLs to open; Ctrl-C stops everything.
demo:
	.ci/demo.sh
