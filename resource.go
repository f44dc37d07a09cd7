package observe

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// buildResource describes the service: OTEL_RESOURCE_ATTRIBUTES first, then
// the service fields (options and OTEL_SERVICE_NAME win), host and process
// attributes. Process command arguments are left out on purpose: they often
// carry secrets.
func buildResource(ctx context.Context, c *config) (*resource.Resource, error) {
	attrs := make([]attribute.KeyValue, 0, len(c.resourceAttrs)+3)
	for _, kv := range c.resourceAttrs {
		attrs = append(attrs, attribute.String(kv.key, kv.value))
	}
	attrs = append(attrs, semconv.ServiceName(c.serviceName))
	if c.serviceVersion != "" {
		attrs = append(attrs, semconv.ServiceVersion(c.serviceVersion))
	}
	if c.environment != "" {
		attrs = append(attrs, attribute.String("deployment.environment", c.environment),
			attribute.String("deployment.environment.name", c.environment))
	}
	r, err := resource.New(ctx,
		resource.WithHost(),
		resource.WithProcessPID(),
		resource.WithProcessExecutableName(),
		resource.WithProcessRuntimeName(),
		resource.WithProcessRuntimeVersion(),
		resource.WithProcessRuntimeDescription(),
		resource.WithTelemetrySDK(),
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(attrs...),
	)
	// Partial detection (a host name that cannot be read, say) is not fatal.
	if err != nil && !errors.Is(err, resource.ErrPartialResource) && r == nil {
		return nil, err
	}
	return r, nil
}
