//go:build !redsample

package observe

// TEMPORARY until internal/redsample lands on main.
func (o *Observer) startAnomaly() {}
