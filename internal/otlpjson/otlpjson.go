// Package otlpjson encodes finished spans as OTLP/JSON, the JSON encoding of
// ExportTraceServiceRequest that the OTLP specification defines: trace and
// span IDs as lowercase hex, enums as integers, 64-bit integers as decimal
// strings, lowerCamelCase field names. An OTLP/HTTP receiver accepts the
// output as a request body with Content-Type application/json.
package otlpjson

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Request is ExportTraceServiceRequest.
type Request struct {
	ResourceSpans []ResourceSpans `json:"resourceSpans"`
}

// ResourceSpans groups the spans of one resource.
type ResourceSpans struct {
	Resource   Resource     `json:"resource"`
	ScopeSpans []ScopeSpans `json:"scopeSpans"`
	SchemaURL  string       `json:"schemaUrl,omitempty"`
}

// Resource is the entity that produced the spans.
type Resource struct {
	Attributes []KeyValue `json:"attributes"`
}

// ScopeSpans groups the spans of one instrumentation scope.
type ScopeSpans struct {
	Scope     Scope  `json:"scope"`
	Spans     []Span `json:"spans"`
	SchemaURL string `json:"schemaUrl,omitempty"`
}

// Scope is an instrumentation scope.
type Scope struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// Span is one span.
type Span struct {
	TraceID                string     `json:"traceId"`
	SpanID                 string     `json:"spanId"`
	TraceState             string     `json:"traceState,omitempty"`
	ParentSpanID           string     `json:"parentSpanId,omitempty"`
	Flags                  uint32     `json:"flags,omitempty"`
	Name                   string     `json:"name"`
	Kind                   int        `json:"kind"`
	StartTimeUnixNano      string     `json:"startTimeUnixNano"`
	EndTimeUnixNano        string     `json:"endTimeUnixNano"`
	Attributes             []KeyValue `json:"attributes,omitempty"`
	DroppedAttributesCount int        `json:"droppedAttributesCount,omitempty"`
	Events                 []Event    `json:"events,omitempty"`
	DroppedEventsCount     int        `json:"droppedEventsCount,omitempty"`
	Links                  []Link     `json:"links,omitempty"`
	DroppedLinksCount      int        `json:"droppedLinksCount,omitempty"`
	Status                 Status     `json:"status"`
}

// Event is a span event.
type Event struct {
	TimeUnixNano           string     `json:"timeUnixNano"`
	Name                   string     `json:"name"`
	Attributes             []KeyValue `json:"attributes,omitempty"`
	DroppedAttributesCount int        `json:"droppedAttributesCount,omitempty"`
}

// Link is a span link.
type Link struct {
	TraceID                string     `json:"traceId"`
	SpanID                 string     `json:"spanId"`
	TraceState             string     `json:"traceState,omitempty"`
	Attributes             []KeyValue `json:"attributes,omitempty"`
	DroppedAttributesCount int        `json:"droppedAttributesCount,omitempty"`
	Flags                  uint32     `json:"flags,omitempty"`
}

// Status is a span status; Code is OTLP's (0 unset, 1 ok, 2 error).
type Status struct {
	Message string `json:"message,omitempty"`
	Code    int    `json:"code,omitempty"`
}

// KeyValue is an attribute.
type KeyValue struct {
	Key   string   `json:"key"`
	Value AnyValue `json:"value"`
}

// AnyValue holds exactly one of its fields.
type AnyValue struct {
	StringValue *string     `json:"stringValue,omitempty"`
	BoolValue   *bool       `json:"boolValue,omitempty"`
	IntValue    *string     `json:"intValue,omitempty"`
	DoubleValue *jsonDouble `json:"doubleValue,omitempty"`
	ArrayValue  *ArrayValue `json:"arrayValue,omitempty"`
}

// ArrayValue is a list of values.
type ArrayValue struct {
	Values []AnyValue `json:"values"`
}

// jsonDouble writes NaN and the infinities as the strings proto3 JSON uses.
type jsonDouble float64

func (d jsonDouble) MarshalJSON() ([]byte, error) {
	f := float64(d)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

// Encode returns spans as an OTLP/JSON request, grouped by resource and
// scope in the order they first appear.
func Encode(spans []sdktrace.ReadOnlySpan) ([]byte, error) {
	return json.Marshal(Build(spans))
}

// Build returns spans as a Request.
func Build(spans []sdktrace.ReadOnlySpan) Request {
	req := Request{ResourceSpans: []ResourceSpans{}}
	type scopeKey struct {
		res   *resource.Resource
		scope instrumentation.Scope
	}
	resIdx := map[*resource.Resource]int{}
	scopeIdx := map[scopeKey]int{}
	for _, sp := range spans {
		res := sp.Resource()
		ri, ok := resIdx[res]
		if !ok {
			ri = len(req.ResourceSpans)
			resIdx[res] = ri
			rs := ResourceSpans{Resource: Resource{Attributes: []KeyValue{}}}
			if res != nil {
				rs.Resource.Attributes = attrs(res.Attributes())
				rs.SchemaURL = res.SchemaURL()
			}
			req.ResourceSpans = append(req.ResourceSpans, rs)
		}
		sc := sp.InstrumentationScope()
		k := scopeKey{res, instrumentation.Scope{Name: sc.Name, Version: sc.Version, SchemaURL: sc.SchemaURL}}
		si, ok := scopeIdx[k]
		rs := &req.ResourceSpans[ri]
		if !ok {
			si = len(rs.ScopeSpans)
			scopeIdx[k] = si
			rs.ScopeSpans = append(rs.ScopeSpans, ScopeSpans{Scope: Scope{Name: sc.Name, Version: sc.Version}, SchemaURL: sc.SchemaURL})
		}
		rs.ScopeSpans[si].Spans = append(rs.ScopeSpans[si].Spans, span(sp))
	}
	return req
}

// Span flags (the OTLP SpanFlags enum): the W3C trace flags in the low
// byte, and whether the parent, or the link's span, is remote.
const (
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

func span(sp sdktrace.ReadOnlySpan) Span {
	sc := sp.SpanContext()
	out := Span{
		TraceID:           hexID(sc.TraceID()),
		SpanID:            hexSpan(sc.SpanID()),
		TraceState:        sc.TraceState().String(),
		Name:              sp.Name(),
		Kind:              int(sp.SpanKind()), // the Go and OTLP enums agree
		StartTimeUnixNano: strconv.FormatInt(sp.StartTime().UnixNano(), 10),
		EndTimeUnixNano:   strconv.FormatInt(sp.EndTime().UnixNano(), 10),
		Attributes:        attrs(sp.Attributes()),
		Flags:             uint32(sc.TraceFlags()) | flagHasIsRemote,
	}
	if p := sp.Parent(); p.IsValid() {
		out.ParentSpanID = hexSpan(p.SpanID())
		if p.IsRemote() {
			out.Flags |= flagIsRemote
		}
	}
	out.DroppedAttributesCount = sp.DroppedAttributes()
	out.DroppedEventsCount = sp.DroppedEvents()
	out.DroppedLinksCount = sp.DroppedLinks()
	for _, e := range sp.Events() {
		out.Events = append(out.Events, Event{
			TimeUnixNano:           strconv.FormatInt(e.Time.UnixNano(), 10),
			Name:                   e.Name,
			Attributes:             attrs(e.Attributes),
			DroppedAttributesCount: e.DroppedAttributeCount,
		})
	}
	for _, l := range sp.Links() {
		lk := Link{
			TraceID:                hexID(l.SpanContext.TraceID()),
			SpanID:                 hexSpan(l.SpanContext.SpanID()),
			TraceState:             l.SpanContext.TraceState().String(),
			Attributes:             attrs(l.Attributes),
			DroppedAttributesCount: l.DroppedAttributeCount,
			Flags:                  uint32(l.SpanContext.TraceFlags()) | flagHasIsRemote,
		}
		if l.SpanContext.IsRemote() {
			lk.Flags |= flagIsRemote
		}
		out.Links = append(out.Links, lk)
	}
	st := sp.Status()
	switch st.Code {
	case codes.Ok:
		out.Status.Code = 1
	case codes.Error:
		out.Status.Code = 2
		out.Status.Message = st.Description
	}
	return out
}

func hexID(id trace.TraceID) string  { return hex.EncodeToString(id[:]) }
func hexSpan(id trace.SpanID) string { return hex.EncodeToString(id[:]) }

func attrs(kvs []attribute.KeyValue) []KeyValue {
	out := make([]KeyValue, 0, len(kvs))
	for _, kv := range kvs {
		out = append(out, KeyValue{Key: string(kv.Key), Value: value(kv.Value)})
	}
	return out
}

func value(v attribute.Value) AnyValue {
	switch v.Type() {
	case attribute.BOOL:
		b := v.AsBool()
		return AnyValue{BoolValue: &b}
	case attribute.INT64:
		s := strconv.FormatInt(v.AsInt64(), 10)
		return AnyValue{IntValue: &s}
	case attribute.FLOAT64:
		d := jsonDouble(v.AsFloat64())
		return AnyValue{DoubleValue: &d}
	case attribute.STRING:
		s := v.AsString()
		return AnyValue{StringValue: &s}
	case attribute.BOOLSLICE:
		var a ArrayValue
		for _, b := range v.AsBoolSlice() {
			a.Values = append(a.Values, value(attribute.BoolValue(b)))
		}
		return AnyValue{ArrayValue: &a}
	case attribute.INT64SLICE:
		var a ArrayValue
		for _, i := range v.AsInt64Slice() {
			a.Values = append(a.Values, value(attribute.Int64Value(i)))
		}
		return AnyValue{ArrayValue: &a}
	case attribute.FLOAT64SLICE:
		var a ArrayValue
		for _, f := range v.AsFloat64Slice() {
			a.Values = append(a.Values, value(attribute.Float64Value(f)))
		}
		return AnyValue{ArrayValue: &a}
	case attribute.STRINGSLICE:
		var a ArrayValue
		for _, s := range v.AsStringSlice() {
			a.Values = append(a.Values, value(attribute.StringValue(s)))
		}
		return AnyValue{ArrayValue: &a}
	}
	s := v.Emit()
	return AnyValue{StringValue: &s}
}
