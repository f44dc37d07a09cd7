// Package bench holds the comparative benchmarks of observe against its
// peers (otelhttp, otelgrpc, promhttp, zap, zerolog, masq…). It is a module of
// its own so that users of observe never download the peers.
package bench
