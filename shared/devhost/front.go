package devhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"

	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/tracecontext"
)

// routeSegment is one "/"-separated segment of an HTTP route template.
type routeSegment struct {
	literal    string
	param      bool
	optional   bool   // {name?}
	catchAll   bool   // {*name}
	constraint string // first constraint of {name:constraint}, e.g. "guid"
}

// parseRoute parses an ASP.NET-style route template such as
// "tenants/{tenantId}/presence/{id:guid}". Parameters must fill whole segments.
func parseRoute(tmpl string) ([]routeSegment, error) {
	var segs []routeSegment
	parts := strings.Split(strings.Trim(tmpl, "/"), "/")
	for i, p := range parts {
		if !strings.ContainsAny(p, "{}") {
			if p == "" {
				return nil, fmt.Errorf("route %q has an empty segment", tmpl)
			}
			segs = append(segs, routeSegment{literal: p})
			continue
		}
		if !strings.HasPrefix(p, "{") || !strings.HasSuffix(p, "}") || len(p) < 3 {
			return nil, fmt.Errorf("route %q: segment %q: a parameter must fill the whole segment", tmpl, p)
		}
		s := routeSegment{param: true}
		inner := p[1 : len(p)-1]
		if rest, ok := strings.CutPrefix(inner, "*"); ok {
			if i != len(parts)-1 {
				return nil, fmt.Errorf("route %q: catch-all %q must be the last segment", tmpl, p)
			}
			s.catchAll, inner = true, rest
		}
		inner, s.optional = strings.CutSuffix(inner, "?")
		if _, c, ok := strings.Cut(inner, ":"); ok {
			s.constraint, _, _ = strings.Cut(c, ":")
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// matchRoute reports whether the path segments fill the template.
func matchRoute(tmpl []routeSegment, path []string) bool {
	for i, t := range tmpl {
		if t.catchAll {
			return true
		}
		if i >= len(path) {
			return t.optional && (i+1 == len(tmpl) || tmpl[i+1].catchAll || tmpl[i+1].optional)
		}
		s := path[i]
		if t.param {
			if s == "" || !constraintHolds(t.constraint, s) {
				return false
			}
			continue
		}
		if !strings.EqualFold(t.literal, s) {
			return false
		}
	}
	return len(path) == len(tmpl)
}

// constraintHolds checks the common route constraints; others (length(n), regex(...),
// ...) are tolerated and not enforced.
func constraintHolds(c, v string) bool {
	switch strings.ToLower(c) {
	case "int":
		_, err := strconv.ParseInt(v, 10, 32)
		return err == nil
	case "long":
		_, err := strconv.ParseInt(v, 10, 64)
		return err == nil
	case "bool":
		_, err := strconv.ParseBool(v)
		return err == nil
	case "alpha":
		return strings.IndexFunc(v, func(r rune) bool { return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') }) < 0
	case "guid":
		return isGUID(strings.Trim(v, "{}"))
	}
	return true
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// literalCount ranks templates: more literal segments win over parameters.
func literalCount(t []routeSegment) int {
	n := 0
	for _, s := range t {
		if !s.param {
			n++
		}
	}
	return n
}

// frontEnd serves what the Functions host serves on its port: HTTP triggers under the
// route prefix, forwarded raw, and the admin invocation endpoint.
func (h *Host) frontEnd() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/functions/{name}", h.serveAdmin)
	if h.opts.Extra != nil {
		mux.Handle("/sim/", h.opts.Extra)
	}
	mux.HandleFunc("/", h.serveTrigger)
	return mux
}

// matchHTTP finds the HTTP function whose route and methods take the request.
func (h *Host) matchHTTP(r *http.Request) *function {
	rest := strings.TrimPrefix(r.URL.Path, "/")
	if p := h.cfg.RoutePrefix; p != "" {
		head, tail, _ := strings.Cut(rest, "/")
		if !strings.EqualFold(head, p) {
			return nil
		}
		rest = tail
	}
	var path []string
	if rest = strings.TrimSuffix(rest, "/"); rest != "" {
		path = strings.Split(rest, "/")
	}
	var best *function
	for _, fn := range h.funcs {
		if fn.Trigger != HTTPTrigger || !matchRoute(fn.route, path) {
			continue
		}
		if len(fn.Methods) > 0 && !slices.Contains(fn.Methods, r.Method) {
			continue
		}
		if best == nil || literalCount(fn.route) > literalCount(best.route) {
			best = fn
		}
	}
	return best
}

// serveTrigger forwards a request for an HTTP function to the handler at the same path
// (enableForwardingHttpRequest) and copies its answer back as-is. Keys ("code" query,
// x-functions-key header) are neither required nor removed, as with Core Tools.
func (h *Host) serveTrigger(w http.ResponseWriter, r *http.Request) {
	fn := h.matchHTTP(r)
	if fn == nil {
		http.NotFound(w, r)
		return
	}
	id := newGUID()
	log := h.log.With("function", fn.Name, "invocationId", id)
	out := r.Clone(r.Context())
	out.Header.Set(headerInvocationID, id)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(h.handlerURL)
			pr.Out.Host = pr.In.Host
			// As Azure's front end does: Client-IP is the caller's address (written over
			// whatever the caller sent), and the address is appended to X-Forwarded-For.
			peer := pr.In.RemoteAddr
			pr.Out.Header.Set("Client-IP", peer)
			xff := peer
			if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
				xff = strings.Join(prior, ", ") + ", " + peer
			}
			pr.Out.Header.Set("X-Forwarded-For", xff)
		},
		Transport: h.transport,
		ModifyResponse: func(resp *http.Response) error {
			log.Info("http function answered", "method", r.Method, "status", resp.StatusCode)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			log.Error("http function failed: handler unreachable", "method", r.Method, "error", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, out)
}

// adminRequest is the body of POST /admin/functions/{name}. SessionID and MessageID are
// runner extensions for Service Bus functions.
type adminRequest struct {
	Input     string `json:"input"`
	SessionID string `json:"sessionId"`
	MessageID string `json:"messageId"`
}

// serveAdmin invokes a non-HTTP function once, like Core Tools: a Service Bus function
// gets the input as a message on its queue, a timer fires now. It answers 202.
func (h *Host) serveAdmin(w http.ResponseWriter, r *http.Request) {
	fn := h.byName[strings.ToLower(r.PathValue("name"))]
	if fn == nil {
		http.Error(w, "no such function", http.StatusNotFound)
		return
	}
	var req adminRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "body must be {\"input\":\"...\"}: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	switch fn.Trigger {
	case ServiceBusTrigger:
		m := queue.Message{ID: req.MessageID, SessionID: req.SessionID, Body: []byte(req.Input)}
		ctx := r.Context()
		if tc, ok := tracecontext.FromHeader(r.Header); ok {
			ctx = tracecontext.NewContext(ctx, tc) // the message continues the caller's trace
		}
		if err := h.Send(ctx, fn.Queue, m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	case TimerTrigger:
		if err := h.fireTimer(fn, h.now(), "admin"); err != nil {
			code := http.StatusServiceUnavailable
			if errors.Is(err, errTimerRunning) {
				code = http.StatusConflict
			}
			http.Error(w, err.Error(), code)
			return
		}
	default:
		http.Error(w, "an HTTP function is invoked through its route", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}
