package bus

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cortexrt/cortex/internal/api"
	"github.com/cortexrt/cortex/internal/errdefs"
)

// Report gathers what `cortex bus stats` shows (GET /v1/bus/stats).
func (s *Server) Report() api.BusStats {
	return api.BusStats{Node: s.node, Channels: s.Stats(), Brokers: s.Brokers()}
}

// Handler serves the operator API. Mount it at "/v1/bus/" (with or
// without http.StripPrefix); the API server authenticates and authorizes
// before it. Routes (the wire types are internal/api's):
//
//	GET  /v1/bus/stats                       api.BusStats
//	POST /v1/bus/{project}/{channel}         body: the payload (a JSON object); api.BusPublishResult
//	GET  /v1/bus/{project}/{channel}         Server-Sent Events: "event: message", data = api.BusMessage
//
// Errors are api.ErrorBody with the status of their errdefs category (413
// for a payload over the limit).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/bus/stats", s.serveStats)
	mux.HandleFunc("POST /v1/bus/{project}/{channel}", s.servePublish)
	mux.HandleFunc("GET /v1/bus/{project}/{channel}", s.serveSubscribe)
	h := api.NotFound(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/bus/") {
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path = "/v1/bus/" + strings.TrimPrefix(r.URL.Path, "/")
			u.RawPath = ""
			r2.URL = &u
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

func writeHTTPError(w http.ResponseWriter, err error) {
	status := 0
	if errors.Is(err, ErrPayloadTooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	api.WriteError(w, status, err)
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, s.Report())
}

func (s *Server) servePublish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxPayload+1))
	if err != nil {
		writeHTTPError(w, errdefs.New(errdefs.InvalidArgument, "read body: %v", err))
		return
	}
	id, err := s.publishOperator(r.Context(), r.PathValue("project"), r.PathValue("channel"), body)
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.BusPublishResult{ID: id})
}

func (s *Server) serveSubscribe(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeHTTPError(w, errdefs.New(errdefs.Unsupported, "streaming is not supported by this connection"))
		return
	}
	ch, err := s.Subscribe(r.Context(), r.PathValue("project"), r.PathValue("channel"))
	if err != nil {
		writeHTTPError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, ": subscribed\n\n")
	fl.Flush()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case m, ok := <-ch:
			if !ok {
				return
			}
			b, err := json.Marshal(api.BusMessage(m))
			if err != nil {
				continue
			}
			if _, err := io.WriteString(w, "id: "+m.ID+"\nevent: message\ndata: "+string(b)+"\n\n"); err != nil {
				return
			}
			if len(ch) == 0 {
				fl.Flush()
			}
		}
	}
}
