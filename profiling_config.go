package observe

import (
	"time"

	"github.com/observekit/observe/internal/envconfig"
	"github.com/observekit/observe/internal/logging"
	"github.com/observekit/observe/internal/profiling"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// WithMutexProfiling turns mutex contention profiling on, at a low-overhead
// rate (runtime.SetMutexProfileFraction(profiling.DefaultMutexProfileFraction),
// unless the program set a fraction itself). With PYROSCOPE_SERVER_ADDRESS
// the mutex_count and mutex_duration profiles are pushed; in every case
// /debug/pprof/mutex on the admin endpoints has data. Shutdown turns it off.
func WithMutexProfiling() Option { return func(c *config) { c.profileMutex = true } }

// WithBlockProfiling turns blocking profiling on, at a low-overhead rate
// (runtime.SetBlockProfileRate(profiling.DefaultBlockProfileRate): every
// blocking event of 10µs or more, shorter ones sampled). With
// PYROSCOPE_SERVER_ADDRESS the block_count and block_duration profiles are
// pushed; in every case /debug/pprof/block has data. Shutdown turns it off.
func WithBlockProfiling() Option { return func(c *config) { c.profileBlock = true } }

// WithProfileLinks turns span↔profile links on or off (see
// profiling.LinkSpans): CPU samples of a sampled request carry its span_id,
// span_name and endpoint, and its root span gets pyroscope.profile.id. The
// recent CPU profiles are then kept in process too, so that the status page
// and GET /debug/traces/{trace_id}/profile show the profile of a trace. By
// default they are on when profiles are pushed (PYROSCOPE_SERVER_ADDRESS);
// OBSERVE_PROFILE_LINKS=on|off chooses without code, and this option wins.
func WithProfileLinks(on bool) Option { return func(c *config) { c.profileLinks = &on } }

// WithProfileUploadInterval sets how often profiles are cut and pushed to
// Pyroscope (default 15s).
func WithProfileUploadInterval(d time.Duration) Option {
	return func(c *config) { c.profileUploadInterval = d }
}

// loadProfilingEnv reads OBSERVE_PROFILE_LINKS.
func loadProfilingEnv(env *envconfig.Env, c *config) {
	var on bool
	if env.Switch("OBSERVE_PROFILE_LINKS", &on) {
		c.profileLinks = &on
	}
}

func (c *config) profileLinksOn() bool {
	if c.profileLinks != nil {
		return *c.profileLinks
	}
	return c.pyroscopeAddr != ""
}

func (o *Observer) profilingConfig() profiling.Config {
	c := o.cfg
	pc := profiling.Config{
		ServerAddress:     c.pyroscopeAddr,
		ApplicationName:   c.serviceName,
		Tags:              profileTags(c, o.resource),
		BasicAuthUser:     c.pyroscopeUser,
		BasicAuthPassword: c.pyroscopePassword,
		UploadInterval:    c.profileUploadInterval,
		Logger:            logging.Named("observe.profiling"),
	}
	if o.cpuProfiles != nil {
		pc.CPUProfiles = o.cpuProfiles.Add // the profile of a trace (status_profile.go)
	}
	if c.profileMutex {
		pc.MutexProfileFraction = profiling.DefaultMutexProfileFraction
	}
	if c.profileBlock {
		pc.BlockProfileRate = profiling.DefaultBlockProfileRate
	}
	return pc
}

// profileTags are the Pyroscope tags from the resource, with label-style
// names (Pyroscope's own service_name convention).
func profileTags(c *config, res *resource.Resource) map[string]string {
	tags := map[string]string{}
	if c.serviceVersion != "" {
		tags["service_version"] = c.serviceVersion
	}
	if c.environment != "" {
		tags["deployment_environment"] = c.environment
	}
	if res != nil {
		if h, ok := res.Set().Value(semconv.HostNameKey); ok && h.AsString() != "" {
			tags["host"] = h.AsString()
		}
	}
	return tags
}
