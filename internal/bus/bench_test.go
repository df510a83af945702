package bus

import (
	"bufio"
	"strconv"
	"testing"
	"time"
)

// BenchmarkSocketPipelined: one agent publishes over its socket without
// waiting for replies, another receives every message over its own.
// go test ./internal/bus -run XXX -bench . ; figures against redis come
// from go run ./bench/bus.
func BenchmarkSocketPipelined(b *testing.B) {
	benchmarkSocket(b, true)
}

// BenchmarkSocketRoundTrip: each publish waits for its reply (the SDKs'
// behaviour).
func BenchmarkSocketRoundTrip(b *testing.B) {
	benchmarkSocket(b, false)
}

func benchmarkSocket(b *testing.B, pipelined bool) {
	s := newServer(b, Config{SubscriberBuffer: 1 << 20}, "")
	dir := sockDir(b)
	pub := dial(b, attach(b, s, dir, "p", "pub", Policy{}))
	sub := dial(b, attach(b, s, dir, "p", "sub", Policy{}))
	mustSubscribe(b, sub, "bench")
	payload := `{"n":1,"data":"` + string(make([]byte, 0)) + `0123456789abcdef0123456789abcdef"}`
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() {
		for i := 0; i < b.N; i++ {
			if _, err := sub.Next(wait); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if pipelined {
		go func() {
			r := bufio.NewReader(pub.Conn())
			for i := 0; i < b.N; i++ {
				if _, err := r.ReadSlice('\n'); err != nil {
					return
				}
			}
		}()
		w := bufio.NewWriterSize(pub.Conn(), 1<<16)
		for i := 0; i < b.N; i++ {
			w.WriteString(`{"op":"publish","channel":"bench","payload":` + payload + "}\n")
		}
		w.Flush()
	} else {
		for i := 0; i < b.N; i++ {
			if _, err := pub.Request(map[string]any{"op": "publish", "channel": "bench", "id": strconv.Itoa(i), "payload": map[string]any{"n": i}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
