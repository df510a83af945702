package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestBusYAML(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		want    Bus
		wantErr string
	}{
		{"empty", ``, DefaultBus(), ""},
		{"set", "max_payload: 2048\nsubscriber_buffer: 8\nack_wait: 45s\ndurable_max_age: 24h\nlisten: 127.0.0.1:4222\n",
			func() Bus {
				c := DefaultBus()
				c.MaxPayload, c.SubscriberBuffer, c.AckWait, c.DurableMaxAge, c.Listen = 2048, 8, 45*time.Second, 24*time.Hour, "127.0.0.1:4222"
				return c
			}(), ""},
		{"too-large", "max_payload: 999999999\n", Bus{}, "bus.max_payload"},
		{"negative-buffer", "subscriber_buffer: -1\n", Bus{}, "bus.subscriber_buffer"},
		{"short-ack-wait", "ack_wait: 10ms\n", Bus{}, "bus.ack_wait"},
		{"bad-ack-wait", "ack_wait: soon\n", Bus{}, `config.yaml:2:13: bus.ack_wait: "soon" is not a duration; write e.g. 10s or 500ms`},
		{"bad-listen", "listen: nowhere\n", Bus{}, "bus.listen"},
		{"bad-node", "node_id: a.b\n", Bus{}, "bus.node_id"},
		{"unknown-field", "max_payloads: 1\n", Bus{}, `config.yaml:2:3: bus.max_payloads: unknown field; did you mean "max_payload"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := "bus:\n"
			for _, l := range strings.SplitAfter(tc.yaml, "\n") {
				if l != "" {
					in += "  " + l
				}
			}
			c, err := check(strings.NewReader(in), "config.yaml")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Bus.WithDefaults()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
