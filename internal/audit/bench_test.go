package audit

import (
	"testing"
)

// BenchmarkAppend measures audit appends per second: one writer and
// many, with fsync (the default: every entry durable before its request
// is answered; concurrent appends share an fsync) and without. The
// anchor is tessera's POSIX backend, about 2,900 fsynced writes/s on 12
// cores (storage/posix/PERFORMANCE.md). Report appends/s = 1e9 / ns/op.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name     string
		fsync    bool
		parallel bool
	}{
		{"fsync/serial", true, false},
		{"fsync/parallel", true, true},
		{"nofsync/serial", false, false},
		{"nofsync/parallel", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			l, err := Open(Options{Dir: b.TempDir(), SegmentSize: 16 << 20, Fsync: bc.fsync})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			e := apiEntry(1)
			b.ReportAllocs()
			b.ResetTimer()
			if bc.parallel {
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := l.Append(e); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for i := 0; i < b.N; i++ {
					if _, err := l.Append(e); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// BenchmarkVerify measures verification speed (entries per second).
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	l, err := Open(Options{Dir: dir, SegmentSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		_, _ = l.Append(apiEntry(i))
	}
	_ = l.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Verify(Dir(dir), VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(10000*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
