package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/cortexrt/cortex/internal/errdefs"
)

// The helpers below are for the handlers that serve /v1/ (the daemon's,
// the bus's and the LLM gateway's admin API), so that every answer under
// it has one shape and every error one body.

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers err as an ErrorBody with the status of its category
// (errdefs.HTTPStatus), or with status when it is not zero (413 for a body
// over a limit, 405 for a method the path does not take). The body always
// names the category, so the client never derives it from the status.
func WriteError(w http.ResponseWriter, status int, err error) {
	cat := errdefs.CategoryOf(err)
	if status == 0 {
		status = errdefs.HTTPStatus(cat)
	}
	WriteJSON(w, status, ErrorBody{Error: err.Error(), Category: string(cat), Hint: errdefs.HintOf(err)})
}

// NotFound wraps mux so that a request no pattern matches is answered with
// an ErrorBody (404, or 405 when the path takes other methods) instead of
// the mux's plain-text page.
func NotFound(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			if m == r.Method {
				continue
			}
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, p := mux.Handler(r2); p != "" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			MethodNotAllowed(w, r, allowed...)
			return
		}
		WriteError(w, 0, errdefs.New(errdefs.NotFound, "no API endpoint %s %s", r.Method, r.URL.Path))
	})
}

// MethodNotAllowed answers 405 for a path that takes only the allowed
// methods.
func MethodNotAllowed(w http.ResponseWriter, r *http.Request, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	WriteError(w, http.StatusMethodNotAllowed, errdefs.New(errdefs.InvalidArgument, "%s %s: method not allowed; use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
}
