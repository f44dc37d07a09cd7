# The README's test command is `go test -race ./...`; these are conveniences.
.PHONY: test ci bench loadtest fuzz

test:
	go test -race ./...

ci:
	.ci/run

# Full comparative benchmark suite: medians of 5 runs, ratios vs observe.
BENCHTIME ?= 1s
COUNT ?= 5
bench:
	cd bench && go test -run='^$$' -bench=. -benchmem -count=$(COUNT) -benchtime=$(BENCHTIME) ./... | tee /tmp/observe-bench.txt | go run ./cmd/benchtable

loadtest:
	.ci/loadtest.sh 10s

fuzz:
	.ci/fuzz.sh 30s
