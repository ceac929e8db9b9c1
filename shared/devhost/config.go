package devhost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Trigger kinds, as spelled in function.json.
const (
	TimerTrigger      = "timerTrigger"
	ServiceBusTrigger = "serviceBusTrigger"
	HTTPTrigger       = "httpTrigger"
)

// HostConfig is what the runner read from host.json.
type HostConfig struct {
	// ExecutablePath is customHandler.description.defaultExecutablePath: the binary the
	// Azure host would start. The runner does not start it; it is reported only.
	ExecutablePath string
	// ForwardHTTP is customHandler.enableForwardingHttpRequest. The runner always forwards
	// HTTP requests raw, so New rejects an app with HTTP functions when it is false.
	ForwardHTTP bool
	// RoutePrefix is extensions.http.routePrefix (default "api"; may be empty).
	RoutePrefix string
	// MaxConcurrentCalls is extensions.serviceBus.maxConcurrentCalls (default 16): messages
	// of a queue without sessions delivered in parallel.
	MaxConcurrentCalls int
	// MaxConcurrentSessions is extensions.serviceBus.maxConcurrentSessions (default 8):
	// sessions of a session-enabled queue delivered in parallel.
	MaxConcurrentSessions int
}

// Function is one function read from <Name>/function.json, with app-setting
// references already resolved.
type Function struct {
	// Name is the folder name; the handler is invoked at POST /{Name}.
	Name string
	// Trigger is TimerTrigger, ServiceBusTrigger or HTTPTrigger.
	Trigger string
	// Binding is the trigger binding's "name": the key under Data in the envelope.
	Binding string

	// Schedule is the NCRONTAB expression of a timer; RunOnStartup fires it once at start.
	Schedule     string
	RunOnStartup bool

	// Queue is the Service Bus queue name; Connection the app-setting prefix of its
	// connection (reported only); Sessions is isSessionsEnabled.
	Queue      string
	Connection string
	Sessions   bool

	// Route is the HTTP route template under the route prefix (default: the function
	// name); Methods the allowed methods in upper case (empty: any); AuthLevel is
	// reported only, as local runs need no key.
	Route     string
	Methods   []string
	AuthLevel string
}

// function is a Function plus what the runner needs to run it.
type function struct {
	Function
	schedule Schedule
	route    []routeSegment
	running  atomic.Bool // a timer run is outstanding

	mu     sync.Mutex // guards status
	status scheduleStatus
}

type hostFile struct {
	CustomHandler struct {
		Description struct {
			DefaultExecutablePath string `json:"defaultExecutablePath"`
		} `json:"description"`
		EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
	} `json:"customHandler"`
	Extensions struct {
		ServiceBus struct {
			MaxConcurrentCalls    *int `json:"maxConcurrentCalls"`
			MaxConcurrentSessions *int `json:"maxConcurrentSessions"`
		} `json:"serviceBus"`
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
	} `json:"extensions"`
}

type bindingFile struct {
	Name              string   `json:"name"`
	Type              string   `json:"type"`
	Direction         string   `json:"direction"`
	Schedule          string   `json:"schedule"`
	RunOnStartup      bool     `json:"runOnStartup"`
	QueueName         string   `json:"queueName"`
	Connection        string   `json:"connection"`
	IsSessionsEnabled bool     `json:"isSessionsEnabled"`
	Route             string   `json:"route"`
	Methods           []string `json:"methods"`
	AuthLevel         string   `json:"authLevel"`
}

type functionFile struct {
	Bindings []bindingFile `json:"bindings"`
}

func readHostConfig(root string) (HostConfig, error) {
	var f hostFile
	if err := readJSON(filepath.Join(root, "host.json"), &f); err != nil {
		return HostConfig{}, err
	}
	c := HostConfig{
		ExecutablePath:        f.CustomHandler.Description.DefaultExecutablePath,
		ForwardHTTP:           f.CustomHandler.EnableForwardingHTTPRequest,
		RoutePrefix:           "api",
		MaxConcurrentCalls:    16,
		MaxConcurrentSessions: 8,
	}
	if p := f.Extensions.HTTP.RoutePrefix; p != nil {
		c.RoutePrefix = strings.Trim(*p, "/")
	}
	if n := f.Extensions.ServiceBus.MaxConcurrentCalls; n != nil {
		if *n < 1 {
			return HostConfig{}, fmt.Errorf("host.json: extensions.serviceBus.maxConcurrentCalls: must be at least 1, got %d", *n)
		}
		c.MaxConcurrentCalls = *n
	}
	if n := f.Extensions.ServiceBus.MaxConcurrentSessions; n != nil {
		if *n < 1 {
			return HostConfig{}, fmt.Errorf("host.json: extensions.serviceBus.maxConcurrentSessions: must be at least 1, got %d", *n)
		}
		c.MaxConcurrentSessions = *n
	}
	return c, nil
}

// functionsDir is AppRoot/functions when it exists (the repository layout), else AppRoot
// itself (the deployment package layout: one folder per function next to host.json).
func functionsDir(root string) string {
	dir := filepath.Join(root, "functions")
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return root
}

func readFunctions(root string, setting func(string) string) ([]*function, error) {
	dir := functionsDir(root)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read functions: %w", err)
	}
	var fns []*function
	queues := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name(), "function.json")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		rel, _ := filepath.Rel(root, path)
		fn, err := readFunction(path, rel, e.Name(), setting)
		if err != nil {
			return nil, err
		}
		if fn.Trigger == ServiceBusTrigger {
			key := strings.ToLower(fn.Queue)
			if other, ok := queues[key]; ok {
				return nil, fmt.Errorf("%s: bindings: queue %q already has trigger function %s", rel, fn.Queue, other)
			}
			queues[key] = fn.Name
		}
		fns = append(fns, fn)
	}
	if len(fns) == 0 {
		return nil, fmt.Errorf("no <Name>/function.json under %s", dir)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Name < fns[j].Name })
	return fns, nil
}

func readFunction(path, rel, name string, setting func(string) string) (*function, error) {
	var f functionFile
	if err := readJSON(path, &f); err != nil {
		return nil, err
	}
	fn := &function{Function: Function{Name: name}}
	hasHTTPOut := false
	for i, b := range f.Bindings {
		field := func(name string) string { return fmt.Sprintf("%s: bindings[%d].%s", rel, i, name) }
		resolve := func(name, v string) (string, error) {
			out, err := resolveSettings(v, setting)
			if err != nil {
				return "", fmt.Errorf("%s: %w", field(name), err)
			}
			return out, nil
		}
		var err error
		switch b.Type {
		case TimerTrigger, ServiceBusTrigger, HTTPTrigger:
			if fn.Trigger != "" {
				return nil, fmt.Errorf("%s: a function has exactly one trigger, found %s and %s", field("type"), fn.Trigger, b.Type)
			}
			if b.Name == "" {
				return nil, fmt.Errorf("%s: missing", field("name"))
			}
			fn.Trigger, fn.Binding = b.Type, b.Name
		case "http":
			if b.Direction != "out" {
				return nil, fmt.Errorf("%s: http binding must have direction \"out\"", field("direction"))
			}
			hasHTTPOut = true
			continue
		case "":
			return nil, fmt.Errorf("%s: missing", field("type"))
		default:
			return nil, fmt.Errorf("%s: unknown binding type %q (the local runner knows timerTrigger, serviceBusTrigger, httpTrigger and http)", field("type"), b.Type)
		}
		switch b.Type {
		case TimerTrigger:
			if fn.Schedule, err = resolve("schedule", b.Schedule); err != nil {
				return nil, err
			}
			if fn.Schedule == "" {
				return nil, fmt.Errorf("%s: missing", field("schedule"))
			}
			if fn.schedule, err = ParseSchedule(fn.Schedule); err != nil {
				return nil, fmt.Errorf("%s: %w", field("schedule"), err)
			}
			fn.RunOnStartup = b.RunOnStartup
		case ServiceBusTrigger:
			if fn.Queue, err = resolve("queueName", b.QueueName); err != nil {
				return nil, err
			}
			if fn.Queue == "" {
				return nil, fmt.Errorf("%s: missing (the local runner supports queues, not topics)", field("queueName"))
			}
			fn.Connection, fn.Sessions = b.Connection, b.IsSessionsEnabled
		case HTTPTrigger:
			if fn.Route, err = resolve("route", b.Route); err != nil {
				return nil, err
			}
			if fn.Route == "" {
				fn.Route = name
			}
			if fn.route, err = parseRoute(fn.Route); err != nil {
				return nil, fmt.Errorf("%s: %w", field("route"), err)
			}
			for _, m := range b.Methods {
				fn.Methods = append(fn.Methods, strings.ToUpper(m))
			}
			fn.AuthLevel = b.AuthLevel
		}
	}
	switch {
	case fn.Trigger == "":
		return nil, fmt.Errorf("%s: bindings: no trigger binding", rel)
	case fn.Trigger == HTTPTrigger && !hasHTTPOut:
		return nil, fmt.Errorf("%s: bindings: an httpTrigger needs an http output binding", rel)
	}
	return fn, nil
}

var settingRef = regexp.MustCompile(`%([^%]+)%`)

// resolveSettings replaces each %Name% in v with the app setting Name, as the host does
// for binding properties. A referenced setting that is empty is an error.
func resolveSettings(v string, setting func(string) string) (string, error) {
	var missing []string
	out := settingRef.ReplaceAllStringFunc(v, func(ref string) string {
		name := strings.Trim(ref, "%")
		val := setting(name)
		if val == "" {
			missing = append(missing, name)
		}
		return val
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("app setting %q is not set", missing[0])
	}
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// scheduleStatus is the timer's ScheduleStatus as the host's schedule monitor keeps it.
type scheduleStatus struct {
	Last        time.Time `json:"Last"`
	Next        time.Time `json:"Next"`
	LastUpdated time.Time `json:"LastUpdated"`
}
