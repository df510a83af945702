package llm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm/canon"
	"github.com/cortexrt/cortex/internal/llm/cassette"
	"github.com/cortexrt/cortex/internal/logkey"
)

// Cassette modes of a project (SetCassette).
const (
	// ModeLive: calls go to the providers (the default).
	ModeLive = ""
	// ModeRecord: calls go to the providers and every complete answer is
	// recorded, with the timing of its events.
	ModeRecord = "record"
	// ModeReplay: calls are answered from recorded answers only; no
	// provider, key or network is used, and the aliases need no
	// configuration.
	ModeReplay = "replay"
)

// cassette is a project's record or replay state, kept in dir
// (<state>/cassettes/<project>): a "mode" file and the cassette files.
type projectCassette struct {
	mode string
	dir  string

	mu     sync.Mutex
	files  map[string]*cassette.File // by key
	served map[string]int            // replay: answers given, by key
}

func (g *Gateway) cassetteRoot() string { return filepath.Join(g.stateDir, "cassettes") }

// loadCassettes restores the projects' modes and cassettes after a
// daemon restart.
func (g *Gateway) loadCassettes() error {
	ents, err := os.ReadDir(g.cassetteRoot())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		dir := filepath.Join(g.cassetteRoot(), e.Name())
		mode, err := os.ReadFile(filepath.Join(dir, "mode"))
		if err != nil {
			continue
		}
		c := &projectCassette{mode: strings.TrimSpace(string(mode)), dir: dir, files: map[string]*cassette.File{}, served: map[string]int{}}
		files, err := cassette.ReadDir(dir)
		if err != nil {
			g.log.Warn("llm cassette not restored", logkey.Project, e.Name(), logkey.Err, err)
			continue
		}
		for name, b := range files {
			cf, _ := cassette.Parse(name, b)
			c.files[cf.Key] = cf
		}
		g.cassettes[e.Name()] = c
	}
	return nil
}

// SetCassette sets how project's LLM calls are answered: ModeLive (the
// providers; a recording or cassette the project had is dropped),
// ModeRecord (the providers, recording every answer afresh) or
// ModeReplay (only from files, cassette files by name as
// ReadCassetteDir returns them). It persists across daemon restarts.
func (g *Gateway) SetCassette(project, mode string, files map[string][]byte) error {
	if project == "" || strings.ContainsAny(project, "/\\.") {
		return errdefs.New(errdefs.InvalidArgument, "llm cassette: bad project name %q", project)
	}
	dir := filepath.Join(g.cassetteRoot(), project)
	g.regMu.Lock()
	defer g.regMu.Unlock()
	g.mu.Lock()
	delete(g.cassettes, project)
	g.mu.Unlock()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("llm cassette: %w", err)
	}
	if mode == ModeLive {
		return nil
	}
	if mode != ModeRecord && mode != ModeReplay {
		return errdefs.New(errdefs.InvalidArgument, "llm cassette mode %q; use record or replay", mode)
	}
	c := &projectCassette{mode: mode, dir: dir, files: map[string]*cassette.File{}, served: map[string]int{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("llm cassette: %w", err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		b := files[name]
		cf, err := cassette.Parse(name, b)
		if err != nil {
			os.RemoveAll(dir)
			return err
		}
		c.files[cf.Key] = cf
		if err := writeFileAtomic(filepath.Join(dir, cf.Key+".json"), b); err != nil {
			os.RemoveAll(dir)
			return err
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, "mode"), []byte(mode+"\n")); err != nil {
		os.RemoveAll(dir)
		return err
	}
	g.mu.Lock()
	g.cassettes[project] = c
	g.mu.Unlock()
	return nil
}

// Recorded returns the cassette files recorded for project (ModeRecord),
// by file name.
func (g *Gateway) Recorded(project string) (map[string]json.RawMessage, error) {
	g.mu.RLock()
	c := g.cassettes[project]
	g.mu.RUnlock()
	if c == nil || c.mode != ModeRecord {
		return nil, errdefs.WithHint(errdefs.New(errdefs.NotFound, "project %s is not recording LLM calls", project), "run it with cortex run --llm-record DIR")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]json.RawMessage{}
	for k, cf := range c.files {
		b, err := cassette.Marshal(cf)
		if err != nil {
			return nil, err
		}
		out[k+".json"] = b
	}
	return out, nil
}

func (g *Gateway) cassetteOf(project string) *projectCassette {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.cassettes[project]
}

// replaying reports whether project answers from a cassette.
func (g *Gateway) replaying(project string) bool {
	c := g.cassetteOf(project)
	return c != nil && c.mode == ModeReplay
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return firstErr(werr, cerr)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// agentToken matches Cortex agent tokens, which never enter a cassette.
var agentToken = regexp.MustCompile(tokenPrefix + `[A-Za-z0-9_-]{20,}`)

// redact removes provider keys and agent tokens from s.
func (g *Gateway) redact(s string) string {
	return agentToken.ReplaceAllString(g.scrub(s), "[redacted]")
}

// recordingSink passes an answer on and records it when it completes.
type recordingSink struct {
	sink
	g      *Gateway
	c      *projectCassette
	call   *call
	key    string
	start  time.Time
	meta   answerMeta
	events []cassette.TimedEvent
	acc    canon.Accumulator
}

func (r *recordingSink) begin(m answerMeta) error {
	r.meta = m
	return r.sink.begin(m)
}

func (r *recordingSink) event(ev canon.Event, more bool) error {
	r.events = append(r.events, cassette.TimedEvent{AtMs: float64(time.Since(r.start).Microseconds()) / 1000, WireEvent: cassette.ToWire(ev)})
	r.acc.Add(ev)
	return r.sink.event(ev, more)
}

func (r *recordingSink) end(err error) error {
	if err == nil {
		r.g.record(r)
	}
	return r.sink.end(err)
}

// record adds a complete answer to the project's cassette, on disk at
// once, with every secret removed.
func (g *Gateway) record(r *recordingSink) {
	resp := r.acc.Result()
	it := cassette.Interaction{Stream: r.call.req.Stream, Provider: r.meta.provider, Response: resp, Events: r.events}
	reqJSON, _ := json.Marshal(r.call.req)
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	cf := c.files[r.key]
	if cf == nil {
		cf = &cassette.File{Version: cassette.Version, Key: r.key, Alias: r.call.route.name, Request: reqJSON}
	}
	cf.Interactions = append(cf.Interactions, it)
	raw, err := cassette.Marshal(cf)
	if err == nil {
		// Scrubbed as text: a key or token is replaced wherever it is.
		clean := []byte(g.redact(string(raw)))
		var scrubbed cassette.File
		if err = json.Unmarshal(clean, &scrubbed); err == nil {
			c.files[r.key] = &scrubbed
			err = writeFileAtomic(filepath.Join(c.dir, r.key+".json"), clean)
		}
	}
	if err != nil {
		g.log.Warn("llm record", logkey.Project, r.call.project, logkey.Err, err)
	}
}

// replay answers c from the project's cassette, each event at the time
// it came when it was recorded. A request the cassette does not hold is
// an error naming it.
func (g *Gateway) replay(ctx context.Context, cs *projectCassette, c *call, s sink) error {
	start := time.Now()
	key := cassette.Key(c.req, g.redact)
	cs.mu.Lock()
	cf := cs.files[key]
	var it cassette.Interaction
	if cf != nil {
		n := cs.served[key]
		cs.served[key] = n + 1
		it = cf.Interactions[min(n, len(cf.Interactions)-1)]
	}
	cs.mu.Unlock()
	if cf == nil {
		g.log.Warn("llm replay miss", logkey.Project, c.project, logkey.Agent, c.agent, "alias", c.route.name, "key", key)
		return &routeError{status: http.StatusNotFound, msg: fmt.Sprintf("llm replay: the cassette has no answer for this request (%s; key %s); record it with cortex run --llm-record DIR, or check the request is the one recorded",
			describeRequest(c.req), key[:12])}
	}
	day := dayOf(g.now())
	resp := it.Response
	g.meter.record(usageKey{day, c.project, c.agent, c.route.name, "replay", resp.Model},
		UsageRow{Requests: 1, InputTokens: resp.Usage.InputTokens, OutputTokens: resp.Usage.OutputTokens})
	if err := s.begin(answerMeta{alias: c.route.name, provider: it.Provider, model: resp.Model, cache: "replay", attempts: 0}); err != nil {
		return nil
	}
	evs := it.Events
	if len(evs) == 0 {
		for _, ev := range canon.Replay(resp) {
			evs = append(evs, cassette.TimedEvent{WireEvent: cassette.ToWire(ev)})
		}
	}
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for i, te := range evs {
		due := start.Add(time.Duration(te.AtMs * float64(time.Millisecond)))
		if d := time.Until(due); d > 0 {
			t.Reset(d)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
		ev, _ := te.Event()
		more := i < len(evs)-1 && !start.Add(time.Duration(evs[i+1].AtMs*float64(time.Millisecond))).After(time.Now())
		if err := s.event(ev, more); err != nil {
			return nil
		}
	}
	_ = s.end(nil)
	return nil
}

// describeRequest names a request in a replay miss: its alias, how many
// messages, and the start of the last one.
func describeRequest(req *canon.Request) string {
	last := ""
	if n := len(req.Messages); n > 0 {
		m := req.Messages[n-1]
		for _, p := range m.Parts {
			if p.Type == canon.PartText {
				last = p.Text
				break
			}
		}
		if r := []rune(last); len(r) > 60 {
			last = string(r[:60]) + "…"
		}
		last = fmt.Sprintf(", last %s message %q", m.Role, last)
	}
	return fmt.Sprintf("alias %q, %d message(s)%s", req.Model, len(req.Messages), last)
}

// Uploads: cassette files sent ahead of a run (cortex run --llm-replay
// DIR), held until the run takes them (TakeUpload) or for uploadTTL.
const uploadTTL = 10 * time.Minute

type upload struct {
	project string
	files   map[string][]byte
	at      time.Time
}

// Upload checks cassette files sent by a client and holds them for the
// run of project that names the returned id (so an upload is scoped like
// the run it is for).
func (g *Gateway) Upload(project string, files map[string][]byte) (string, error) {
	if project == "" {
		return "", errdefs.New(errdefs.InvalidArgument, "cassette upload: no project; upload for the project that replays them")
	}
	for name, b := range files {
		if name != filepath.Base(name) {
			return "", errdefs.New(errdefs.InvalidArgument, "cassette %q: a file name, not a path", name)
		}
		if _, err := cassette.Parse(name, b); err != nil {
			return "", err
		}
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(r[:])
	g.upMu.Lock()
	defer g.upMu.Unlock()
	now := time.Now()
	for k, u := range g.uploads {
		if now.Sub(u.at) > uploadTTL {
			delete(g.uploads, k)
		}
	}
	g.uploads[id] = &upload{project: project, files: files, at: now}
	return id, nil
}

// TakeUpload returns (once) the files uploaded under id for project.
func (g *Gateway) TakeUpload(id, project string) (map[string][]byte, error) {
	g.upMu.Lock()
	defer g.upMu.Unlock()
	u := g.uploads[id]
	if u == nil || time.Since(u.at) > uploadTTL || u.project != project {
		return nil, errdefs.New(errdefs.NotFound, "no cassette %q uploaded for project %s (uploads are kept %s)", id, project, uploadTTL)
	}
	delete(g.uploads, id)
	return u.files, nil
}
