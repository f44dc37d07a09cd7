#!/usr/bin/env bash
# The gRPC benchmark groups, interleaved: one process per round, each
# running every row of the groups once (OBSERVE_BENCH_ROUND rotates which
# row goes first), and cmd/benchtable -added pairing each row with the bare
# row of its own process. go test's -count would run a row's repetitions
# back to back, and a ~30 µs call over loopback drifts by more than the
# differences measured here between one part of a run and the next.
#
# usage: .ci/benchgrpc.sh [rounds] [benchtime]
set -euo pipefail
rounds=${1:-10}
benchtime=${2:-1s}
cd "$(dirname "$0")/../bench"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/bench.test" .
for ((i = 0; i < rounds; i++)); do
	OBSERVE_BENCH_ROUND=$i "$dir/bench.test" -test.run '^$' -test.bench 'GRPCUnary' \
		-test.benchmem -test.count=1 -test.benchtime="$benchtime"
done | tee /tmp/observe-bench-grpc.txt | go run ./cmd/benchtable -added
