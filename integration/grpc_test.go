package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-proxy/strata/certs"
)

// gRPC end to end: a real grpc-go client and server with strata between
// them. The health service covers unary and server-streaming calls with
// generated code that ships with grpc-go; a small hand-written service
// (rawService) with a codec of raw bytes covers metadata, trailers, error
// statuses, deadlines, client streaming and bidirectional streaming with
// no .proto code generation.

func init() { encoding.RegisterCodec(rawCodec{}) } // the server's codec for "application/grpc+raw"

// raw is the call option of the raw service's calls.
var raw = grpc.ForceCodec(rawCodec{})

// rawCodec marshals *[]byte as is.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: %T is not *[]byte", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: %T is not *[]byte", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "raw" }

// rawServer implements the hand-written service strata.test.Raw.
type rawServer struct {
	// deadline receives, for each Sleep call, how long the server's
	// context had left when the call arrived (0: no deadline), so that a
	// test can see the client's grpc-timeout reached the server.
	deadline chan time.Duration
	// canceled counts Sleep calls whose context ended before the sleep.
	canceled atomic.Int32
}

// Unary echoes the request, with the "x-req" metadata as header metadata
// and a trailer "x-trailer".
func (s *rawServer) unary(ctx context.Context, in []byte) ([]byte, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	grpc.SetHeader(ctx, metadata.Pairs("x-head", strings.Join(md.Get("x-req"), ",")))
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", fmt.Sprintf("len=%d", len(in))))
	return append([]byte("echo:"), in...), nil
}

func (s *rawServer) fail(ctx context.Context, in []byte) ([]byte, error) {
	return nil, status.Errorf(codes.NotFound, "no such thing: %s", in)
}

func (s *rawServer) sleep(ctx context.Context, in []byte) ([]byte, error) {
	left := time.Duration(0)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	s.deadline <- left
	select {
	case <-ctx.Done():
		s.canceled.Add(1)
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-time.After(5 * time.Second):
		return []byte("slept"), nil
	}
}

// sum reads messages until the client closes its side, then answers with
// their count and total length.
func (s *rawServer) sum(stream grpc.ServerStream) error {
	n, total := 0, 0
	for {
		var m []byte
		err := stream.RecvMsg(&m)
		if err == io.EOF {
			out := []byte(fmt.Sprintf("%d messages, %d bytes", n, total))
			return stream.SendMsg(&out)
		}
		if err != nil {
			return err
		}
		n++
		total += len(m)
	}
}

// chat answers each message as it arrives.
func (s *rawServer) chat(stream grpc.ServerStream) error {
	for {
		var m []byte
		err := stream.RecvMsg(&m)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		out := append([]byte("re:"), m...)
		if err := stream.SendMsg(&out); err != nil {
			return err
		}
	}
}

func unaryHandler(f func(*rawServer, context.Context, []byte) ([]byte, error)) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var in []byte
		if err := dec(&in); err != nil {
			return nil, err
		}
		out, err := f(srv.(*rawServer), ctx, in)
		if err != nil {
			return nil, err
		}
		return &out, nil
	}
}

var rawServiceDesc = grpc.ServiceDesc{
	ServiceName: "strata.test.Raw",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Unary", Handler: unaryHandler((*rawServer).unary)},
		{MethodName: "Fail", Handler: unaryHandler((*rawServer).fail)},
		{MethodName: "Sleep", Handler: unaryHandler((*rawServer).sleep)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Sum", ClientStreams: true, Handler: func(srv any, st grpc.ServerStream) error { return srv.(*rawServer).sum(st) }},
		{StreamName: "Chat", ClientStreams: true, ServerStreams: true, Handler: func(srv any, st grpc.ServerStream) error { return srv.(*rawServer).chat(st) }},
	},
}

// startGRPCServer runs the health and raw services, h2c or over TLS with a
// certificate for backend.test.
func startGRPCServer(t *testing.T, p *pki, useTLS bool) (addr string, hs *health.Server, rs *rawServer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if useTLS {
		cert := p.leaf(t, certs.IssueOptions{}, "backend.test")
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	}
	srv := grpc.NewServer(opts...)
	hs = health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	rs = &rawServer{deadline: make(chan time.Duration, 8)}
	srv.RegisterService(&rawServiceDesc, rs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), hs, rs
}

// TestGRPC runs a grpc-go client through strata (a TLS front with ALPN h2,
// and an h2c front) to a grpc-go server (h2c and TLS backends with proto
// h2): unary calls with metadata and trailers, error statuses, deadlines,
// server, client and bidirectional streaming.
func TestGRPC(t *testing.T) {
	p := newPKI(t)
	for _, front := range []string{"h2", "h2c"} {
		for _, back := range []string{"h2c", "h2"} {
			t.Run(front+"-to-"+back, func(t *testing.T) {
				srvAddr, hs, rs := startGRPCServer(t, p, back == "h2")
				addr := freeAddr(t)
				_, _, frontYAML := frontClient(t, p, front, addr)
				startStrata(t, fmt.Sprintf("frontends:\n  web:\n    bind: %q\n    mode: http\n%s    default_backend: app\n%s",
					addr, frontYAML, h2BackendYAML(p, back == "h2", srvAddr)))
				creds := insecure.NewCredentials()
				if front == "h2" {
					creds = credentials.NewTLS(&tls.Config{RootCAs: p.pool(), ServerName: "localhost"})
				}
				conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()

				t.Run("unary", func(t *testing.T) { testGRPCUnary(t, ctx, conn) })
				t.Run("error status", func(t *testing.T) {
					in, out := []byte("widget"), []byte(nil)
					err := conn.Invoke(ctx, "/strata.test.Raw/Fail", &in, &out, raw)
					if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such thing: widget" {
						t.Fatalf("got %v, want NotFound \"no such thing: widget\"", err)
					}
				})
				t.Run("health", func(t *testing.T) { testGRPCHealth(t, ctx, conn, hs) })
				t.Run("deadline", func(t *testing.T) { testGRPCDeadline(t, ctx, conn, rs) })
				t.Run("cancel", func(t *testing.T) { testGRPCCancel(t, conn, rs) })
				t.Run("client streaming", func(t *testing.T) {
					st, err := conn.NewStream(ctx, &rawServiceDesc.Streams[0], "/strata.test.Raw/Sum", raw)
					if err != nil {
						t.Fatal(err)
					}
					total := 0
					for i := range 50 {
						m := bytes.Repeat([]byte{'x'}, i*100)
						total += len(m)
						if err := st.SendMsg(&m); err != nil {
							t.Fatal(err)
						}
					}
					if err := st.CloseSend(); err != nil {
						t.Fatal(err)
					}
					var out []byte
					if err := st.RecvMsg(&out); err != nil {
						t.Fatal(err)
					}
					if want := fmt.Sprintf("50 messages, %d bytes", total); string(out) != want {
						t.Fatalf("got %q, want %q", out, want)
					}
				})
				t.Run("bidirectional streaming", func(t *testing.T) { testGRPCChat(t, ctx, conn) })
			})
		}
	}
}

func testGRPCUnary(t *testing.T, ctx context.Context, conn *grpc.ClientConn) {
	for i, size := range []int{0, 1, 1000, 100 << 10, 3 << 20} {
		in := bytes.Repeat([]byte{byte('a' + i)}, size)
		var out []byte
		var hdr, tr metadata.MD
		cctx := metadata.AppendToOutgoingContext(ctx, "x-req", fmt.Sprint("v", i))
		err := conn.Invoke(cctx, "/strata.test.Raw/Unary", &in, &out, raw, grpc.Header(&hdr), grpc.Trailer(&tr))
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(out, append([]byte("echo:"), in...)) {
			t.Fatalf("%d bytes: the answer differs (%d bytes)", size, len(out))
		}
		if got := hdr.Get("x-head"); len(got) != 1 || got[0] != fmt.Sprint("v", i) {
			t.Errorf("%d bytes: header metadata x-head %q, want the request's x-req v%d", size, got, i)
		}
		if got := tr.Get("x-trailer"); len(got) != 1 || got[0] != fmt.Sprintf("len=%d", size) {
			t.Errorf("%d bytes: trailer metadata x-trailer %q", size, got)
		}
	}
}

func testGRPCHealth(t *testing.T, ctx context.Context, conn *grpc.ClientConn, hs *health.Server) {
	hc := healthpb.NewHealthClient(conn)
	hs.SetServingStatus("app", healthpb.HealthCheckResponse_SERVING)
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "app"})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v", resp.GetStatus())
	}
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nothing"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v, want NotFound", err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "app"})
	if err != nil {
		t.Fatal(err)
	}
	want := []healthpb.HealthCheckResponse_ServingStatus{
		healthpb.HealthCheckResponse_SERVING, healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING,
	}
	for i, st := range want {
		m, err := w.Recv()
		if err != nil {
			t.Fatalf("Watch update %d: %v", i, err)
		}
		if m.GetStatus() != st {
			t.Fatalf("Watch update %d: %v, want %v", i, m.GetStatus(), st)
		}
		// Each change is made once the previous update arrived: the
		// server's stream reaches the client as it is written.
		if i+1 < len(want) {
			hs.SetServingStatus("app", want[i+1])
		}
	}
}

// testGRPCDeadline calls a server that sleeps past the client's
// deadline. grpc-go's server resets the stream when the deadline (which it
// learns from grpc-timeout) passes, at about the moment the client's own
// timer fires; directly, the client turns such a reset (CANCEL) into
// DeadlineExceeded, but strata's HTTP/2 front can only reset the client's
// stream with INTERNAL_ERROR (x/net's server has no other reset for a
// handler to send). So when the server's reset wins that race the call
// ends Internal; the call is then made again, a bounded number of times.
func testGRPCDeadline(t *testing.T, ctx context.Context, conn *grpc.ClientConn, rs *rawServer) {
	for attempt := 1; ; attempt++ {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		start := time.Now()
		in, out := []byte("zz"), []byte(nil)
		err := conn.Invoke(dctx, "/strata.test.Raw/Sleep", &in, &out, raw)
		took := time.Since(start)
		cancel()
		select {
		case left := <-rs.deadline:
			if left <= 0 || left > 500*time.Millisecond {
				t.Errorf("the server's context had %v left; want the client's deadline (grpc-timeout) to reach it", left)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the call never reached the server")
		}
		if took > 3*time.Second {
			t.Errorf("the call took %v past a 500ms deadline", took)
		}
		st := status.Convert(err)
		if st.Code() == codes.DeadlineExceeded {
			break
		}
		if st.Code() != codes.Internal || !strings.Contains(st.Message(), "RST_STREAM") || attempt == 5 {
			t.Fatalf("attempt %d: got %v, want DeadlineExceeded", attempt, err)
		}
		t.Logf("attempt %d: the server's deadline reset came first (%v)", attempt, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rs.canceled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if rs.canceled.Load() == 0 {
		t.Error("the server's call was not ended by the deadline")
	}
}

// testGRPCCancel: a call the client cancels (no deadline) is ended at the
// server too: strata resets its stream to the server at once.
func testGRPCCancel(t *testing.T, conn *grpc.ClientConn, rs *rawServer) {
	before := rs.canceled.Load()
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		in, out := []byte("zz"), []byte(nil)
		errc <- conn.Invoke(cctx, "/strata.test.Raw/Sleep", &in, &out, raw)
	}()
	select {
	case left := <-rs.deadline:
		if left != 0 {
			t.Errorf("the server saw a deadline (%v left) on a call without one", left)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call never reached the server")
	}
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("got %v, want Canceled", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for rs.canceled.Load() == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if rs.canceled.Load() == before {
		t.Fatal("the server's call went on after the client canceled it")
	}
}

// testGRPCChat sends each message only after the answer to the previous
// one arrived: the request and the response must both flow while the call
// is open.
func testGRPCChat(t *testing.T, ctx context.Context, conn *grpc.ClientConn) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := conn.NewStream(cctx, &rawServiceDesc.Streams[1], "/strata.test.Raw/Chat", raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		m := []byte(fmt.Sprint("message ", i, strings.Repeat("-", i*500)))
		if err := st.SendMsg(&m); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		var out []byte
		if err := st.RecvMsg(&out); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		if !bytes.Equal(out, append([]byte("re:"), m...)) {
			t.Fatalf("answer %d differs", i)
		}
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := st.RecvMsg(&out); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, want the call to end (io.EOF)", err)
	}
}
