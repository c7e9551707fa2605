package main

// A native reference client for operator/tpuserve_dev/perf/bench_client.py: Decode calls from Go on one HTTP/2 connection at
// Poisson arrivals (absolute schedule), the first stream message timed on receipt. Against this server run
// with -stamp-lateness, each request's first token id is how late the server itself was, so what the client
// and the loopback transport add to TTFT is known per request. The gap between this client's figures and a
// Python client's is what the Python client adds.

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// firstTokenID reads samples[0].token_ids[0] of a DecodeResponse as this server encodes it (see response()).
func firstTokenID(msg []byte) int {
	i := 0
	next := func() uint64 { return readVarint(msg, &i) }
	for depth := 0; depth < 3; depth++ { // stream_content(3) > samples(1) > token_ids(2): key, then length
		next()
		next()
	}
	return int(next())
}

// decodeRequest encodes DecodeRequest{max_tokens (4): tokens, token_content (6): {token_ids (1): [1, 2, 3]}}.
func decodeRequest(tokens int) []byte {
	out := varint([]byte{0x20}, uint64(tokens))
	return append(out, 0x32, 0x05, 0x0a, 0x03, 0x01, 0x02, 0x03)
}

func percentile(xs []float64, q float64) float64 {
	return xs[int(q*float64(len(xs)-1)+0.5)]
}

func runClient(target string, rate float64, n, tokens int, ttftMs float64, seed int64) int {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	desc := &grpc.StreamDesc{StreamName: "Decode", ServerStreams: true}
	payload := decodeRequest(tokens)
	call := func() (ttft time.Duration, first []byte, err error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		stream, err := conn.NewStream(ctx, desc, "/jetstream_proto.Orchestrator/Decode")
		if err != nil {
			return 0, nil, err
		}
		if err = stream.SendMsg(&payload); err != nil {
			return 0, nil, err
		}
		if err = stream.CloseSend(); err != nil {
			return 0, nil, err
		}
		for k := 0; ; k++ {
			var msg []byte
			if err := stream.RecvMsg(&msg); err != nil {
				if k == 0 {
					return 0, nil, err
				}
				return ttft, first, nil
			}
			if k == 0 {
				ttft, first = time.Since(start), msg
			}
		}
	}
	if _, _, err := call(); err != nil { // connect first (not measured)
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rng := rand.New(rand.NewSource(seed))
	ttfts := make([]time.Duration, n)
	lates := make([]float64, n)
	failed := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	begin := time.Now()
	at := time.Duration(0)
	for i := 0; i < n; i++ {
		if d := time.Until(begin.Add(at)); d > 0 {
			time.Sleep(d)
		}
		at += time.Duration(rng.ExpFloat64() / rate * float64(time.Second))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ttft, first, err := call()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				ttfts[i] = -1
				return
			}
			ttfts[i], lates[i] = ttft, float64(firstTokenID(first))/1000
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(begin)
	var total, server, client []float64
	for i, t := range ttfts {
		if t < 0 {
			continue
		}
		added := float64(t)/float64(time.Millisecond) - ttftMs
		total = append(total, added)
		server = append(server, lates[i])
		client = append(client, added-lates[i])
	}
	fmt.Printf("REQUESTS ok=%d failed=%d rate=%.1f\n", len(total), failed, float64(n)/elapsed.Seconds())
	for _, row := range []struct {
		name string
		xs   []float64
	}{{"total", total}, {"server", server}, {"client", client}} {
		sort.Float64s(row.xs)
		if len(row.xs) == 0 {
			continue
		}
		fmt.Printf("ADDED %s p50=%.3f p90=%.3f p99=%.3f max=%.3f\n", row.name,
			percentile(row.xs, 0.5), percentile(row.xs, 0.9), percentile(row.xs, 0.99), row.xs[len(row.xs)-1])
	}
	return 0
}
