package auth

import (
	"net/url"
	"path"
	"strings"
)

// pathValues returns the wildcard values of pattern (an http.ServeMux
// pattern "[METHOD ]/path/{name}/{rest...}") for escapedPath, the way
// ServeMux computes them: segment by segment, each unescaped on its
// own, a {name...} taking the unescaped rest. The pipeline sets them on
// the request it hands the handler, so the handler acts on exactly the
// values Authorize saw. ok is false when the path does not match.
func pathValues(pattern, escapedPath string) (vals map[string]string, ok bool) {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if !strings.HasPrefix(pattern, "/") {
		return nil, false // host patterns are not used
	}
	vals = map[string]string{}
	pat, path := pattern, escapedPath
	for {
		if pat == "" {
			return vals, path == ""
		}
		if pat == "/" {
			// A trailing slash: a subtree; matches the rest.
			return vals, strings.HasPrefix(path, "/")
		}
		var pseg string
		pseg, pat = cut(pat)
		if pseg == "{$}" {
			return vals, path == "/" && pat == ""
		}
		if strings.HasPrefix(pseg, "{") && strings.HasSuffix(pseg, "...}") {
			if !strings.HasPrefix(path, "/") {
				return nil, false
			}
			vals[pseg[1:len(pseg)-4]] = unescape(path[1:])
			return vals, true
		}
		if path == "" || path[0] != '/' {
			return nil, false
		}
		var seg string
		seg, path = cut(path)
		seg = unescape(seg)
		if strings.HasPrefix(pseg, "{") && strings.HasSuffix(pseg, "}") {
			if seg == "" {
				return nil, false
			}
			vals[pseg[1:len(pseg)-1]] = seg
			continue
		}
		if seg != pseg {
			return nil, false
		}
	}
}

// cut splits "/seg/rest" into "seg" and "/rest".
func cut(p string) (seg, rest string) {
	p = p[1:]
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

func unescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// cleanPath is net/http's: the path ServeMux redirects an unclean one to.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}
