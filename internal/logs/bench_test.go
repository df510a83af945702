package logs

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkCollect measures lines through a real pipe into the store:
// b.N lines of ~100 bytes, plain text and JSON mixed. Reports lines/s and
// MB/s (of input).
func BenchmarkCollect(b *testing.B) {
	for _, kind := range []string{"text", "json"} {
		b.Run(kind, func(b *testing.B) {
			s := openStore(b, Options{Dir: b.TempDir(), SegmentSize: 64 << 20, Segments: 2})
			line := "INFO:agent.worker:processed item " + strings.Repeat("x", 60) + " done\n"
			if kind == "json" {
				line = `{"level":"info","msg":"processed item","item":12345,"tool":"search","ms":17.5,"pad":"` + strings.Repeat("x", 20) + "\"}\n"
			}
			b.SetBytes(int64(len(line)))
			r, w, err := os.Pipe()
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				defer w.Close()
				bw := bufio.NewWriterSize(w, 64<<10)
				for range b.N {
					bw.WriteString(line)
				}
				bw.Flush()
			}()
			b.ResetTimer()
			start := time.Now()
			if err := s.Collect(context.Background(), r, Meta{Project: "p", Agent: "a", Stream: StreamStderr}); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lines/s")
			b.StopTimer()
			r.Close()
			if st, err := s.Stats("p", "a"); err != nil || st.LastSeq != uint64(b.N) {
				b.Fatalf("stored %+v, %v; want %d records", st, err, b.N)
			}
		})
	}
}

// BenchmarkReadTail measures `cortex logs --tail 100` on a full segment.
func BenchmarkReadTail(b *testing.B) {
	s := openStore(b, Options{Dir: b.TempDir(), SegmentSize: 16 << 20})
	var in strings.Builder
	for i := range 100000 {
		fmt.Fprintf(&in, "line %d %s\n", i, strings.Repeat("y", 50))
	}
	if err := s.Collect(context.Background(), strings.NewReader(in.String()), Meta{Project: "p", Agent: "a"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := s.Read(context.Background(), Query{Project: "p", Agent: "a", Tail: 100}, func(Record) error { n++; return nil }); err != nil || n != 100 {
			b.Fatalf("%d records, %v", n, err)
		}
	}
}
