package testbackend

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	collogspb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Fault is a way an OTLP backend can fail.
type Fault string

// The faults a FaultServer can play. Refused, Blackhole and CloseMidStream
// work for either protocol; the HTTP status faults answer OTLP/HTTP, the gRPC
// status faults answer OTLP/gRPC.
const (
	// FaultRefused is a port with nothing listening: every connection is
	// refused.
	FaultRefused Fault = "refused"
	// FaultBlackhole accepts connections and reads what is sent, but never
	// answers: a hung collector (or a dropped route) until the client's
	// timeout.
	FaultBlackhole Fault = "blackhole"
	// FaultHTTP500, FaultHTTP429 and FaultHTTP503 answer every OTLP/HTTP
	// request with that status (429 and 503 with Retry-After: 1).
	FaultHTTP500 Fault = "http-500"
	FaultHTTP429 Fault = "http-429"
	FaultHTTP503 Fault = "http-503"
	// FaultGRPCUnavailable and FaultGRPCResourceExhausted are real OTLP/gRPC
	// collectors (trace, metrics and logs services) failing every export
	// with that status.
	FaultGRPCUnavailable       Fault = "grpc-unavailable"
	FaultGRPCResourceExhausted Fault = "grpc-resource-exhausted"
	// FaultCloseMidStream closes the connection in the middle of an
	// exchange: for HTTP after the response headers and part of a body that
	// announced more; for gRPC after the HTTP/2 handshake, once the call has
	// begun arriving.
	FaultCloseMidStream Fault = "close-mid-stream"
	// FaultNone is a healthy collector accepting every export (HTTP 200 with
	// an empty response message, gRPC OK): the baseline to compare a fault
	// with.
	FaultNone Fault = "none"
)

// FaultsFor lists the faults that apply to an OTLP protocol ("grpc" or
// "http/protobuf").
func FaultsFor(protocol string) []Fault {
	if protocol == "grpc" {
		return []Fault{FaultRefused, FaultBlackhole, FaultGRPCUnavailable, FaultGRPCResourceExhausted, FaultCloseMidStream}
	}
	return []Fault{FaultRefused, FaultBlackhole, FaultHTTP500, FaultHTTP429, FaultHTTP503, FaultCloseMidStream}
}

// FaultServer is a failing OTLP backend on 127.0.0.1, stopped when the test
// ends (or by Close).
type FaultServer struct {
	Fault    Fault
	Protocol string // "grpc" or "http/protobuf"
	// Addr is host:port; URL is "http://" + Addr, the collector's base URL
	// (OTEL_EXPORTER_OTLP_ENDPOINT).
	Addr string
	URL  string

	hits atomic.Int64 // connections (refused: none) or requests seen

	closeOnce sync.Once
	stop      func()
}

// Hits reports how many connections (blackhole, close-mid-stream) or
// requests (status faults) the server has seen: a test can check the
// exporter really met the fault.
func (s *FaultServer) Hits() int64 { return s.hits.Load() }

// Close stops the server and closes every connection it holds. It is
// idempotent; tests need not call it.
func (s *FaultServer) Close() { s.closeOnce.Do(func() { s.stop() }) }

// StartFault starts a server playing fault for protocol ("grpc" or
// "http/protobuf").
func StartFault(t testing.TB, fault Fault, protocol string) *FaultServer {
	t.Helper()
	s := &FaultServer{Fault: fault, Protocol: protocol, stop: func() {}}
	var err error
	switch fault {
	case FaultNone:
		if protocol == "grpc" {
			err = s.startGRPCStatus(codes.OK)
		} else {
			err = s.startHTTPStatus(http.StatusOK)
		}
	case FaultRefused:
		err = s.startRefused()
	case FaultBlackhole:
		err = s.startBlackhole()
	case FaultHTTP500, FaultHTTP429, FaultHTTP503:
		code, _ := strconv.Atoi(string(fault[len("http-"):]))
		err = s.startHTTPStatus(code)
	case FaultGRPCUnavailable:
		err = s.startGRPCStatus(codes.Unavailable)
	case FaultGRPCResourceExhausted:
		err = s.startGRPCStatus(codes.ResourceExhausted)
	case FaultCloseMidStream:
		if protocol == "grpc" {
			err = s.startGRPCCloseMidStream()
		} else {
			err = s.startHTTPCloseMidStream()
		}
	default:
		err = fmt.Errorf("unknown fault %q", fault)
	}
	if err != nil {
		t.Fatalf("testbackend: fault %s (%s): %v", fault, protocol, err)
	}
	s.URL = "http://" + s.Addr
	t.Cleanup(s.Close)
	return s
}

// startRefused reserves a port and frees it: nothing listens there after.
// (Another process could take the port meanwhile; on a test machine the
// ephemeral range makes that vanishingly rare.)
func (s *FaultServer) startRefused() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Addr = ln.Addr().String()
	return ln.Close()
}

// connTracker closes every connection a fault server accepted when it stops.
type connTracker struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func (c *connTracker) add(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return false
	}
	if c.conns == nil {
		c.conns = map[net.Conn]struct{}{}
	}
	c.conns[conn] = struct{}{}
	return true
}

func (c *connTracker) remove(conn net.Conn) {
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
}

func (c *connTracker) closeAll() {
	c.mu.Lock()
	c.closed = true
	for conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
	c.mu.Unlock()
}

// serveRaw accepts connections on ln and runs handle on each in a goroutine
// of its own; stop closes the listener and every connection and waits for
// the goroutines.
func (s *FaultServer) serveRaw(ln net.Listener, handle func(net.Conn)) {
	s.Addr = ln.Addr().String()
	var tr connTracker
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			if !tr.add(conn) {
				continue
			}
			s.hits.Add(1)
			tr.wg.Add(1)
			go func() {
				defer tr.wg.Done()
				defer tr.remove(conn)
				defer conn.Close()
				handle(conn)
			}()
		}
	}()
	s.stop = func() {
		ln.Close()
		tr.closeAll()
		tr.wg.Wait()
	}
}

// startBlackhole reads and discards whatever arrives and never writes a
// byte: the client's request goes out whole and its wait for an answer ends
// only at its own timeout.
func (s *FaultServer) startBlackhole() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.serveRaw(ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	return nil
}

// startHTTPStatus answers every request with code, after reading the body
// (200: an empty protobuf response, an accepted export).
func (s *FaultServer) startHTTPStatus(code int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.Addr = ln.Addr().String()
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.hits.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			if code == http.StatusOK {
				// An empty Export*ServiceResponse: everything accepted.
				w.Header().Set("Content-Type", "application/x-protobuf")
				w.WriteHeader(code)
				return
			}
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(code)
			// The request's headers echoed, as a debugging proxy might:
			// the exporter's error carries the body, so a test scanning
			// for leaked credentials sees them come back.
			fmt.Fprintf(w, "fault server: %d %s; request headers: %v\n", code, http.StatusText(code), r.Header)
		}),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	s.stop = func() {
		_ = srv.Close()
		<-done
	}
	return nil
}

// startHTTPCloseMidStream reads the request, announces a 200 with a body
// longer than what it sends, sends part of it and closes the connection.
func (s *FaultServer) startHTTPCloseMidStream() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.serveRaw(ln, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			req.Body.Close()
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 4096\r\n\r\n\x0a\x10partial")
			return // closing with 4080 bytes of the body still owed
		}
	})
	return nil
}

// midStreamListener hands gRPC connections that die after a few hundred
// bytes: past the HTTP/2 preface and settings, inside the first call.
type midStreamListener struct {
	net.Listener
	s     *FaultServer
	after int
}

func (l *midStreamListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.hits.Add(1)
	return &midStreamConn{Conn: c, left: l.after}, nil
}

type midStreamConn struct {
	net.Conn
	mu   sync.Mutex
	left int
}

func (c *midStreamConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	left := c.left
	c.mu.Unlock()
	if left <= 0 {
		c.Conn.Close()
		return 0, io.EOF
	}
	if len(p) > left {
		p = p[:left]
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.left -= n
	c.mu.Unlock()
	return n, err
}

// startGRPCCloseMidStream is a real OTLP/gRPC collector whose connections
// are cut once 200 bytes have arrived: the handshake completes (about 60
// bytes), the first call's headers and data do not.
func (s *FaultServer) startGRPCCloseMidStream() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	return s.serveGRPC(&midStreamListener{Listener: ln, s: s, after: 200}, codes.OK, false)
}

// startGRPCStatus is a real OTLP/gRPC collector failing every export with
// code.
func (s *FaultServer) startGRPCStatus(code codes.Code) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	return s.serveGRPC(ln, code, true)
}

func (s *FaultServer) serveGRPC(ln net.Listener, code codes.Code, count bool) error {
	s.Addr = ln.Addr().String()
	srv := grpc.NewServer()
	fail := func(ctx context.Context) error {
		if count {
			s.hits.Add(1)
		}
		if code == codes.OK {
			return nil
		}
		// The request's metadata echoed in the status message, as the HTTP
		// faults echo headers.
		md, _ := metadata.FromIncomingContext(ctx)
		return status.Errorf(code, "fault server: %s; request metadata: %v", code, md)
	}
	coltracepb.RegisterTraceServiceServer(srv, &faultTraces{fail: fail})
	colmetricspb.RegisterMetricsServiceServer(srv, &faultMetrics{fail: fail})
	collogspb.RegisterLogsServiceServer(srv, &faultLogs{fail: fail})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	s.stop = func() {
		srv.Stop()
		<-done
	}
	return nil
}

type faultTraces struct {
	coltracepb.UnimplementedTraceServiceServer
	fail func(context.Context) error
}

func (f *faultTraces) Export(ctx context.Context, _ *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type faultMetrics struct {
	colmetricspb.UnimplementedMetricsServiceServer
	fail func(context.Context) error
}

func (f *faultMetrics) Export(ctx context.Context, _ *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

type faultLogs struct {
	collogspb.UnimplementedLogsServiceServer
	fail func(context.Context) error
}

func (f *faultLogs) Export(ctx context.Context, _ *collogspb.ExportLogsServiceRequest) (*collogspb.ExportLogsServiceResponse, error) {
	if err := f.fail(ctx); err != nil {
		return nil, err
	}
	return &collogspb.ExportLogsServiceResponse{}, nil
}
