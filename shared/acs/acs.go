// Package acs is the Azure Communication Services identity adapter: it creates
// communication users, issues their access tokens and deletes them through the REST
// API (there is no Go SDK), signing each request with HMAC-SHA256 as PLATFORM.md
// describes. It implements interact.ACS.
//
// The connection string is passed per call (each tenant has its own) and is never
// part of an error or a log: errors name the operation and the HTTP status only. A
// refused key, an unreachable service (including a timeout) and any other answer than
// the expected one match interact.ErrACSRefused, ErrACSUnreachable and ErrACSFailed.
// A Client is safe for concurrent use.
package acs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/teamscc/teamscc/shared/interact"
)

// APIVersion is the Identity API version used.
const APIVersion = "2025-06-30"

// ErrBadKey: the service refused the signature (401/403): wrong access key. It is
// interact.ErrACSRefused.
var ErrBadKey = interact.ErrACSRefused

// Client talks to ACS. The zero value is not usable; create it with New.
type Client struct {
	hc  *http.Client
	now func() time.Time
}

var _ interact.ACS = (*Client)(nil)

// New returns a Client using hc (nil: a client with a 10 s timeout) and now (nil:
// time.Now) for the x-ms-date header.
func New(hc *http.Client, now func() time.Time) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Client{hc: hc, now: now}
}

// Sign adds the HMAC-SHA256 authentication headers to req for body, with the
// base64-encoded access key: x-ms-date (RFC 1123, GMT), x-ms-content-sha256
// (base64 SHA-256 of the body) and Authorization over
// "VERB\npathAndQuery\ndate;host;contentHash".
func Sign(req *http.Request, body []byte, accessKey string, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(accessKey)
	if err != nil {
		return errors.New("sign ACS request: the access key is not base64")
	}
	sum := sha256.Sum256(body)
	contentHash := base64.StdEncoding.EncodeToString(sum[:])
	date := now.UTC().Format(http.TimeFormat)
	host := req.URL.Host
	toSign := req.Method + "\n" + req.URL.RequestURI() + "\n" + date + ";" + host + ";" + contentHash
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(toSign))
	req.Header.Set("x-ms-date", date)
	req.Header.Set("x-ms-content-sha256", contentHash)
	req.Header.Set("Authorization", "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="+
		base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return nil
}

// statusError is an unexpected answer; it matches interact.ErrACSFailed.
type statusError struct {
	op     string
	status int
}

func (e *statusError) Error() string { return fmt.Sprintf("%s: ACS answered HTTP %d", e.op, e.status) }
func (e *statusError) Is(target error) bool {
	return target == interact.ErrACSFailed
}

// unreachableError wraps a transport failure (DNS, connect, TLS, timeout) without its
// URL; it matches interact.ErrACSUnreachable.
type unreachableError struct {
	op  string
	err error
}

func (e *unreachableError) Error() string { return e.op + ": ACS unreachable: " + e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }
func (e *unreachableError) Is(target error) bool {
	return target == interact.ErrACSUnreachable
}

// do sends one signed request and decodes a JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, op, conn, method, path string, in, out any, want int) error {
	endpoint, key, err := interact.ParseACSConnectionString(conn)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint+path+"?api-version="+APIVersion, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: bad endpoint", op)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := Sign(req, body, key, c.now()); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		return &unreachableError{op: op, err: err}
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: %w (HTTP %d)", op, ErrBadKey, res.StatusCode)
	case res.StatusCode != want:
		return &statusError{op: op, status: res.StatusCode}
	}
	if out != nil {
		if err := json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(out); err != nil {
			return fmt.Errorf("%s: %w: undecodable answer: %v", op, interact.ErrACSFailed, err)
		}
	}
	return nil
}

type tokenJSON struct {
	Token     string    `json:"token"`
	ExpiresOn time.Time `json:"expiresOn"`
}

// CreateIdentity implements interact.ACS: POST /identities with createTokenFor.
func (c *Client) CreateIdentity(ctx context.Context, conn string, scopes []string) (interact.ACSIdentity, error) {
	var out struct {
		Identity struct {
			ID string `json:"id"`
		} `json:"identity"`
		AccessToken *tokenJSON `json:"accessToken"`
	}
	in := map[string]any{}
	if len(scopes) > 0 {
		in["createTokenFor"] = scopes
	}
	if err := c.do(ctx, "create ACS identity", conn, http.MethodPost, "/identities", in, &out, http.StatusCreated); err != nil {
		return interact.ACSIdentity{}, err
	}
	if out.Identity.ID == "" {
		return interact.ACSIdentity{}, fmt.Errorf("create ACS identity: %w: answer without an id", interact.ErrACSFailed)
	}
	id := interact.ACSIdentity{ID: out.Identity.ID}
	if out.AccessToken != nil {
		id.Token, id.ExpiresOn = out.AccessToken.Token, out.AccessToken.ExpiresOn
	}
	return id, nil
}

// IssueToken implements interact.ACS: POST /identities/{id}/:issueAccessToken.
func (c *Client) IssueToken(ctx context.Context, conn, identityID string, scopes []string) (interact.ACSIdentity, error) {
	var out tokenJSON
	if err := c.do(ctx, "issue ACS token", conn, http.MethodPost, "/identities/"+url.PathEscape(identityID)+"/:issueAccessToken",
		map[string]any{"scopes": scopes}, &out, http.StatusOK); err != nil {
		return interact.ACSIdentity{}, err
	}
	return interact.ACSIdentity{ID: identityID, Token: out.Token, ExpiresOn: out.ExpiresOn}, nil
}

// DeleteIdentity deletes a communication user (and revokes its tokens).
func (c *Client) DeleteIdentity(ctx context.Context, conn, identityID string) error {
	return c.do(ctx, "delete ACS identity", conn, http.MethodDelete, "/identities/"+url.PathEscape(identityID), nil, nil, http.StatusNoContent)
}

// Check implements interact.ACS: create an identity (no token) and delete it.
func (c *Client) Check(ctx context.Context, conn string) interact.CheckResult {
	start := c.now()
	res := func(status, detail string) interact.CheckResult {
		return interact.CheckResult{Status: status, Detail: detail, TookMs: c.now().Sub(start).Milliseconds()}
	}
	if _, _, err := interact.ParseACSConnectionString(conn); err != nil {
		return res(interact.CheckFailed, "the connection string is malformed")
	}
	id, err := c.CreateIdentity(ctx, conn, nil)
	if err == nil {
		err = c.DeleteIdentity(ctx, conn, id.ID)
	}
	var ue *unreachableError
	switch {
	case err == nil:
		return res(interact.CheckOK, "created and deleted an identity")
	case errors.Is(err, ErrBadKey):
		return res(interact.CheckBadKey, "ACS refused the access key")
	case errors.As(err, &ue):
		return res(interact.CheckUnreachable, "the endpoint could not be reached")
	default:
		return res(interact.CheckFailed, err.Error())
	}
}
