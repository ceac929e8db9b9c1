package devhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// HostVersion is sent in X-Azure-Functions-HostVersion. It is a major version 4 like the
// Azure host's, marked as the local runner.
const HostVersion = "4.0.0-devhost"

const (
	headerInvocationID = "X-Azure-Functions-InvocationId"
	headerHostVersion  = "X-Azure-Functions-HostVersion"
)

// envelope is the body the host POSTs to the handler for a non-HTTP trigger.
type envelope struct {
	Data     map[string]any `json:"Data"`
	Metadata map[string]any `json:"Metadata"`
}

// sysMetadata is Metadata.sys, which the host adds to every invocation.
func (h *Host) sysMetadata(fn *function) map[string]any {
	return map[string]any{"MethodName": fn.Name, "UtcNow": h.now(), "RandGuid": newGUID()}
}

// handlerResponse is the part of the handler's answer the runner uses.
type handlerResponse struct {
	Logs []string `json:"Logs"`
}

// invoke POSTs env to the handler as the host does and returns the handler's status.
// A transport error is returned as err. Lines in the answer's Logs are logged (the
// host keeps them only on success, so does the runner).
func (h *Host) invoke(ctx context.Context, fn *function, id string, env envelope, log *slog.Logger) (int, error) {
	body, err := json.Marshal(env)
	if err != nil {
		return 0, fmt.Errorf("encode envelope: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.handlerURL.JoinPath(fn.Name).String(), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerInvocationID, id)
	req.Header.Set(headerHostVersion, HostVersion)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("read handler answer: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		var hr handlerResponse
		if json.Unmarshal(answer, &hr) == nil {
			for _, line := range hr.Logs {
				log.Info("handler log", "line", line)
			}
		}
	}
	return resp.StatusCode, nil
}

// waitForHandler polls GET / until the handler answers anything, as the host does
// (every 25 ms, at most 30 s).
func (h *Host) waitForHandler(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.handlerURL.JoinPath("/").String(), nil)
		if err != nil {
			return err
		}
		if resp, err := h.client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("custom handler at %s did not answer GET / within 30s", h.handlerURL)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// startInvocation registers an invocation so that shutdown waits for it; it reports
// false once shutdown has begun.
func (h *Host) startInvocation() bool {
	h.invMu.Lock()
	defer h.invMu.Unlock()
	if h.closing {
		return false
	}
	h.invocations.Add(1)
	return true
}

// newGUID returns a random (version 4) GUID.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
