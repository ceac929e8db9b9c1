package devhost

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestDeploymentLayoutAndRunOnStartup(t *testing.T) {
	handler := newFakeHandler(t, nil)
	// The deployment package has the function folders next to host.json.
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "host.json"), []byte(forwardingHostJSON), 0o644)
	os.MkdirAll(filepath.Join(root, "Warmup"), 0o755)
	os.WriteFile(filepath.Join(root, "Warmup", "function.json"),
		[]byte(`{"bindings":[{"name":"t","type":"timerTrigger","direction":"in","schedule":"0 0 0 1 1 *","runOnStartup":true}]}`), 0o644)
	h := startHost(t, Options{AppRoot: root, HandlerURL: handler.URL})
	if fns := h.Functions(); len(fns) != 1 || fns[0].Name != "Warmup" || !fns[0].RunOnStartup {
		t.Fatalf("Functions() = %+v", fns)
	}
	if inv := handler.next(t); inv.path != "/Warmup" {
		t.Errorf("startup run at %s", inv.path)
	}
}

func TestRunWaitsForTheHandlerToAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens yet: the probe is refused
	h, err := New(Options{
		AppRoot:    writeApp(t, forwardingHostJSON, map[string]string{"Tick": timerFunction("0 0 0 1 1 *")}),
		HandlerURL: "http://" + addr,
		Listen:     "127.0.0.1:0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	eventually(t, "the front end to listen", func() bool { return h.Addr() != "" })
	select {
	case <-h.Ready():
		t.Fatal("ready before the handler answered")
	default:
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case <-h.Ready():
	case <-time.After(waitLimit):
		t.Fatal("not ready after the handler answered")
	}
}
