package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/bundle"
	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/llm/cassette"
	"github.com/cortexrt/cortex/internal/manifest"
)

// checkLLMFlags refuses flag combinations a run cannot honour.
func checkLLMFlags(opts runOptions) error {
	switch {
	case opts.llmRecord != "" && opts.llmReplay != "":
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--llm-record and --llm-replay exclude each other"), "record in one run, replay in the next")
	case opts.llmRecord != "" && opts.detach:
		return errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--llm-record needs an attached run: the cassettes are written when it ends"), "drop -d")
	}
	return nil
}

// uploadCassettes sends the cassette files of dir to the daemon, which
// holds them for the run of project; it returns their id.
func (e *env) uploadCassettes(ctx context.Context, c *api.Client, project, dir string) (string, error) {
	files, err := cassette.ReadDir(dir)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", errdefs.WithHint(errdefs.New(errdefs.InvalidArgument, "--llm-replay %s: no cassette files (<key>.json) in it", dir), "record some with cortex run --llm-record "+dir)
	}
	in := api.LLMCassettes{Files: map[string]json.RawMessage{}}
	for n, b := range files {
		in.Files[n] = b
	}
	body, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	var out api.LLMCassetteUpload
	if err := c.Do(ctx, http.MethodPost, "/llm/cassettes", url.Values{"project": {project}}, bytes.NewReader(body), &out); err != nil {
		return "", err
	}
	return out.ID, nil
}

// saveRecording writes what the project's run recorded into dir (made
// if missing): one <key>.json per request, replacing files of the same
// requests and keeping the others.
func (e *env) saveRecording(ctx context.Context, c *api.Client, project, dir string) error {
	var rec api.LLMCassettes
	if err := c.Do(ctx, http.MethodGet, "/llm/cassettes/"+url.PathEscape(project), nil, nil, &rec); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(rec.Files))
	for n := range rec.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	answers := 0
	for _, n := range names {
		f, err := cassette.Parse(n, rec.Files[n])
		if err != nil {
			return err
		}
		answers += len(f.Interactions)
		b, err := cassette.Marshal(f)
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp(dir, ".cassette-*")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(b)
		cerr := tmp.Close()
		if werr != nil || cerr != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write cassette %s: %v", n, firstErr(werr, cerr))
		}
		if err := os.Chmod(tmp.Name(), 0o644); err != nil {
			os.Remove(tmp.Name())
			return err
		}
		if err := os.Rename(tmp.Name(), filepath.Join(dir, n)); err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	fmt.Fprintf(e.stderr, "Recorded %d answer(s) to %d request(s) in %s\n", answers, len(names), dir)
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// projectOf reads the project's name from the bundle about to be sent.
func projectOf(path string) (string, error) {
	b, err := bundle.Open(path)
	if err != nil {
		return "", err
	}
	defer b.Close()
	m, err := manifest.Parse(bytes.NewReader(b.Manifest()), bundle.ManifestName)
	if err != nil {
		return "", errdefs.Wrap(errdefs.InvalidArgument, err)
	}
	return m.Project, nil
}
