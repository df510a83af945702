// Command brokend is a cortexd that starts and answers, but is broken: it
// says who it is (GET /v1/version) and fails everything else, the way a
// bad build that still comes up would. The update tests install it as a
// release's cortexd to see cortex-ops update roll back by itself.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

const version = "9.9.9-broken"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Println("cortexd", version)
		return
	}
	root := os.Getenv("CORTEX_ROOT")
	if root == "" {
		root = "/"
	}
	sock := filepath.Join(root, "run", "cortex", "cortexd.sock")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "brokend:", err)
		os.Exit(1)
	}
	exe, _ := os.Readlink("/proc/self/exe")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"version": version, "api": "v1", "pid": os.Getpid(), "root": root, "executable": exe})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "brokend: broken build", "category": "unavailable"})
	})
	srv := &http.Server{Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	_ = srv.Close()
	_ = os.Remove(sock)
}
