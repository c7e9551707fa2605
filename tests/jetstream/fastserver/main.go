// fastserver: a JetStream-protocol (jetstream_proto.Orchestrator) test server in Go, for client performance
// runs (operator/tpuserve_dev/perf/bench_client.py), where a Python server would be the bottleneck.
//
// Same behaviour as tests/jetstream/delay_server.py: Decode answers max_tokens tokens, one stream message per
// token, the first after -ttft-ms, then one every -itl-ms (absolute schedule); HealthCheck says live.
//
// A Go timer wakes a few hundred microseconds late, which would count as client-added TTFT. -spin-us N sleeps
// until N µs before the first token is due and then yields in a loop until it is, so the first token leaves on
// time (later tokens keep plain timers). On SIGUSR1 the server prints "LATENESS n=.. p50=.. p90=.. p99=..
// max=.." (ms by which each first token was late after the timer, since the last SIGUSR1) and starts again.
// With -stamp-lateness the first token's id is that lateness in µs, so a client's per-request outputs can take
// the server's own delay out of its TTFT exactly.
// With -openai it speaks vLLM's OpenAI-compatible HTTP/SSE protocol instead of gRPC, same delays (openai.go).
// With -client HOST:PORT the same binary is a native reference load client instead (loadclient.go).
// Messages are encoded by hand (raw-bytes codec), so no generated code is needed. Listens on 127.0.0.1 only;
// prints "PORT <n>" when serving.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func varint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// readVarint decodes the protobuf varint at msg[*i:] and moves *i past it.
func readVarint(msg []byte, i *int) uint64 {
	var x uint64
	var s uint
	for *i < len(msg) {
		c := msg[*i]
		*i++
		x |= uint64(c&0x7f) << s
		if c < 0x80 {
			break
		}
		s += 7
	}
	return x
}

// maxTokens reads field 4 (varint) of a DecodeRequest.
func maxTokens(msg []byte) int {
	i := 0
	next := func() uint64 { return readVarint(msg, &i) }
	for i < len(msg) {
		key := next()
		field, wire := key>>3, key&7
		switch wire {
		case 0:
			v := next()
			if field == 4 {
				return int(int32(v))
			}
		case 2:
			n := int(next())
			i += n
		case 5:
			i += 4
		case 1:
			i += 8
		default:
			return 0
		}
	}
	return 0
}

// response encodes DecodeResponse{stream_content: {samples: [{token_ids: [id]}]}}.
func response(id int) []byte {
	ids := varint(nil, uint64(id))
	sample := append([]byte{0x12}, varint(nil, uint64(len(ids)))...) // token_ids = 2, packed
	sample = append(sample, ids...)
	stream := append([]byte{0x0a}, varint(nil, uint64(len(sample)))...) // samples = 1
	stream = append(stream, sample...)
	out := append([]byte{0x1a}, varint(nil, uint64(len(stream)))...) // stream_content = 3
	return append(out, stream...)
}

// lateness collects, per request, how late the first token was ready to send (ms after it was due).
type lateness struct {
	mu sync.Mutex
	ms []float64
}

func (l *lateness) add(d time.Duration) {
	l.mu.Lock()
	l.ms = append(l.ms, float64(d)/float64(time.Millisecond))
	l.mu.Unlock()
}

// report prints the percentiles since the last report and starts a new window.
func (l *lateness) report() {
	l.mu.Lock()
	ms := l.ms
	l.ms = nil
	l.mu.Unlock()
	if len(ms) == 0 {
		fmt.Println("LATENESS n=0")
		return
	}
	sort.Float64s(ms)
	at := func(q float64) float64 { return ms[int(q*float64(len(ms)-1)+0.5)] }
	fmt.Printf("LATENESS n=%d p50=%.3f p90=%.3f p99=%.3f max=%.3f\n", len(ms), at(0.5), at(0.9), at(0.99), ms[len(ms)-1])
}

func main() {
	port := flag.Int("port", 0, "port (0 = any free port)")
	ttftMs := flag.Float64("ttft-ms", 0, "delay before the first token")
	itlMs := flag.Float64("itl-ms", 0, "delay between tokens")
	vocab := flag.Int("vocab-size", 32000, "token ids are below this")
	spin := flag.Int("spin-us", 0, "yield-wait the last N µs before each first token (0 = plain timer)")
	stamp := flag.Bool("stamp-lateness", false, "first token id = µs the first token was late (see above)")
	client := flag.String("client", "", "act as the reference load client against HOST:PORT (loadclient.go)")
	rate := flag.Float64("rate", 100, "client: Poisson arrivals per second")
	requests := flag.Int("requests", 1000, "client: how many Decode calls")
	tokens := flag.Int("tokens", 16, "client: max_tokens per call")
	seed := flag.Int64("seed", 0, "client: arrival-time seed")
	openai := flag.Bool("openai", false, "serve the OpenAI-compatible HTTP/SSE protocol instead (openai.go)")
	chunkTokens := flag.Int("chunk-tokens", 1, "openai: tokens per SSE chunk (the last chunk may carry fewer)")
	batchWrites := flag.Bool("batch-writes", false, "openai: no flush per chunk; Go's 4 KiB response buffer decides "+
		"the writes (an instant server whose tokens are all ready at once, as a loaded server's are)")
	flag.Parse()
	if *client != "" {
		encoding.RegisterCodec(rawCodec{})
		os.Exit(runClient(*client, *rate, *requests, *tokens, *ttftMs, *seed))
	}
	spinFor := time.Duration(*spin) * time.Microsecond
	late := &lateness{}
	encoding.RegisterCodec(rawCodec{})
	ttft := time.Duration(*ttftMs * float64(time.Millisecond))
	itl := time.Duration(*itlMs * float64(time.Millisecond))
	messages := make([][]byte, 4096)
	for i := range messages {
		messages[i] = response(3 + (i*7919)%(*vocab-3))
	}

	// waitFor sleeps until token k of a request that arrived at start is due; for the first token it returns
	// how late it still was (and records it), else 0.
	waitFor := func(start time.Time, k int) time.Duration {
		if ttft <= 0 && itl <= 0 {
			return 0
		}
		due := start.Add(ttft + time.Duration(k)*itl)
		if k == 0 && spinFor > 0 {
			if d := time.Until(due) - spinFor; d > 0 {
				time.Sleep(d)
			}
			for time.Now().Before(due) {
				runtime.Gosched()
			}
		} else if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if k != 0 {
			return 0
		}
		l := time.Since(due)
		late.add(l)
		return l
	}
	stamping := *stamp && (ttft > 0 || itl > 0)
	if *openai {
		os.Exit(serveOpenAI(*port, waitFor, stamping, *chunkTokens, *batchWrites, late))
	}

	decode := func(srv any, stream grpc.ServerStream) error {
		var req []byte
		if err := stream.RecvMsg(&req); err != nil {
			return err
		}
		start := time.Now()
		n := maxTokens(req)
		for k := 0; k < n; k++ {
			l := waitFor(start, k)
			msg := messages[k%len(messages)]
			if k == 0 && stamping {
				msg = response(int(l.Microseconds()))
			}
			if err := stream.SendMsg(&msg); err != nil {
				return err
			}
		}
		return nil
	}
	health := func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var req []byte
		if err := dec(&req); err != nil {
			return nil, err
		}
		live := []byte{0x08, 0x01} // is_live = true
		return &live, nil
	}
	desc := grpc.ServiceDesc{
		ServiceName: "jetstream_proto.Orchestrator",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "HealthCheck", Handler: health}},
		Streams:     []grpc.StreamDesc{{StreamName: "Decode", Handler: decode, ServerStreams: true}},
	}
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer(grpc.MaxConcurrentStreams(1 << 20))
	server.RegisterService(&desc, struct{}{})
	fmt.Printf("PORT %d\n", lis.Addr().(*net.TCPAddr).Port)
	go handleSignals(late, server.Stop)
	if err := server.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// handleSignals prints the lateness report on SIGUSR1 and stops the server on SIGTERM or SIGINT (both protocols).
func handleSignals(late *lateness, stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	for s := range sig {
		if s == syscall.SIGUSR1 {
			late.report()
			continue
		}
		stop()
		return
	}
}
