package cluster

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

func seccompFlags() (*flag.FlagSet, runner) {
	var from, to string
	var once bool
	fs := flag.NewFlagSet("seccomp-install", flag.ContinueOnError)
	fs.StringVar(&from, "from", "/profiles", "directory of *.json profiles (the ConfigMap)")
	fs.StringVar(&to, "to", "", "the node's directory, under the kubelet's seccomp root")
	fs.BoolVar(&once, "once", false, "install and exit instead of waiting")
	return fs, func(ctx context.Context, log *slog.Logger) error {
		if err := required("to", to); err != nil {
			return err
		}
		n, err := InstallSeccomp(from, to)
		if err != nil {
			return err
		}
		log.Info("seccomp profiles installed", "count", n, "dir", to)
		if once {
			return nil
		}
		// A DaemonSet's pod runs for as long as the node; a new version of
		// the chart rolls it with the new profile.
		<-ctx.Done()
		return nil
	}
}

// InstallSeccomp copies every *.json of from into to (created 0755) and
// returns how many. Each file is written to a temporary name and renamed,
// so the kubelet never reads half a profile; files already there are
// kept, since running pods may name them.
func InstallSeccomp(from, to string) (int, error) {
	if err := os.MkdirAll(to, 0o755); err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		// ConfigMap volumes hold ..data links and dot directories.
		if strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return n, err
		}
		tmp, err := os.CreateTemp(to, ".tmp-*")
		if err != nil {
			return n, err
		}
		_, werr := tmp.Write(data)
		if cerr := tmp.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Chmod(tmp.Name(), 0o644)
		}
		if werr == nil {
			werr = os.Rename(tmp.Name(), filepath.Join(to, e.Name()))
		}
		if werr != nil {
			os.Remove(tmp.Name())
			return n, fmt.Errorf("install %s: %w", e.Name(), werr)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("no *.json profile in %s", from)
	}
	return n, nil
}
