package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// TestErrorBody checks that the client takes an error's category from the
// one error body every handler under /v1/ answers, never from the status.
func TestErrorBody(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/gone", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, 0, errdefs.WithHint(errdefs.New(errdefs.NotFound, "agent p/a not found"), "cortex list -a"))
	})
	mux.HandleFunc("POST /v1/big", func(w http.ResponseWriter, r *http.Request) {
		// A status that is not the category's: the body decides.
		WriteError(w, http.StatusRequestEntityTooLarge, errdefs.New(errdefs.InvalidArgument, "payload too large"))
	})
	mux.HandleFunc("GET /v1/proxy", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "bad gateway", http.StatusServiceUnavailable) // not an API error body
	})
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NotFound(mux)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	c := NewClient(sock)

	tests := []struct {
		name, method, path string
		cat                errdefs.Category
		msg, hint          string
	}{
		{"category and hint", "GET", "/gone", errdefs.NotFound, "agent p/a not found", "cortex list -a"},
		{"status differs from category", "POST", "/big", errdefs.InvalidArgument, "payload too large", ""},
		{"no route", "GET", "/nowhere", errdefs.NotFound, "no API endpoint GET /v1/nowhere", ""},
		{"wrong method", "DELETE", "/gone", errdefs.InvalidArgument, "DELETE /v1/gone: method not allowed; use GET", ""},
		{"not an error body", "GET", "/proxy", errdefs.Internal, "cortexd answered 503 Service Unavailable: bad gateway", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Do(context.Background(), tc.method, tc.path, nil, nil, nil)
			var e *errdefs.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T)", err, err)
			}
			if errdefs.CategoryOf(err) != tc.cat || !strings.Contains(err.Error(), tc.msg) || errdefs.HintOf(err) != tc.hint {
				t.Errorf("got %q (%s, hint %q), want %q (%s, hint %q)", err, errdefs.CategoryOf(err), errdefs.HintOf(err), tc.msg, tc.cat, tc.hint)
			}
		})
	}
}
