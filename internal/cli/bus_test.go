package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestBusStatsTable checks the table of cortex bus stats against
// testdata/bus-stats/<case>.golden.
func TestBusStatsTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  api.BusStats
	}{
		{"empty", api.BusStats{Node: "n1"}},
		{"channels", api.BusStats{Node: "n1", Channels: []api.BusChannelStats{
			{Project: "alpha", Channel: "analysis-results", Published: 10, Delivered: 20, Subscribers: 2},
			{Project: "alpha", Channel: "jobs", Durable: true, Published: 1000, Delivered: 1003, Subscribers: 1},
			{Project: "beta", Channel: "ticks", Published: 2000, Delivered: 2100, Dropped: 1900, Subscribers: 2},
		}}},
		{"brokers", api.BusStats{Node: "n1",
			Channels: []api.BusChannelStats{{Project: "alpha", Channel: "x", Published: 1}},
			Brokers:  []api.BusBrokerStats{{Project: "alpha", URL: "redis://:xxxxx@cache:6379", Connected: true, Forwarded: 5, Received: 7, Errors: 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := writeBusStats(&b, tc.rep); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "bus-stats", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
