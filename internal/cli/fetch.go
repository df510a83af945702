package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
)

// fetchJSON asks the daemon and either prints its JSON answer as it is
// (--json: nothing lost to the CLI's own view of it) or decodes it into
// out for a table. It reports whether it printed.
func (e *env) fetchJSON(ctx context.Context, method, path string, q url.Values, body io.Reader, asJSON bool, out any) (bool, error) {
	cl, err := e.connect(ctx, false)
	if err != nil {
		return false, err
	}
	var raw json.RawMessage
	if err := cl.Do(ctx, method, path, q, body, &raw); err != nil {
		return false, err
	}
	if asJSON {
		return true, writeJSONTo(e.stdout, raw)
	}
	return false, json.Unmarshal(raw, out)
}
