package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/parking"
	"github.com/teamscc/teamscc/shared/presence"
	"github.com/teamscc/teamscc/shared/tenant"
)

func mustFieldError(t *testing.T, what string, err error) {
	t.Helper()
	var fe *fault.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: want a *fault.FieldError, got %v", what, err)
	}
}

func TestKeyRules(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"0d1f6b1e-7c3a-4c59-9a5e-1f2a3b4c5d6e", true},
		{"presence-account-1-password", true},
		{"naïve ünïcode 😀", true},
		{strings.Repeat("a", 512), true}, // 1 KiB as UTF-16
		{strings.Repeat("a", 513), false},
		{strings.Repeat("😀", 256), true}, // surrogate pairs: 4 bytes each
		{strings.Repeat("😀", 257), false},
		{"", false},
		{"a/b", false},
		{`a\b`, false},
		{"a#b", false},
		{"a?b", false},
		{"o'brien", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"bad utf8 \xff", false},
	}
	for _, tt := range tests {
		err := checkKey("agent.id", tt.key)
		if tt.ok && err != nil {
			t.Errorf("checkKey(%q) = %v, want ok", tt.key, err)
		}
		if !tt.ok {
			var fe *fault.FieldError
			if !errors.As(err, &fe) || fe.Field != "agent.id" || !fault.IsPermanent(err) {
				t.Errorf("checkKey(%.20q) = %v, want a permanent *fault.FieldError for agent.id", tt.key, err)
			}
		}
	}
}

func TestRowLimits(t *testing.T) {
	full := strings.Repeat("x", maxStringBytes/2) // exactly 64 KiB as UTF-16
	if _, err := newRow("t", "pk", "p", "rk", "r", props{"Data": full}); err != nil {
		t.Fatalf("a 64 KiB string must fit: %v", err)
	}
	_, err := newRow("tenant", "pk", "p", "rk", "r", props{"Data": full + "x"})
	mustFieldError(t, "string over 64 KiB", err)
	if !strings.Contains(err.Error(), "tenant.Data") || !strings.Contains(err.Error(), "64 KiB") {
		t.Fatalf("error %q should name the property and the limit", err)
	}
	big := props{}
	for i := 0; i < 16; i++ {
		big[fmt.Sprintf("P%d", i)] = full
	}
	_, err = newRow("t", "pk", "p", "rk", "r", big)
	mustFieldError(t, "entity over 1 MiB", err)
	many := props{}
	for i := 0; i <= maxProperties; i++ {
		many[fmt.Sprintf("P%d", i)] = true
	}
	_, err = newRow("t", "pk", "p", "rk", "r", many)
	mustFieldError(t, "too many properties", err)
	_, err = newRow("t", "pk", "p", "rk", "r", props{"At": time.Date(1600, 12, 31, 0, 0, 0, 0, time.UTC)})
	mustFieldError(t, "date before 1601", err)

	// Times: UTC, 7 digits, annotated; a zero time is left out.
	local := time.FixedZone("CET", 3600)
	r, err := newRow("t", "pk", "p", "rk", "r", props{"At": time.Date(2026, 11, 24, 11, 30, 15, 123456789, local), "Zero": time.Time{}, "N": int64(1) << 40})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	if m["At"] != "2026-11-24T10:30:15.1234567Z" || m["At@odata.type"] != "Edm.DateTime" || m["N"] != "1099511627776" || m["N@odata.type"] != "Edm.Int64" {
		t.Fatalf("encoded %s", r.body)
	}
	if _, ok := m["Zero"]; ok {
		t.Fatalf("zero time must be left out (Azure rejects dates before 1601): %s", r.body)
	}
}

// offlineStore is a Store whose endpoint refuses connections: every test with it must
// fail before making a request.
func offlineStore(t *testing.T) *Store {
	t.Helper()
	s, err := newStore(Config{ConnectionString: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + devAccountKey + ";TableEndpoint=http://127.0.0.1:1/devstoreaccount1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestInvalidInputFailsBeforeAnyRequest(t *testing.T) {
	s := offlineStore(t)
	ctx := context.Background()
	agents := []tenant.Agent{{ID: "ok-1"}, {ID: "bad/2"}}
	cases := map[string]error{
		"agent id with /":           s.PutAgents(ctx, "tenant-1", agents),
		"tenant id with #":          s.PutAgents(ctx, "tenant#1", agents[:1]),
		"presence agent with ?":     s.SavePresences(ctx, "tenant-1", []presence.Presence{{AgentID: "u1"}, {AgentID: "u?2"}}),
		"presence time pre-1601":    s.SavePresences(ctx, "tenant-1", []presence.Presence{{AgentID: "u1", ObservedAt: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}}),
		"tenant name over 64KiB":    s.PutTenant(ctx, tenant.Tenant{ID: "tenant-1", Name: strings.Repeat("n", 40_000)}),
		"empty tenant id":           s.PutTenant(ctx, tenant.Tenant{}),
		"secret over 64 KiB":        s.PutSecret(ctx, "tenant-1", "s", strings.Repeat("s", 40_000)),
		"secret name with \\":       s.PutSecret(ctx, "tenant-1", `a\b`, "v"),
		"parked without function":   s.Park(ctx, parking.Message{MessageID: "m1"}),
		"list parked bad fn":        func() error { _, err := s.ListParked(ctx, "a/b", 1); return err }(),
		"get tenant bad id":         func() error { _, err := s.GetTenant(ctx, "a/b"); return err }(),
		"get secret bad tenant":     func() error { _, err := s.GetSecret(ctx, "a?b", "n"); return err }(),
		"list agents bad tenant":    func() error { _, err := s.ListAgents(ctx, ""); return err }(),
		"load presences bad tenant": func() error { _, err := s.LoadPresences(ctx, "x\ny"); return err }(),
		"get health bad tenant":     func() error { _, err := s.GetHealth(ctx, "x#"); return err }(),
		"update health bad tenant": func() error {
			_, err := s.UpdateHealth(ctx, "x/", func(*presence.Health) error { return nil })
			return err
		}(),
	}
	for name, err := range cases {
		mustFieldError(t, name, err)
		if strings.Contains(err.Error(), strings.Repeat("s", 100)) {
			t.Errorf("%s: error repeats the value: %.80s", name, err)
		}
	}
	if n := s.RoundTrips(); n != 0 {
		t.Fatalf("%d requests made; validation must fail before any", n)
	}
}

func TestUpdateHealthTooBigWritesNothing(t *testing.T) {
	// The Data JSON of a health with huge warnings exceeds 64 KiB: a clear error, and
	// (offline store) the read is the only request attempted.
	h := presence.Health{TenantID: "t", Warnings: []presence.Warning{{Message: strings.Repeat("w", 70_000)}}}
	_, err := healthEntity(h)
	mustFieldError(t, "health over 64 KiB", err)
	if !strings.Contains(err.Error(), "Data") {
		t.Fatalf("error %q should name the Data property", err)
	}
}

func TestChunkRespectsCountAndSize(t *testing.T) {
	mk := func(n, size int) []row {
		rows := make([]row, n)
		for i := range rows {
			rows[i] = row{pk: "p", rk: fmt.Sprint(i), body: make([]byte, size)}
		}
		return rows
	}
	sizes := func(bs [][]row) []int {
		var out []int
		for _, b := range bs {
			out = append(out, len(b))
		}
		return out
	}
	if got := sizes(chunk(mk(250, 100))); fmt.Sprint(got) != "[100 100 50]" {
		t.Fatalf("250 small rows → %v, want [100 100 50]", got)
	}
	if got := sizes(chunk(mk(100, 100))); fmt.Sprint(got) != "[100]" {
		t.Fatalf("100 small rows → %v, want [100]", got)
	}
	// 90 rows of ~100 KB: 4 MiB holds 41 of them.
	for _, b := range chunk(mk(90, 100_000)) {
		total := 0
		for _, r := range b {
			total += len(r.body) + batchOverhead + 3*(len(r.pk)+len(r.rk))
		}
		if total > maxBatchBytes || len(b) == 0 {
			t.Fatalf("batch of %d rows, %d bytes: over 4 MiB", len(b), total)
		}
	}
	if got := dedupe([]row{{rk: "a", body: []byte("1")}, {rk: "b"}, {rk: "a", body: []byte("2")}}); len(got) != 2 || got[1].rk != "a" || string(got[1].body) != "2" {
		t.Fatalf("dedupe must keep the last row per RowKey: %+v", got)
	}
}

func TestSubmitEnforcesAzureBatchRules(t *testing.T) {
	s := offlineStore(t)
	ctx := context.Background()
	r := func(pk, rk string) action {
		row, err := newRow("t", "pk", pk, "rk", rk, nil)
		if err != nil {
			t.Fatal(err)
		}
		return action{kind: aztables.TransactionTypeInsertReplace, row: row}
	}
	var over []action
	for i := 0; i <= maxBatchEntities; i++ {
		over = append(over, r("p", fmt.Sprint(i)))
	}
	for name, acts := range map[string][]action{
		"two partitions (Azurite accepts it, Azure does not)": {r("p", "1"), r("q", "2")},
		"over 100 actions": over,
		"one row twice":    {r("p", "1"), r("p", "1")},
	} {
		if err := submit(ctx, s.presences, acts); err == nil {
			t.Errorf("%s: submit must refuse", name)
		}
	}
	if n := s.RoundTrips(); n != 0 {
		t.Fatalf("%d requests made; the rules must be checked before sending", n)
	}
}

// A failed batch as Azurite 3.35.0 answers it (captured), and as the Azure docs show it.
const azuriteBatchFailure = "--batchresponse_f369b8d2\r\nContent-Type: multipart/mixed; boundary=changesetresponse_3b87\r\n\r\n" +
	"--changesetresponse_3b87\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
	"HTTP/1.1 409 Conflict\r\nContent-ID: 2\r\nDataServiceVersion: 3.0;\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n" +
	`{"odata.error":{"code":"EntityAlreadyExists","message":{"lang":"en-US","value":"1:The specified entity already exists.\nRequestId:38a0507b\nTime:2026-11-24T11:24:46.550Z"}}}` +
	"\r\n--changesetresponse_3b87--\r\n--batchresponse_f369b8d2--\r\n"

const azureBatchFailure = "--batchresponse_7ab1\r\nContent-Type: multipart/mixed; boundary=changesetresponse_0d5c\r\n\r\n" +
	"--changesetresponse_0d5c\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
	"HTTP/1.1 412 Precondition Failed\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nDataServiceVersion: 3.0;\r\n" +
	"Content-Type: application/json;odata=minimalmetadata;streaming=true;charset=utf-8\r\n\r\n" +
	`{"odata.error":{"code":"UpdateConditionNotSatisfied","message":{"lang":"en-US","value":"0:The update condition specified in the request was not satisfied.\nRequestId:4a5f\nTime:2026-11-24T11:24:46.5503522Z"}}}` +
	"\r\n--changesetresponse_0d5c--\r\n--batchresponse_7ab1--\r\n"

func TestBatchFailureBodyIsParsed(t *testing.T) {
	for _, tt := range []struct {
		body, code string
		status     int
		action     int
		kind       error
	}{
		{azuriteBatchFailure, "EntityAlreadyExists", 409, 1, fault.ErrConflict},
		{azureBatchFailure, "UpdateConditionNotSatisfied", 412, 0, fault.ErrPrecondition},
	} {
		st, code, msg, ok := parseBatchFailure([]byte(tt.body))
		action, msg := splitAction(msg)
		if !ok || st != tt.status || code != tt.code || action != tt.action || strings.Contains(msg, "RequestId") || msg == "" {
			t.Fatalf("parseBatchFailure = %d %q %d %q %v", st, code, action, msg, ok)
		}
	}
}

func TestTransportErrorsDropTheURL(t *testing.T) {
	err := classify(&url.Error{Op: "Get", URL: "https://acct.table.core.windows.net/Tenants?sv=1&sig=SECRETSIG", Err: context.DeadlineExceeded})
	if strings.Contains(err.Error(), "SECRETSIG") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("classify(url.Error) = %v; want the cause without the URL", err)
	}
}

func TestParkedKeys(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 10, 30, 15, 123_000_000, time.UTC)
	a, b, z := invertedTicks(t0), invertedTicks(t0.Add(time.Millisecond)), invertedTicks(time.Time{})
	if len(a) != 19 || len(z) != 19 || !(b < a) || !(a < z) {
		t.Fatalf("inverted ticks must be 19 digits, later first, zero time last: %s %s %s", b, a, z)
	}
	if idPart("m1") != "mm1" || idPart("Order-42_x.y:z@w") != "mOrder-42_x.y:z@w" {
		t.Fatalf("plain message ids are kept: %s", idPart("m1"))
	}
	for _, id := range []string{"a/b", "a'b", "a#b", strings.Repeat("x", 300), "é"} {
		p := idPart(id)
		if !strings.HasPrefix(p, "h") || len(p) != 65 || checkKey("k", parkedIndexPrefix+p) != nil || p != idPart(id) {
			t.Fatalf("idPart(%.20q) = %q; want a stable hash key", id, p)
		}
	}
}

func TestParkedBodySplitsAndFits(t *testing.T) {
	for _, n := range []int{0, 10, 32_768, 32_769, 300_000, 3_000_000} {
		body := strings.Repeat("é", n/2) + strings.Repeat("😀", n/4)
		m := parking.Message{Function: "RouteCall", MessageID: "m", Reason: strings.Repeat("r", 10_000), Body: body, ParkedAt: time.Now()}
		r, err := parkedRecord(m, idPart("m"))
		if err != nil {
			t.Fatalf("body of %d: %v", n, err)
		}
		rec, _ := decodeRecord(r.body)
		got, err := decodeParked(rec)
		if err != nil {
			t.Fatal(err)
		}
		if utf16Len(body) < 400_000 {
			if got.Body != body {
				t.Fatalf("body of %d units did not round-trip (%d units back)", utf16Len(body), utf16Len(got.Body))
			}
		} else if !strings.HasPrefix(got.Body, body[:1000]) || !strings.Contains(got.Body, "[truncated by table storage") {
			t.Fatalf("a body over 1 MiB must be cut with a marker")
		}
		if !strings.HasSuffix(got.Reason, "…") || utf16Len(got.Reason) != maxReasonUnits {
			t.Fatalf("reason kept %d units", utf16Len(got.Reason))
		}
	}
}
