# The README's test command is `go test -race ./...`; these are conveniences.
.PHONY: test ci bench loadtest fuzz demo

test:
	go test -race ./...

ci:
	.ci/run

# Full comparative benchmark suite: medians of 5 runs, ratios vs observe;
# then the gRPC groups interleaved, one process per round (.ci/benchgrpc.sh).
BENCHTIME ?= 1s
COUNT ?= 5
ROUNDS ?= 10
bench:
	cd bench && go test -run='^$$' -bench=. -skip='GRPCUnary' -benchmem -count=$(COUNT) -benchtime=$(BENCHTIME) ./... | tee /tmp/observe-bench.txt | go run ./cmd/benchtable
	.ci/benchgrpc.sh $(ROUNDS) $(BENCHTIME)

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
