package bundle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchTree writes a ~50 MB project of 2,000 files of 25 KiB in 40
// directories: half source-like text (compresses well), half random bytes
// (does not, like wheels and images), the mix of a vendored project.
func benchTree(b testing.TB) (dir string, size int64) {
	b.Helper()
	dir = b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("def return import self class for in if else while const let function module exports require async await print json value key")
	writeTree(b, dir, []node{{path: "cortex.yaml", content: testManifest}})
	for i := range 2000 {
		buf := make([]byte, 0, 25<<10)
		if i%2 == 0 {
			for len(buf) < 25<<10 {
				buf = append(buf, words[rng.IntN(len(words))]...)
				buf = append(buf, " \n"[rng.IntN(2)])
			}
			buf = buf[:25<<10]
		} else {
			buf = buf[:25<<10]
			for j := range buf {
				buf[j] = byte(rng.Uint32())
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("pkg%02d", i%40), fmt.Sprintf("file%04d.dat", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
		size += int64(len(buf))
	}
	return dir, size
}

// BenchmarkCreate measures packing throughput in MB/s of project content.
func BenchmarkCreate(b *testing.B) {
	dir, size := benchTree(b)
	b.SetBytes(size)
	defer reportCPU(b, size)()
	for b.Loop() {
		if _, err := Create(context.Background(), io.Discard, CreateOptions{Dir: dir}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExtract measures Open plus Extract (verify, write, sync,
// rename) throughput in MB/s of project content.
func BenchmarkExtract(b *testing.B) {
	dir, size := benchTree(b)
	var buf bytes.Buffer
	if _, err := Create(context.Background(), &buf, CreateOptions{Dir: dir}); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(b.TempDir(), "bench.cortex")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(buf.Len())/float64(size), "ratio")
	out := b.TempDir()
	b.SetBytes(size)
	defer reportCPU(b, size)()
	i := 0
	for b.Loop() {
		bd, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		dest := filepath.Join(out, fmt.Sprint(i))
		i++
		if err := bd.Extract(context.Background(), dest, Limits{}, nil); err != nil {
			b.Fatal(err)
		}
		bd.Close()
		b.StopTimer()
		os.RemoveAll(dest)
		b.StartTimer()
	}
}

// reportCPU adds "cpu-MB/s", the throughput per second of CPU time the
// process used, which a machine shared with other builds distorts far less
// than wall time. Call as defer reportCPU(b, bytesPerOp)().
func reportCPU(b *testing.B, size int64) func() {
	start := cpuTime()
	return func() {
		if d := cpuTime() - start; d > 0 && b.N > 0 {
			b.ReportMetric(float64(size)*float64(b.N)/1e6/d.Seconds(), "cpu-MB/s")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
