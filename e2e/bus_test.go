package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/daemon/daemontest"
	"github.com/cortexrt/cortex/internal/logs"
	"github.com/cortexrt/cortex/internal/runtimes/runtimestest"
)

// The bus end to end: sandboxed Python and Node agents under a real
// cortexd, talking through the SDKs (and the raw protocol where an agent
// tries what the SDKs would not). Each test's agents live in
// testdata/bus/<case>/.

// busCase copies testdata/bus/<name> into a new project directory,
// replacing {{KEY}} with vars[KEY] in every file and naming the host's
// runtimes in cortex.yaml (runtimestest.HostManifest).
func busCase(t *testing.T, name string, vars map[string]string) string {
	t.Helper()
	src := filepath.Join("testdata", "bus", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for k, v := range vars {
			data = bytes.ReplaceAll(data, []byte("{{"+k+"}}"), []byte(v))
		}
		if e.Name() == "cortex.yaml" {
			data = runtimestest.HostManifest(t, data)
		}
		if i := bytes.Index(data, []byte("{{")); i >= 0 {
			return fmt.Errorf("%s: placeholder without a value at byte %d", p, i)
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

// touch creates a control file the agents of a case poll for.
// waitPublishing waits until pub.py of the durable case is inside a
// publish call: out/calling is ahead of out/returned.
func waitPublishing(t *testing.T, dir string) {
	t.Helper()
	read := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(dir, "out", name))
		n, err := strconv.Atoi(string(b))
		if err != nil {
			return -1
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if returned, calling := read("returned"), read("calling"); calling > returned {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("pub.py never called publish while the daemon was down")
}

func touch(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "ctl", name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// outLine is one line an agent wrote to stdout.
type outLine struct {
	Run  int
	Text string
}

// busOut returns an agent's stdout lines over all its runs, oldest first.
func busOut(t *testing.T, d *daemontest.Daemon, project, agent string) []outLine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []outLine
	err := d.Client.Logs(ctx, api.LogsQuery{Project: project, Agent: agent}, func(r logs.Record) error {
		if r.Stream == logs.StreamStdout {
			out = append(out, outLine{Run: r.Run, Text: r.Message})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", project, agent, err)
	}
	return out
}

func texts(lines []outLine) []string {
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

// withPrefix returns the texts that start with prefix.
func withPrefix(lines []outLine, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l.Text, prefix) {
			out = append(out, l.Text)
		}
	}
	return out
}

// everything is an agent's whole log (all streams), for failure messages.
func everything(d *daemontest.Daemon, project, agent string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	_ = d.Client.Logs(ctx, api.LogsQuery{Project: project, Agent: agent}, func(r logs.Record) error {
		fmt.Fprintf(&b, "  [run %d %s] %s\n", r.Run, r.Stream, r.Message)
		return nil
	})
	s := b.String()
	if len(s) > 6000 {
		s = "  ...\n" + s[len(s)-6000:]
	}
	return s
}

// logOut records agents' output in the test log (shown with -v or on
// failure), as evidence of what they saw.
func logOut(t *testing.T, d *daemontest.Daemon, project string, agents ...string) {
	t.Helper()
	for _, a := range agents {
		t.Logf("%s/%s:\n%s", project, a, everything(d, project, a))
	}
}

// waitOut polls an agent's stdout until cond holds, or fails saying what
// was missing and what the agent wrote.
func waitOut(t *testing.T, d *daemontest.Daemon, project, agent, what string, timeout time.Duration, cond func([]outLine) bool) []outLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		lines := busOut(t, d, project, agent)
		if cond(lines) {
			return lines
		}
		if time.Now().After(deadline) {
			st, _ := d.Agent(project, agent)
			t.Fatalf("%s/%s: no %s within %s (agent %s %s restarts=%d); its log:\n%s", project, agent, what, timeout,
				st.State, st.Reason, st.Restarts, everything(d, project, agent))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hasLine(want string) func([]outLine) bool {
	return func(lines []outLine) bool {
		for _, l := range lines {
			if l.Text == want {
				return true
			}
		}
		return false
	}
}

// endedOK waits for the agents to end and fails unless each exited 0.
func endedOK(t *testing.T, d *daemontest.Daemon, project string, agents ...string) {
	t.Helper()
	for _, a := range agents {
		st := d.Final(project, a, 60*time.Second)
		if st.State != api.Stopped || st.ExitCode == nil || *st.ExitCode != 0 {
			code := "none"
			if st.ExitCode != nil {
				code = strconv.Itoa(*st.ExitCode)
			}
			t.Errorf("%s/%s ended %s/%s exit %s, want stopped, exit 0; its log:\n%s", project, a, st.State, st.Reason, code, everything(d, project, a))
		}
	}
}

// runAttached runs a project as a user would (`cortex run .`, which
// returns when every agent has ended) and checks every agent exited 0.
func runAttached(t *testing.T, d *daemontest.Daemon, dir, project string, agents ...string) {
	t.Helper()
	r := d.CLI(dir, "run", ".")
	if r.Code != 0 {
		t.Errorf("cortex run: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
	endedOK(t, d, project, agents...)
}

func busStats(t *testing.T, d *daemontest.Daemon) api.BusStats {
	t.Helper()
	var rep api.BusStats
	daemontest.JSON(t, d.MustCLI("", "bus", "stats", "--json"), &rep)
	return rep
}

// channelStats returns a channel's counters (zero if the daemon never
// saw the channel).
func channelStats(rep api.BusStats, project, channel string) api.BusChannelStats {
	for _, c := range rep.Channels {
		if c.Project == project && c.Channel == channel {
			return c
		}
	}
	return api.BusChannelStats{Project: project, Channel: channel}
}

// msgLine splits an agent's `msg <json> from=<sender>` line.
func msgLine(t *testing.T, s string) (map[string]any, string) {
	t.Helper()
	rest, ok := strings.CutPrefix(s, "msg ")
	i := strings.LastIndex(rest, " from=")
	if !ok || i < 0 {
		t.Fatalf("not a msg line: %q", s)
	}
	var payload map[string]any
	if err := json.Unmarshal([]byte(rest[:i]), &payload); err != nil {
		t.Fatalf("payload in %q: %v", s, err)
	}
	return payload, rest[i+len(" from="):]
}

// TestBusSeedSnippet: the seed's publish/subscribe snippet, verbatim in
// two sandboxed Python agents, delivers the messages in order with the
// publisher's name; the run ends by itself.
func TestBusSeedSnippet(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := busCase(t, "seed", nil)
	runAttached(t, d, dir, "seed", "publisher", "subscriber")
	logOut(t, d, "seed", "publisher", "subscriber")
	got := texts(busOut(t, d, "seed", "subscriber"))
	want := []string{
		"0.94", "meta done publisher True",
		"0.5", "meta done publisher True",
		"0.75", "meta complete publisher True",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subscriber output (-want +got):\n%s", diff)
	}
	st := channelStats(busStats(t, d), "seed", "analysis-results")
	if !st.Durable || st.Published != 3 || st.Delivered < 3 {
		t.Errorf("stats for analysis-results: %+v, want durable, 3 published, at least 3 delivered", st)
	}
}

// TestBusNodePython: a Node agent's messages reach a Python agent and a
// Python agent's reach a Node agent, payloads intact (unicode, quotes,
// floats, null, nested objects) and attributed to the publisher.
func TestBusNodePython(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := busCase(t, "poly", nil)
	runAttached(t, d, dir, "poly", "nodepub", "pysub", "pypub", "nodesub")
	logOut(t, d, "poly", "nodepub", "pysub", "pypub", "nodesub")
	for _, tc := range []struct {
		name, sub, lang, from string
	}{
		{"node to python", "pysub", "node", "nodepub"},
		{"python to node", "nodesub", "python", "pypub"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := withPrefix(busOut(t, d, "poly", tc.sub), "msg ")
			if len(lines) != 3 {
				t.Fatalf("%s received %d messages, want 3:\n%s", tc.sub, len(lines), everything(d, "poly", tc.sub))
			}
			for i, l := range lines {
				payload, from := msgLine(t, l)
				want := map[string]any{"lang": tc.lang, "i": float64(i), "text": "h\u00e9llo \u2713 \"q\"",
					"nested": map[string]any{"list": []any{1.0, 2.5, nil, true}, "empty": map[string]any{}}}
				if diff := cmp.Diff(want, payload); diff != "" {
					t.Errorf("message %d (-want +got):\n%s", i, diff)
				}
				if from != tc.from {
					t.Errorf("message %d from %q, want %q", i, from, tc.from)
				}
			}
		})
	}
}

// TestBusProjectScoping: scope-b's agent, subscribed to channels named
// like scope-a's (one plain, one durable), sees none of scope-a's
// messages, not even those whose raw request claims project scope-b; it
// does see its own project's.
func TestBusProjectScoping(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dirB := busCase(t, "scope-b", nil)
	d.MustCLI(dirB, "run", "-d", ".")
	waitOut(t, d, "scope-b", "spy", `"ready" (subscribed)`, 30*time.Second, hasLine("ready"))

	runAttached(t, d, busCase(t, "scope-a", nil), "scope-a", "pub", "sub")
	gotA := withPrefix(busOut(t, d, "scope-a", "sub"), "got ")
	if len(gotA) != 12 {
		t.Fatalf("scope-a's own subscriber got %d messages, want 12 (so the publishes happened):\n%s", len(gotA), strings.Join(gotA, "\n"))
	}
	if raw := withPrefix(busOut(t, d, "scope-a", "pub"), "raw "); len(raw) != 2 || !strings.Contains(raw[0], "hello project=scope-a reply=ok") {
		t.Errorf("raw publishes claiming scope-b: %q, want two, on a socket of project scope-a", raw)
	}

	// Everything of scope-a's has been delivered in scope-a; now scope-b's
	// own markers, which the spy waits for.
	for _, ch := range []string{"shared", "stored"} {
		d.MustCLI("", "bus", "publish", "scope-b", ch, `{"marker": "b"}`)
	}
	endedOK(t, d, "scope-b", "spy")
	logOut(t, d, "scope-a", "pub", "sub")
	logOut(t, d, "scope-b", "spy")
	saw := withPrefix(busOut(t, d, "scope-b", "spy"), "saw ")
	sort.Strings(saw)
	want := []string{`saw shared {"marker": "b"} from=`, `saw stored {"marker": "b"} from=`}
	if diff := cmp.Diff(want, saw); diff != "" {
		t.Errorf("scope-b's spy saw (-want +got); anything besides the two markers leaked from scope-a:\n%s", diff)
	}
	rep := busStats(t, d)
	for _, tc := range []struct {
		project, channel string
		published        uint64
	}{
		{"scope-a", "shared", 6}, {"scope-a", "stored", 6},
		{"scope-b", "shared", 1}, {"scope-b", "stored", 1},
	} {
		if got := channelStats(rep, tc.project, tc.channel).Published; got != tc.published {
			t.Errorf("stats: %s/%s published %d, want %d", tc.project, tc.channel, got, tc.published)
		}
	}
}

// probeSocket is run on the host under another uid: it connects to a bus
// socket and says what happened.
const probeSocket = `import errno, json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
f = s.makefile("rb")
first = json.loads(f.readline() or "{}")
if first.get("op") == "hello":
    print("CONNECTED as", first.get("project"), first.get("agent"))
else:
    print(first.get("op"), first.get("code"), "then", "closed" if not f.readline() else "open")
`

// TestBusIdentity: an agent cannot publish as another (whatever fields
// its raw request or its payload carry, subscribers see its own name),
// sees no socket but its own in its sandbox and reaches none by host path
// or guess, and a host process under another uid cannot use an agent's
// socket (file mode, then the daemon's peer check).
func TestBusIdentity(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	dir := busCase(t, "ident", map[string]string{"ROOT": d.Root})
	d.MustCLI(dir, "run", "-d", ".")
	endedOK(t, d, "ident", "liar", "listener")
	logOut(t, d, "ident", "liar", "listener")

	t.Run("from is the real sender", func(t *testing.T) {
		got := map[string]string{}
		for _, l := range withPrefix(busOut(t, d, "ident", "listener"), "msg ") {
			payload, from := msgLine(t, l)
			got[fmt.Sprint(payload["by"])] = from
		}
		want := map[string]string{"honest": "honest", "liar-raw": "liar", "liar-sdk": "liar"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("payload -> sender the listener saw (-want +got):\n%s", diff)
		}
	})

	t.Run("no other socket from the sandbox", func(t *testing.T) {
		lines := busOut(t, d, "ident", "liar")
		for _, want := range []string{
			"own hello ident liar",
			"raw spoof reply ok",
			"run/cortex holds ['bus.sock']",
			"sockets visible ['/run/cortex/bus.sock']",
		} {
			if !hasLine(want)(lines) {
				t.Errorf("liar did not write %q; its output:\n%s", want, strings.Join(texts(lines), "\n"))
			}
		}
		attempts := withPrefix(lines, "attempt ")
		if n := fmt.Sprintf("attempts %d", len(attempts)); len(attempts) < 13 || !hasLine(n)(lines) {
			t.Fatalf("liar made %d attempts, want all of them (at least 13) logged:\n%s", len(attempts), strings.Join(texts(lines), "\n"))
		}
		for _, a := range attempts {
			_, result, _ := strings.Cut(a, " -> ")
			switch {
			case strings.HasPrefix(a, "attempt /proc/") && result == "own socket":
				// A process root in its own pid namespace: its own sandbox.
			case strings.HasPrefix(result, "refused "):
			default:
				t.Errorf("%s: want refused", a)
			}
		}
		tampers := withPrefix(lines, "tamper ")
		if len(tampers) != 4 {
			t.Errorf("liar's tamper attempts: %q, want 4", tampers)
		}
		for _, l := range tampers {
			if !strings.Contains(l, " -> refused ") {
				t.Errorf("%s: want refused (/run/cortex is read-only)", l)
			}
		}
		for _, host := range []string{"/run/cortex/agents/ident/honest/bus/bus.sock", "/run/cortex/cortexd.sock"} {
			want := "attempt " + d.Root + host + " -> refused ENOENT"
			if !hasLine(want)(lines) {
				t.Errorf("want %q (the host path does not exist in the sandbox)", want)
			}
		}
	})

	t.Run("another uid", func(t *testing.T) {
		sock := filepath.Join(d.Root, "run", "cortex", "agents", "ident", "honest", "bus", "bus.sock")
		honest := inspect(t, d, "ident/honest")
		liar := inspect(t, d, "ident/liar")
		fi, err := os.Lstat(sock)
		if err != nil {
			t.Fatalf("honest's socket: %v", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o600 || int(st.Uid) != honest.UID || honest.UID == 0 {
			t.Errorf("honest's socket: mode %v uid %d, want a socket, 0600, owned by honest's uid %d", fi.Mode(), st.Uid, honest.UID)
		}
		for _, tc := range []struct {
			name string
			uid  int
			caps []uintptr
			want string
		}{
			// The file's mode stops another agent's uid at connect.
			{"another agent's uid", liar.UID, nil, "refused EACCES"},
			// Past the file's mode (CAP_DAC_OVERRIDE), the daemon checks
			// the peer's uid and hangs up.
			{"nobody with CAP_DAC_OVERRIDE", 65534, []uintptr{1 /* CAP_DAC_OVERRIDE */}, "error forbidden then closed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cmd := exec.Command(runtimestest.Python(t).Path, "-c", probeSocket, sock)
				cmd.Dir = "/"
				cmd.SysProcAttr = &syscall.SysProcAttr{
					Credential:  &syscall.Credential{Uid: uint32(tc.uid), Gid: uint32(tc.uid)},
					AmbientCaps: tc.caps,
				}
				out, err := cmd.CombinedOutput()
				if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
					t.Errorf("uid %d connecting to %s: %q (err %v), want %q", tc.uid, sock, got, err, tc.want)
				}
			})
		}
	})

	touch(t, dir, "stop")
	endedOK(t, d, "ident", "honest")
}

// TestBusACL: publishing or subscribing outside bus.publish / bus.subscribe
// raises PermissionDenied in the agent (Python and Node) with the reason
// and a hint, wildcard entries allow just what they match, and nothing
// refused reaches a subscriber or the store.
func TestBusACL(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	runAttached(t, d, busCase(t, "acl", nil), "acl", "limited", "limitedjs", "watcher")
	logOut(t, d, "acl", "limited", "limitedjs", "watcher")
	for _, tc := range []struct {
		agent, what string
		want        []string // the line starts with want[0] and contains the rest
	}{
		{"limited", "publish secret", []string{"publish secret -> refused PermissionDenied forbidden", `agent "limited" may not publish to channel "secret"`, "bus.publish capability"}},
		{"limited", "publish jobs.a.b", []string{"publish jobs.a.b -> refused PermissionDenied forbidden", `may not publish to channel "jobs.a.b"`}},
		{"limited", "subscribe secret", []string{"subscribe secret -> refused PermissionDenied forbidden", `agent "limited" may not subscribe to channel "secret"`, "bus.subscribe capability"}},
		{"limited", "subscribe jobs.a", []string{"subscribe jobs.a -> refused PermissionDenied forbidden", `may not subscribe to channel "jobs.a"`}},
		{"limited", "publish jobs.a", []string{"publish jobs.a -> ALLOWED"}},
		{"limitedjs", "publish secret", []string{"publish secret -> refused PermissionDenied forbidden", `agent "limitedjs" may not publish to channel "secret"`}},
		{"limitedjs", "subscribe secret", []string{"subscribe secret -> refused PermissionDenied forbidden", `agent "limitedjs" may not subscribe to channel "secret"`}},
	} {
		t.Run(tc.agent+" "+tc.what, func(t *testing.T) {
			lines := withPrefix(busOut(t, d, "acl", tc.agent), tc.what+" -> ")
			if len(lines) != 1 {
				t.Fatalf("%s wrote %q for %q, want one line", tc.agent, lines, tc.what)
			}
			if !strings.HasPrefix(lines[0], tc.want[0]) {
				t.Errorf("got %q, want it to start with %q", lines[0], tc.want[0])
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(lines[0], w) {
					t.Errorf("got %q, want it to contain %q", lines[0], w)
				}
			}
		})
	}
	watcher := busOut(t, d, "acl", "watcher")
	if leaks := withPrefix(watcher, "LEAK"); len(leaks) != 0 {
		t.Errorf("refused publishes reached a subscriber: %q", leaks)
	}
	if !hasLine(`jobs.a {"ok": "py-wildcard"} from=limited`)(watcher) || !hasLine("watcher done")(watcher) {
		t.Errorf("watcher did not get the wildcard-allowed message; its output:\n%s", strings.Join(texts(watcher), "\n"))
	}
	rep := busStats(t, d)
	for ch, want := range map[string]uint64{"secret": 0, "jobs.a.b": 0, "jobs.a": 1, "allowed": 2} {
		if got := channelStats(rep, "acl", ch).Published; got != want {
			t.Errorf("stats: acl/%s published %d, want %d", ch, got, want)
		}
	}
}

// TestBusPayloadLimit: a payload of exactly max_payload bytes goes
// through; one byte more raises PayloadTooLarge in the Python and Node
// publishers; the daemon refuses oversized raw requests with the request's
// id and keeps the connection; nothing oversized is stored.
func TestBusPayloadLimit(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	runAttached(t, d, busCase(t, "big", nil), "big", "bigpy", "bigjs", "bigwatch")
	logOut(t, d, "big", "bigpy", "bigjs", "bigwatch")
	py := busOut(t, d, "big", "bigpy")
	for _, want := range [][]string{
		{"max_payload 1048576"},
		{"at limit -> ok"},
		{"over limit -> refused PayloadTooLarge payload_too_large", "1048577 bytes, over the bus limit of 1048576"},
		{"raw over-by-one -> error over-by-one payload_too_large"},
		{"raw over-line -> error over-line payload_too_large"},
		{"raw ping after -> ok after"},
	} {
		found := withPrefix(py, want[0])
		if len(found) != 1 {
			t.Errorf("bigpy: want one line starting %q; its output:\n%s", want[0], strings.Join(texts(py), "\n"))
			continue
		}
		for _, w := range want[1:] {
			if !strings.Contains(found[0], w) {
				t.Errorf("bigpy: %q lacks %q", found[0], w)
			}
		}
	}
	js := withPrefix(busOut(t, d, "big", "bigjs"), "js over limit -> ")
	if len(js) != 1 || !strings.HasPrefix(js[0], "js over limit -> refused PayloadTooLarge payload_too_large") {
		t.Errorf("bigjs over the limit: %q, want PayloadTooLarge", js)
	}
	stored := withPrefix(busOut(t, d, "big", "bigwatch"), "stored ")
	if diff := cmp.Diff([]string{"stored 1048576 bytes from bigpy"}, stored); diff != "" {
		t.Errorf("messages stored on big (-want +got):\n%s", diff)
	}
	if got := channelStats(busStats(t, d), "big", "big").Published; got != 3 {
		t.Errorf("stats: big/big published %d, want 3 (the at-limit payload and two done markers)", got)
	}
}

// TestBusSlowSubscriber: on a non-durable channel, a subscriber that
// sleeps 50 ms per message does not hold back a fast one: the fast one
// receives all 3000 messages (the slow one would need 150 s for them),
// the publisher finishes, and `cortex bus stats` counts the slow one's
// losses as drops.
func TestBusSlowSubscriber(t *testing.T) {
	const n = 3000
	d := daemontest.Start(t, daemontest.Options{})
	dir := busCase(t, "speed", nil)
	d.MustCLI(dir, "run", "-d", ".")
	for _, a := range []string{"fast", "slow"} {
		waitOut(t, d, "speed", a, `"ready" (subscribed)`, 30*time.Second, hasLine("ready"))
	}
	touch(t, dir, "go")
	fast := waitOut(t, d, "speed", "fast", "end of the stream", 60*time.Second, func(l []outLine) bool {
		return len(withPrefix(l, "fast received ")) > 0
	})
	if got := withPrefix(fast, "fast received "); got[0] != fmt.Sprintf("fast received %d of %d", n, n) {
		t.Errorf("fast subscriber: %q, want all %d", got[0], n)
	}
	waitOut(t, d, "speed", "pub", "end of publishing", 60*time.Second, hasLine(fmt.Sprintf("published %d", n)))
	st := channelStats(busStats(t, d), "speed", "ticks")
	if st.Published != n || st.Dropped == 0 {
		t.Errorf("stats for ticks: %+v, want %d published and drops (the slow subscriber's)", st, n)
	}
	slow := withPrefix(busOut(t, d, "speed", "slow"), "slow received ")
	t.Logf("ticks: %+v; slow subscriber at the end: %v", st, slow[len(slow)-min(len(slow), 1):])
	d.MustCLI("", "stop", "speed")
}

// TestBusAcrossDaemonRestart: on a durable channel, 500 messages published
// while the subscriber was up, crashed (one message unacknowledged), down,
// and across a kill -9 and restart of the daemon all arrive, each stored
// once (redeliveries are the only duplicates). Python and Node
// subscribers on a non-durable channel reconnect by themselves and
// receive what is published after the restart.
func TestBusAcrossDaemonRestart(t *testing.T) {
	const n = 500
	// A short ack_wait: what the killed daemon had handed out unacknowledged
	// comes again after 2 s instead of 30.
	d := daemontest.Start(t, daemontest.Options{Config: daemontest.DefaultConfig + "bus:\n  ack_wait: 2s\n"})
	dir := busCase(t, "durable", nil)
	d.MustCLI(dir, "run", "-d", ".")
	pingLive(t, d, "before")

	touch(t, dir, "batch1")
	waitOut(t, d, "dur", "sub", "crash after 100 messages", 30*time.Second, hasLine("crashing"))
	waitOut(t, d, "dur", "sub", "restart that waits off the bus", 30*time.Second, func(l []outLine) bool {
		for _, x := range l {
			if x.Run == 1 && x.Text == "down: waiting for ctl/resume" {
				return true
			}
		}
		return false
	})
	touch(t, dir, "batch2")
	waitOut(t, d, "dur", "pub", "end of batch 2 (published while the subscriber is down)", 30*time.Second, hasLine("batch2 done"))
	touch(t, dir, "resume")
	touch(t, dir, "batch3")
	waitOut(t, d, "dur", "pub", "batch 3 under way", 30*time.Second, hasLine("published 380"))
	d.Kill9()
	// The paced publisher keeps calling publish while there is no daemon:
	// wait until a call is outstanding (it cannot return without one).
	waitPublishing(t, dir)
	d.StartDaemon()
	waitOut(t, d, "dur", "pub", "end of batch 3 (across the restart)", 60*time.Second, hasLine("batch3 done"))
	pingLive(t, d, "after")

	type delivery struct{ id, seq string }
	var got map[int][]delivery
	waitOut(t, d, "dur", "sub", fmt.Sprintf("all %d messages", n), 60*time.Second, func(l []outLine) bool {
		got = map[int][]delivery{}
		for _, x := range l {
			f := strings.Fields(x.Text)
			if len(f) == 5 && f[0] == "got" {
				k, err := strconv.Atoi(f[1])
				if err == nil {
					got[k] = append(got[k], delivery{f[2], f[3]})
				}
			}
		}
		return len(got) == n
	})
	touch(t, dir, "stop")
	endedOK(t, d, "dur", "sub", "pub")

	var missing, storedTwice []int
	dups := 0
	for k := 0; k < n; k++ {
		ds := got[k]
		if len(ds) == 0 {
			missing = append(missing, k)
			continue
		}
		dups += len(ds) - 1
		for _, x := range ds[1:] {
			if x != ds[0] {
				storedTwice = append(storedTwice, k)
				break
			}
		}
	}
	if len(missing) > 0 || len(got) != n {
		t.Errorf("lost messages: %v (received %d distinct of %d)", missing, len(got), n)
	}
	if len(storedTwice) > 0 {
		t.Errorf("messages stored twice (a redelivery keeps its id and seq; these came with different ones): %v", storedTwice)
	}
	if ds := got[99]; len(ds) < 2 {
		t.Errorf("message 99, unacknowledged at the crash, was delivered %d times, want again after the restart", len(ds))
	}
	if st, _ := d.Agent("dur", "sub"); st.Restarts != 1 {
		t.Errorf("sub restarted %d times, want 1 (the crash)", st.Restarts)
	}
	t.Logf("%d distinct messages, %d redeliveries", len(got), dups)
}

// pingLive publishes pings on dur/pings (non-durable: lost while nobody
// is subscribed) until the live agents received one of this round.
func pingLive(t *testing.T, d *daemontest.Daemon, round string) {
	t.Helper()
	agents := []string{"live", "livejs"}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		d.MustCLI("", "bus", "publish", "dur", "pings", fmt.Sprintf(`{"k": "%s-%d"}`, round, i))
		waiting := 0
		for _, a := range agents {
			if len(withPrefix(busOut(t, d, "dur", a), "ping "+round+"-")) == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, a := range agents {
				st, _ := d.Agent("dur", a)
				t.Errorf("%s (%s, restarts %d) received no ping of round %q in 30 s; its log:\n%s", a, st.State, st.Restarts, round, everything(d, "dur", a))
			}
			t.FailNow()
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Same processes throughout: the SDKs reconnected, nothing restarted.
	for _, a := range agents {
		if st, _ := d.Agent("dur", a); st.State != api.Running || st.Restarts != 0 {
			t.Errorf("%s: %s, restarts %d, want running, never restarted", a, st.State, st.Restarts)
		}
	}
}

// redisServer is a redis-server the test runs on a fixed port.
type redisServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func startRedis(t *testing.T, port int) *redisServer {
	t.Helper()
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		t.Fatalf("redis-server: %v (apt-get install redis-server)", err)
	}
	r := &redisServer{t: t, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) start() {
	r.t.Helper()
	logf, err := os.OpenFile(filepath.Join(r.t.TempDir(), "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	r.cmd = exec.Command("/usr/bin/redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no")
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", r.port), time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if line == "+PONG\r\n" {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("redis-server on port %d did not answer PING", r.port)
}

func (r *redisServer) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// gotLine is a `got <seq> from=<sender> node=<node>` line of the xnode
// subscribers.
type gotLine struct {
	seq        int
	from, node string
}

func gotLines(lines []outLine) []gotLine {
	var out []gotLine
	for _, l := range lines {
		f := strings.Fields(l.Text)
		if len(f) != 4 || f[0] != "got" {
			continue
		}
		seq, err := strconv.Atoi(f[1])
		from, ok1 := strings.CutPrefix(f[2], "from=")
		node, ok2 := strings.CutPrefix(f[3], "node=")
		if err == nil && ok1 && ok2 {
			out = append(out, gotLine{seq, from, node})
		}
	}
	return out
}

// lastSent is the highest number daemon A's sender has published.
func lastSent(t *testing.T, d *daemontest.Daemon) int {
	t.Helper()
	last := 0
	for _, s := range withPrefix(busOut(t, d, "xnode", "sender"), "sent ") {
		if k, err := strconv.Atoi(strings.TrimPrefix(s, "sent ")); err == nil && k > last {
			last = k
		}
	}
	return last
}

// TestBusCrossNodeRedis: two daemons bridged through a real redis-server.
// A message an agent publishes under daemon A reaches an agent under
// daemon B with its sender and node; while redis is down, delivery inside
// daemon A goes on; once redis is back on the same port, messages cross
// again, both ways; a restarted daemon bridges its recovered project again.
func TestBusCrossNodeRedis(t *testing.T) {
	port := freePort(t)
	rs := startRedis(t, port)
	a := daemontest.Start(t, daemontest.Options{})
	b := daemontest.Start(t, daemontest.Options{})
	vars := map[string]string{"PORT": strconv.Itoa(port)}
	b.MustCLI(busCase(t, "xnode-b", vars), "run", "-d", ".")
	a.MustCLI(busCase(t, "xnode-a", vars), "run", "-d", ".")
	nodeA, nodeB := busStats(t, a).Node, busStats(t, b).Node
	if nodeA == "" || nodeA == nodeB {
		t.Fatalf("node ids %q and %q, want two distinct ones", nodeA, nodeB)
	}
	fromA := func(after int) func([]outLine) bool {
		return func(l []outLine) bool {
			for _, g := range gotLines(l) {
				if g.seq > after && g.from == "sender" && g.node == nodeA {
					return true
				}
			}
			return false
		}
	}

	waitOut(t, b, "xnode", "receiver", "message from daemon A's sender", 30*time.Second, fromA(0))

	rs.stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		brokers := busStats(t, a).Brokers
		if len(brokers) == 1 && !brokers[0].Connected {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon A still reports the broker connected 30 s after redis stopped: %+v", brokers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	outage := lastSent(t, a)
	waitOut(t, a, "xnode", "localsub", fmt.Sprintf("local delivery of message %d+ during the redis outage", outage+5), 30*time.Second, func(l []outLine) bool {
		for _, g := range gotLines(l) {
			if g.seq >= outage+5 && g.from == "sender" && g.node == nodeA {
				return true
			}
		}
		return false
	})
	if br := busStats(t, a).Brokers; len(br) != 1 || br[0].Connected {
		t.Fatalf("broker reconnected before redis was restarted: %+v", br)
	}

	rs.start()
	restarted := lastSent(t, a)
	recv := waitOut(t, b, "xnode", "receiver", fmt.Sprintf("message after %d from daemon A once redis is back", restarted), 60*time.Second, fromA(restarted))
	first := 0
	for _, g := range gotLines(recv) {
		if g.seq > restarted && first == 0 {
			first = g.seq
		}
	}
	t.Logf("redis stopped when A's sender was at %d; local delivery on A reached %d during the outage; redis back when the sender was at %d; the first message B received after that: %d", outage, outage+5, restarted, first)

	// And the other way: an operator publish on B reaches A's agent.
	deadline = time.Now().Add(30 * time.Second)
	ops := 0
	for {
		ops++
		b.MustCLI("", "bus", "publish", "xnode", "news", fmt.Sprintf(`{"seq": %d}`, -ops))
		var ok bool
		for _, g := range gotLines(busOut(t, a, "xnode", "localsub")) {
			if g.seq < 0 && g.from == "" && g.node == nodeB {
				ok = true
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no operator message from daemon B reached daemon A's localsub in 30 s; its log:\n%s", everything(a, "xnode", "localsub"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, x := range []struct {
		name string
		d    *daemontest.Daemon
	}{{"A", a}, {"B", b}} {
		br := busStats(t, x.d).Brokers
		t.Logf("daemon %s broker: %+v", x.name, br)
		if len(br) != 1 || !br[0].Connected || br[0].Errors == 0 || br[0].URL != fmt.Sprintf("redis://127.0.0.1:%d", port) {
			t.Errorf("daemon %s broker stats %+v, want connected again, with the outage counted in errors", x.name, br)
		}
	}
	// What came in through the broker is never sent back out: B forwarded
	// at most the operator's messages, none of A's.
	if br := busStats(t, b).Brokers; len(br) != 1 || br[0].Received == 0 || br[0].Forwarded > uint64(ops) {
		t.Errorf("daemon B broker stats %+v, want messages received and at most %d forwarded", br, ops)
	}

	// Daemon B killed and restarted: it bridges the recovered project
	// again, and B's receiver (same process, reattached) gets A's messages.
	b.Kill9()
	b.StartDaemon()
	again := lastSent(t, a)
	waitOut(t, b, "xnode", "receiver", fmt.Sprintf("message after %d from daemon A once daemon B restarted", again), 60*time.Second, fromA(again))
	if st, _ := b.Agent("xnode", "receiver"); st.State != api.Running || st.Restarts != 0 {
		t.Errorf("B's receiver: %s, restarts %d, want the same process running", st.State, st.Restarts)
	}
}

// TestBusRemovedProjectForgetsDurable: `cortex rm` removes a project's
// durable channels with it: a later project of the same name (another
// user's, perhaps) with an agent of the same name does not receive what
// the removed one had stored.
func TestBusRemovedProjectForgetsDurable(t *testing.T) {
	d := daemontest.Start(t, daemontest.Options{})
	runAttached(t, d, busCase(t, "reuse-old", nil), "reuse", "worker")
	d.MustCLI("", "rm", "reuse")
	d.MustCLI(busCase(t, "reuse-new", nil), "run", "-d", ".")
	d.MustCLI("", "bus", "publish", "reuse", "jobs", `{"marker": "new"}`)
	endedOK(t, d, "reuse", "worker")
	got := withPrefix(busOut(t, d, "reuse", "worker"), "msg ")
	if diff := cmp.Diff([]string{`msg {"marker": "new"} from=`}, got); diff != "" {
		t.Errorf("the new project's agent received (-want +got); anything before the marker is the removed project's:\n%s", diff)
	}
}
