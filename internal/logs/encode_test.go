package logs

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	recs := []Record{
		{Time: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC), Seq: 7, Project: "p", Agent: "a", Run: 1, Stream: "stdout", Level: "info", Message: "hi"},
		{Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Seq: 1 << 60, Project: "p", Agent: "a", Stream: "stderr", Level: "warn",
			Message: "quote\" back\\ nl\n cr\r tab\t ctl\x01 esc\x1b del\x7f ls\u2028 é 日本", Fields: map[string]any{"n": json.Number("-1.5e3"), "s": "x\u2028<&>", "z": nil, "b": false,
				"arr": []any{json.Number("1"), "two", map[string]any{"k": []any{}}}, "obj": map[string]any{"b": "1", "a": true}},
			Wrapped: true, Truncated: true},
	}
	for _, r := range recs {
		b, err := appendRecord(nil, &r)
		if err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("not JSON: %q: %v", b, err)
		}
		std, _ := json.Marshal(r)
		_ = json.Unmarshal(std, &want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("encoding differs from encoding/json (-std +ours):\n%s", diff)
		}
		back, err := decodeRecord(b[:len(b)-1])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, back); diff != "" {
			t.Errorf("round trip (-in +out):\n%s", diff)
		}
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "12", "1.5", "-1.5e10", "1E+2", "0.0e-1", "12345678901234567890"} {
		if !isJSONNumber(s) {
			t.Errorf("isJSONNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "1e", "+1", "NaN", "Inf", "0x10", "1_000", "1 "} {
		if isJSONNumber(s) {
			t.Errorf("isJSONNumber(%q) = true", s)
		}
	}
}

func TestAppendRecordRejects(t *testing.T) {
	cases := []struct {
		name string
		rec  Record
	}{
		{"nan field", Record{Seq: 1, Fields: map[string]any{"x": math.NaN()}}},
		{"channel field", Record{Seq: 1, Fields: map[string]any{"x": make(chan int)}}},
		{"invalid json.Number", Record{Seq: 1, Fields: map[string]any{"x": json.Number("0x1")}}},
		{"nested nan", Record{Seq: 1, Fields: map[string]any{"x": []any{map[string]any{"y": math.Inf(1)}}}}},
		{"year out of range", Record{Seq: 1, Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := appendRecord(nil, &tc.rec); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestQuickSeq(t *testing.T) {
	r := Record{Time: time.Now(), Seq: 123456789, Message: "x"}
	b, _ := appendRecord(nil, &r)
	if seq, ok := quickSeq(b); !ok || seq != r.Seq {
		t.Fatalf("quickSeq = %d, %v", seq, ok)
	}
	for _, bad := range []string{`{"seq":1}`, `garbage`, `{"time":"x","seq":,`, `{"time":"x","seq":123456789012345678901,`} {
		if _, ok := quickSeq([]byte(bad)); ok {
			t.Errorf("quickSeq(%q) ok", bad)
		}
	}
}
