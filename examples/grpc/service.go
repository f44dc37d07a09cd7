package main

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

func otelTracer() trace.Tracer { return otel.Tracer("examples/grpc") }

// service implements three of the interop TestService's methods; the
// others answer UNIMPLEMENTED (recorded under their own names).
type service struct {
	testpb.UnimplementedTestServiceServer
}

// UnaryCall answers with the status the request asks for, OK by default.
func (service) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	slog.InfoContext(ctx, "unary call received") // carries trace_id and span_id
	if rs := req.GetResponseStatus(); rs != nil && rs.GetCode() != 0 {
		return nil, status.Error(codes.Code(rs.GetCode()), rs.GetMessage())
	}
	return &testpb.SimpleResponse{Username: "gopher"}, nil
}

// StreamingOutputCall sends one message per response parameter.
func (service) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		body := make([]byte, p.GetSize())
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall answers each message it receives.
func (service) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		if _, err := stream.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
}
