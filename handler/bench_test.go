package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkStartToReady starts the built handler binary as the host does (a port in
// FUNCTIONS_CUSTOMHANDLER_PORT) and measures until GET / answers, polling every
// millisecond (the host polls every 25 ms). ns/op is process start to ready.
func BenchmarkStartToReady(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "handler")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("build: %v", err)
	}
	client := &http.Client{Timeout: time.Second}
	for b.Loop() {
		port := freePort(b)
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "FUNCTIONS_CUSTOMHANDLER_PORT="+port, "Storage=Memory", "LogLevel=error")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := client.Get("http://127.0.0.1:" + port + "/")
			if err == nil {
				res.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("handler not ready within 10 s")
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.StartTimer()
	}
}
