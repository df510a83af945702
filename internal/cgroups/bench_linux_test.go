package cgroups

import (
	"strconv"
	"testing"

	"github.com/cortexrt/cortex/internal/kerneltest"
)

// BenchmarkCreateDelete measures what a cgroup adds to every agent start
// and stop: Create with all three ceilings (where the driver can set
// them), then Delete.
func BenchmarkCreateDelete(b *testing.B) {
	kerneltest.RequireRoot(b)
	for _, d := range drivers(b) {
		b.Run(d.name, func(b *testing.B) {
			m := d.newManager(b, randomParent(b))
			l := Limits{CPU: 0.5, Memory: 256 << 20, Pids: 64}
			if d.noLimits != "" {
				l = Limits{}
			}
			for i := 0; b.Loop(); i++ {
				g, err := m.Create("p/a"+strconv.Itoa(i), l)
				if err != nil {
					b.Fatal(err)
				}
				if err := g.Delete(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStats measures one Stats call (what a metrics scrape costs
// per agent).
func BenchmarkStats(b *testing.B) {
	kerneltest.RequireRoot(b)
	for _, d := range drivers(b) {
		b.Run(d.name, func(b *testing.B) {
			m := d.newManager(b, randomParent(b))
			g, err := m.Create("p/a", Limits{})
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := g.Stats(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
