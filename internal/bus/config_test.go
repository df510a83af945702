package bus

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	for _, tc := range []struct {
		name    string
		yaml    string
		want    Config
		wantErr string
	}{
		{"empty", ``, DefaultConfig(), ""},
		{"set", "max_payload: 2048\nsubscriber_buffer: 8\nack_wait: 45s\ndurable_max_age: 24h\nlisten: 127.0.0.1:4222\n",
			func() Config {
				c := DefaultConfig()
				c.MaxPayload, c.SubscriberBuffer, c.AckWait, c.DurableMaxAge, c.Listen = 2048, 8, 45*time.Second, 24*time.Hour, "127.0.0.1:4222"
				return c
			}(), ""},
		{"too-large", "max_payload: 999999999\n", Config{}, "bus.max_payload"},
		{"negative-buffer", "subscriber_buffer: -1\n", Config{}, "bus.subscriber_buffer"},
		{"short-ack-wait", "ack_wait: 10ms\n", Config{}, "bus.ack_wait"},
		{"bad-listen", "listen: nowhere\n", Config{}, "bus.listen"},
		{"bad-node", "node_id: a.b\n", Config{}, "bus.node_id"},
		{"unknown-field", "max_payloads: 1\n", Config{}, "field max_payloads not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Config
			dec := yaml.NewDecoder(strings.NewReader(tc.yaml))
			dec.KnownFields(true)
			err := dec.Decode(&c)
			if err == nil || err.Error() == "EOF" {
				c = c.WithDefaults()
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
