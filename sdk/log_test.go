package sdk

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cortexrt/cortex/internal/runtimes"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// TestStructuredLogs: cortex.log (Python) and cortex/log (Node) write one
// JSON object per line with time, level, msg and the fields, as the log
// collector expects.
func TestStructuredLogs(t *testing.T) {
	py := `
import logging, cortex.log
cortex.log.info("started", port=8080, tags=["a", "b"])
cortex.log.bind(request="r1").warn("slow", seconds=1.5, msg="shadowed")
try:
    raise ValueError("bad")
except ValueError:
    cortex.log.exception("failed")
lg = logging.getLogger("lib"); lg.addHandler(cortex.log.handler()); lg.setLevel(logging.DEBUG)
lg.error("from logging %s", "module", extra={"fields": {"k": 1}})
cortex.log.debug("weird", obj=object(), raw=b"bytes")
`
	node := `
const log = require("cortex/log");
log.info("started", { port: 8080, tags: ["a", "b"] });
log.child({ request: "r1" }).warn("slow", { seconds: 1.5, msg: "shadowed" });
log.error("failed", { error: new Error("bad") });
const o = { a: 1 }; o.self = o;
log.error("from logging module", { logger: "lib", k: 1 });
log.debug("weird", { big: 10n, o });
`
	want := []map[string]any{
		{"level": "info", "msg": "started", "port": 8080.0, "tags": []any{"a", "b"}},
		{"level": "warn", "msg": "slow", "request": "r1", "seconds": 1.5, "field.msg": "shadowed"},
		{"level": "error", "msg": "failed"},
		{"level": "error", "msg": "from logging module", "logger": "lib", "k": 1.0},
		{"level": "debug", "msg": "weird"},
	}
	for _, tc := range []struct {
		name string
		bin  func(testing.TB) runtimes.Interpreter
		env  string
		args []string
	}{
		{"python", runtimestest.Python, "PYTHONPATH=python", []string{"-c", py}},
		{"node", runtimestest.Node, "NODE_PATH=node", []string{"-e", node}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(tc.bin(t).Path, tc.args...)
			cmd.Env = append(os.Environ(), tc.env, "PYTHONDONTWRITEBYTECODE=1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
			}
			for i, l := range lines {
				var rec map[string]any
				if err := json.Unmarshal([]byte(l), &rec); err != nil {
					t.Fatalf("line %d %q: %v", i, l, err)
				}
				if ts, _ := rec["time"].(string); !strings.HasSuffix(ts, "Z") || len(ts) < 20 {
					t.Errorf("line %d time %q", i, rec["time"])
				}
				delete(rec, "time")
				switch i {
				case 2: // the error's rendering differs by language; it must be there
					if rec["error"] == nil {
						t.Errorf("exception record has no error field: %s", l)
					}
					delete(rec, "error")
					delete(rec, "traceback")
				case 4:
					if len(rec) != 4 { // level, msg and two stringified fields
						t.Errorf("record %s: want two fields rendered", l)
					}
					rec = map[string]any{"level": rec["level"], "msg": rec["msg"]}
				}
				if diff := cmp.Diff(want[i], rec, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("line %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}
