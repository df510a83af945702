package doctor

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/doctor/doctortest"
)

// TestReportSchema: a report the engine makes validates against the
// published schema; reports that break it do not.
func TestReportSchema(t *testing.T) {
	checks := []Check{
		fn("a.ok", nil, func(context.Context) Result { return OK("fine") }),
		fn("b.fail", []string{"a.ok"}, func(context.Context) Result { return Fail(Auto("fix it"), "broken") }),
		fn("c.skip", []string{"b.fail"}, func(context.Context) Result { return OK("never") }),
	}
	res, err := Run(context.Background(), checks, Options{Source: "daemon"})
	if err != nil {
		t.Fatal(err)
	}
	rep := api.DoctorReport{Schema: api.DoctorSchema, Version: "test", Time: time.Now().UTC(), Root: "/", Runner: "daemon", Checks: res}
	rep.Tally()
	good, _ := json.Marshal(rep)
	doctortest.MustValidate(t, good)
	for name, mutate := range map[string]func(string) string{
		"bad status": func(s string) string { return strings.Replace(s, `"status":"ok"`, `"status":"great"`, 1) },
		"unknown field": func(s string) string {
			return strings.Replace(s, `"runner":"daemon"`, `"runner":"daemon","extra":1`, 1)
		},
		"wrong schema": func(s string) string { return strings.Replace(s, `cortex.doctor/v1`, `cortex.doctor/v2`, 1) },
		"bad fix kind": func(s string) string { return strings.Replace(s, `"kind":"auto"`, `"kind":"magic"`, 1) },
		"empty skip why": func(s string) string {
			return strings.Replace(s, `"evidence":"needs b.fail, which failed"`, `"evidence":""`, 1)
		},
	} {
		bad := mutate(string(good))
		if bad == string(good) {
			t.Fatalf("%s: mutation did not apply to %s", name, good)
		}
		if err := doctortest.Validate([]byte(bad)); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}
