// Package integration holds observe's end-to-end tests against real
// backends: several processes, each initialised with observe.Init as a
// service would be, exporting to a Jaeger v2 the test starts on loopback.
// The processes are the test binary itself, re-executed in a role
// (OBSERVE_INTEGRATION_ROLE).
package integration
