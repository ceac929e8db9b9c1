package servicebus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"github.com/teamscc/teamscc/shared/fault"
	"github.com/teamscc/teamscc/shared/queue"
	"github.com/teamscc/teamscc/shared/tracecontext"
)

// A made-up connection string; its key must never show in an error or a log.
const (
	testKey  = "c2VjcmV0LWtleS1tdXN0LW5ldmVyLWxlYWs9PQ=="
	testConn = "Endpoint=sb://contoso-cc.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=" + testKey
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestOptionsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Options
		wantErr string // substring; "" = no error
	}{
		{name: "system-assigned managed identity",
			env:  map[string]string{"ServiceBusConnection__fullyQualifiedNamespace": "contoso-cc.servicebus.windows.net", "ServiceBusConnection__credential": "managedidentity"},
			want: Options{FullyQualifiedNamespace: "contoso-cc.servicebus.windows.net", Credential: "managedidentity"}},
		{name: "user-assigned managed identity",
			env: map[string]string{"ServiceBusConnection__fullyQualifiedNamespace": " contoso-cc.servicebus.windows.net ",
				"ServiceBusConnection__credential": "ManagedIdentity", "ServiceBusConnection__clientId": "6f1c0a2b-0000-4000-8000-000000000001"},
			want: Options{FullyQualifiedNamespace: "contoso-cc.servicebus.windows.net", Credential: "ManagedIdentity", ClientID: "6f1c0a2b-0000-4000-8000-000000000001"}},
		{name: "namespace only: DefaultAzureCredential",
			env:  map[string]string{"ServiceBusConnection__fullyQualifiedNamespace": "sb://contoso-cc.servicebus.windows.net/"},
			want: Options{FullyQualifiedNamespace: "sb://contoso-cc.servicebus.windows.net/"}},
		{name: "connection string",
			env:  map[string]string{"ServiceBusConnection": testConn},
			want: Options{ConnectionString: testConn}},
		{name: "connection string wins over the namespace, as in the host",
			env:  map[string]string{"ServiceBusConnection": testConn, "ServiceBusConnection__fullyQualifiedNamespace": "other.servicebus.windows.net"},
			want: Options{ConnectionString: testConn, FullyQualifiedNamespace: "other.servicebus.windows.net"}},
		{name: "nothing set", env: map[string]string{}, wantErr: "ServiceBusConnection__fullyQualifiedNamespace"},
		{name: "not a connection string", env: map[string]string{"ServiceBusConnection": "SharedAccessKey=" + testKey}, wantErr: "not a Service Bus connection string"},
		{name: "namespace with a path", env: map[string]string{"ServiceBusConnection__fullyQualifiedNamespace": "contoso.servicebus.windows.net/q"}, wantErr: "not a host name"},
		{name: "clientId without managed identity",
			env:     map[string]string{"ServiceBusConnection__fullyQualifiedNamespace": "contoso-cc.servicebus.windows.net", "ServiceBusConnection__clientId": "x"},
			wantErr: "__credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OptionsFromEnv(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want …%s…", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), testKey) {
					t.Fatalf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestOptionsStringMasksTheSecret(t *testing.T) {
	for _, o := range []Options{
		{ConnectionString: testConn},
		{FullyQualifiedNamespace: "sb://contoso-cc.servicebus.windows.net/", Credential: "managedidentity", ClientID: "cid"},
		{FullyQualifiedNamespace: "contoso-cc.servicebus.windows.net"},
	} {
		s := o.String()
		if strings.Contains(s, testKey) || strings.Contains(s, "SharedAccessKey=") {
			t.Errorf("String() shows the secret: %s", s)
		}
		if !strings.Contains(s, "contoso-cc.servicebus.windows.net") {
			t.Errorf("String() hides the namespace: %s", s)
		}
		if fmt.Sprintf("%v", o) != s {
			t.Errorf("%%v does not use String: %v", o)
		}
	}
}

func TestRetryOptionsAreNeverTheSDKZeroValue(t *testing.T) {
	tests := []struct {
		in   Options
		want azservicebus.RetryOptions
	}{
		{Options{}, azservicebus.RetryOptions{MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay, MaxRetryDelay: DefaultMaxRetryDelay}},
		{Options{MaxRetries: -1}, azservicebus.RetryOptions{MaxRetries: -1, RetryDelay: DefaultRetryDelay, MaxRetryDelay: DefaultMaxRetryDelay}},
		{Options{MaxRetries: -7}, azservicebus.RetryOptions{MaxRetries: -1, RetryDelay: DefaultRetryDelay, MaxRetryDelay: DefaultMaxRetryDelay}},
		{Options{MaxRetries: 5, RetryDelay: time.Second, MaxRetryDelay: time.Minute}, azservicebus.RetryOptions{MaxRetries: 5, RetryDelay: time.Second, MaxRetryDelay: time.Minute}},
	}
	for _, tt := range tests {
		if got := retryOptions(tt.in); got != tt.want {
			t.Errorf("retryOptions(%+v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestToMessage(t *testing.T) {
	body := []byte(`{"serviceId":"s1"}`)
	got := toMessage(context.Background(), queue.Message{ID: "kick-s1-42", SessionID: "s1", ContentType: "application/json", Body: body,
		Properties: map[string]string{"kind": "kick", "tenant": "t1"}})
	if *got.MessageID != "kick-s1-42" || *got.SessionID != "s1" || *got.ContentType != "application/json" || string(got.Body) != string(body) {
		t.Errorf("mapped %+v", got)
	}
	if got.ApplicationProperties["kind"] != "kick" || got.ApplicationProperties["tenant"] != "t1" {
		t.Errorf("ApplicationProperties %v", got.ApplicationProperties)
	}
	// Fields the domain does not set stay unset, so the queue's defaults apply.
	if got.TimeToLive != nil || got.ScheduledEnqueueTime != nil || got.PartitionKey != nil || got.Subject != nil || got.CorrelationID != nil {
		t.Errorf("unexpected fields set: %+v", got)
	}

	// Empty values are left unset; a missing ID is made up, differently each time.
	a, b := toMessage(context.Background(), queue.Message{Body: []byte("x")}), toMessage(context.Background(), queue.Message{Body: []byte("x")})
	if a.SessionID != nil || a.ContentType != nil {
		t.Errorf("empty fields mapped: %+v", a)
	}
	if !uuidRE.MatchString(*a.MessageID) || *a.MessageID == *b.MessageID {
		t.Errorf("generated ids %q, %q", *a.MessageID, *b.MessageID)
	}
}

// A message sent under an invocation's context carries its trace as Service Bus and
// Application Insights expect it: Diagnostic-Id and traceparent (a new span of the same
// trace, one per message) and tracestate. Without a trace in the context the message
// starts one, so its receiver and redeliveries still share a trace.
func TestMessagesCarryTheTraceOfTheirContext(t *testing.T) {
	const trace = "0af7651916cd43dd8448eb211c80319c"
	inv, _ := tracecontext.Parse("00-"+trace+"-b7ad6b7169203331-01", "congo=t61rcWkgMzE")
	ctx := tracecontext.NewContext(context.Background(), inv)
	tpRE := regexp.MustCompile(`^00-` + trace + `-[0-9a-f]{16}-01$`)

	spans := map[string]bool{inv.SpanIDString(): true}
	for _, m := range []queue.Message{
		{ID: "kick-1", Body: []byte("{}"), Properties: map[string]string{"kind": "kick"}},
		{ID: "kick-2", Body: []byte("{}")},
	} {
		props := toMessage(ctx, m).ApplicationProperties
		d, _ := props["Diagnostic-Id"].(string)
		if !tpRE.MatchString(d) || props["traceparent"] != d || props["tracestate"] != "congo=t61rcWkgMzE" {
			t.Fatalf("%s: ApplicationProperties %v; want Diagnostic-Id = traceparent in trace %s, and the tracestate", m.ID, props, trace)
		}
		if span := d[36:52]; spans[span] {
			t.Errorf("%s: span %s reused", m.ID, span)
		} else {
			spans[span] = true
		}
		if m.Properties != nil && (props["kind"] != "kick" || len(m.Properties) != 1) {
			t.Errorf("the message's own properties: %v (sent %v)", props, m.Properties)
		}
	}

	own := toMessage(ctx, queue.Message{Body: []byte("{}"), Properties: map[string]string{"Diagnostic-Id": "00-" + strings.Repeat("1", 32) + "-b7ad6b7169203331-00"}})
	if own.ApplicationProperties["Diagnostic-Id"] != "00-"+strings.Repeat("1", 32)+"-b7ad6b7169203331-00" || own.ApplicationProperties["traceparent"] != nil {
		t.Errorf("a message's own Diagnostic-Id was replaced: %v", own.ApplicationProperties)
	}

	bare := toMessage(context.Background(), queue.Message{Body: []byte("{}")}).ApplicationProperties
	c, ok := tracecontext.FromProperties(bare)
	if !ok || c.TraceIDString() == trace || bare["traceparent"] != bare["Diagnostic-Id"] || bare["tracestate"] != nil {
		t.Errorf("without a trace: %v; want a new trace", bare)
	}
}

func authFailed(status int) error {
	req := httptest.NewRequest(http.MethodPost, "https://login.microsoftonline.com/t/oauth2/v2.0/token", nil)
	return &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: status, Request: req,
		Body: io.NopCloser(strings.NewReader(`{"error":"invalid_client"}`))}}
}

func TestTranslate(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		permanent bool
		is        error // errors.Is target, nil = none
		code      string
	}{
		{"queue missing (link attach)", &amqp.Error{Condition: amqp.ErrCondNotFound, Description: "The messaging entity 'sb://contoso-cc.servicebus.windows.net/calls' could not be found."}, true, fault.ErrNotFound, "amqp:not-found"},
		{"not found (SDK code)", &azservicebus.Error{Code: azservicebus.CodeNotFound}, true, fault.ErrNotFound, "notfound"},
		{"unauthorized (SDK code)", &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}, true, ErrUnauthorized, "unauthorized"},
		{"unauthorized (AMQP)", &amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess}, true, ErrUnauthorized, "amqp:unauthorized-access"},
		{"Entra refused the credential", fmt.Errorf("get token: %w", authFailed(401)), true, ErrUnauthorized, "authenticationFailed"},
		{"Entra down", authFailed(503), false, nil, "authenticationFailed"},
		{"Entra throttling", authFailed(429), false, nil, "authenticationFailed"},
		{"message too large", azservicebus.ErrMessageTooLarge, true, ErrMessageTooLarge, ""},
		{"message too large (AMQP)", &amqp.Error{Condition: amqp.ErrCondMessageSizeExceeded}, true, ErrMessageTooLarge, "amqp:link:message-size-exceeded"},
		{"connection lost", &azservicebus.Error{Code: azservicebus.CodeConnectionLost}, false, nil, "connlost"},
		{"timeout", &azservicebus.Error{Code: azservicebus.CodeTimeout}, false, nil, "timeout"},
		{"closed", &azservicebus.Error{Code: azservicebus.CodeClosed}, false, ErrClosed, "closed"},
		{"throttled (AMQP)", &amqp.Error{Condition: "com.microsoft:server-busy"}, false, nil, "com.microsoft:server-busy"},
		{"deadline", fmt.Errorf("send: %w", context.DeadlineExceeded), false, context.DeadlineExceeded, ""},
		{"cancelled", context.Canceled, false, context.Canceled, ""},
		{"unknown", errors.New("boom"), false, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := translate("send", "calls", tt.err)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			if fault.IsPermanent(err) != tt.permanent {
				t.Errorf("permanent = %v, want %v (%v)", fault.IsPermanent(err), tt.permanent, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v is not %v", err, tt.is)
			}
			if e.Code != tt.code || e.Op != "send" || e.Queue != "calls" {
				t.Errorf("Error %+v, want code %q", e, tt.code)
			}
			// The SDK error itself is not reachable: it may hold secrets.
			if tt.is == nil && errors.Unwrap(e) != nil {
				t.Errorf("unwraps to %v", errors.Unwrap(e))
			}
		})
	}
	if translate("send", "q", nil) != nil {
		t.Error("nil error translated to non-nil")
	}
}

func TestErrorTextsHoldNoSecret(t *testing.T) {
	secrets := connectionSecrets(testConn)
	for _, raw := range []error{
		errors.New("dial failed for " + testConn),
		errors.New("bad key " + testKey),
		errors.New("token SharedAccessSignature sr=contoso&sig=c2lnbmF0dXJl%3D&se=1&skn=Root failed"),
		&amqp.Error{Condition: amqp.ErrCondUnauthorizedAccess, Description: "SharedAccessKey=" + testKey + " rejected"},
		errors.New(strings.Repeat("x", 1000)),
	} {
		msg := translate("send", "calls", raw, secrets...).Error()
		for _, leak := range []string{testKey, "c2lnbmF0dXJl", "SharedAccessKeyName=RootManage"} {
			if strings.Contains(msg, leak) {
				t.Errorf("%q leaks %q", msg, leak)
			}
		}
		if len(msg) > maxErrorText+60 {
			t.Errorf("error text not bounded: %d bytes", len(msg))
		}
	}
}

func TestCancelTreatsAMessageTheBrokerNoLongerHoldsAsDone(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&azservicebus.Error{Code: azservicebus.CodeNotFound}, true}, // the cancel RPC answered 404
		{&amqp.Error{Condition: messageNotFound}, true},
		{&amqp.Error{Condition: amqp.ErrCondNotFound}, false}, // the queue itself is missing
		{&azservicebus.Error{Code: azservicebus.CodeConnectionLost}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := isMessageNotFound(tt.err); got != tt.want {
			t.Errorf("isMessageNotFound(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// offline returns a Sender built from a made-up connection string: the SDK connects
// lazily, so everything up to the first network call can be tested without a broker.
func offline(t *testing.T) *Sender {
	t.Helper()
	s, err := New(t.Context(), Options{ConnectionString: testConn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestEmptyBatchIsNeverSent(t *testing.T) {
	// No client at all: an empty batch must not reach the SDK (it panics on one).
	s := &Sender{senders: map[string]*azservicebus.Sender{}}
	for _, ms := range [][]queue.Message{nil, {}} {
		if err := s.SendBatch(t.Context(), "calls", ms); err != nil {
			t.Errorf("SendBatch(%v) = %v, want nil", ms, err)
		}
	}
	if len(s.senders) != 0 {
		t.Error("an empty batch created a sender")
	}
}

func TestEmptyQueueNameIsPermanent(t *testing.T) {
	s := offline(t)
	m := queue.Message{ID: "1", Body: []byte("x")}
	errs := []error{
		s.Send(t.Context(), "", m),
		s.SendBatch(t.Context(), " ", []queue.Message{m}),
		func() error { _, err := s.Schedule(t.Context(), "", m, time.Now()); return err }(),
		s.Cancel(t.Context(), "", 1),
	}
	for i, err := range errs {
		var fe *fault.FieldError
		if !fault.IsPermanent(err) || !errors.As(err, &fe) || fe.Field != "queueName" {
			t.Errorf("call %d: %v, want a permanent queueName error", i, err)
		}
	}
}

func TestSendersAreCachedPerQueueAndSafeConcurrently(t *testing.T) {
	s := offline(t)
	var wg sync.WaitGroup
	got := make([]any, 32)
	for i := range got {
		wg.Go(func() {
			name := []string{"calls", "Calls", "outbound"}[i%3]
			snd, err := s.sender("send", name)
			if err != nil {
				t.Error(err)
			}
			got[i] = snd
		})
	}
	wg.Wait()
	if got[0] != got[1] || got[0] == got[2] || got[0] != got[3] || got[2] != got[5] {
		t.Error("senders not cached per queue name (case-insensitively)")
	}
	if n := len(s.senders); n != 2 {
		t.Errorf("%d senders cached, want 2", n)
	}
}

func TestClosedSenderRefusesWork(t *testing.T) {
	s := offline(t)
	if _, err := s.sender("send", "calls"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	err := s.Send(t.Context(), "calls", queue.Message{Body: []byte("x")})
	if !errors.Is(err, ErrClosed) || fault.IsPermanent(err) {
		t.Errorf("Send after Close = %v, want transient ErrClosed", err)
	}
}

func TestCancelledContextIsReturnedBeforeAnyNetwork(t *testing.T) {
	s := offline(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Send(ctx, "calls", queue.Message{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v", err)
	}
	if _, err := s.Schedule(ctx, "calls", queue.Message{}, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("Schedule = %v", err)
	}
	if err := s.Cancel(ctx, "calls", 7); !errors.Is(err, context.Canceled) {
		t.Errorf("Cancel = %v", err)
	}
}

func TestNewBuildsEveryCredentialWithoutNetwork(t *testing.T) {
	for _, o := range []Options{
		{FullyQualifiedNamespace: "contoso-cc.servicebus.windows.net", Credential: "managedidentity"},
		{FullyQualifiedNamespace: "contoso-cc.servicebus.windows.net", Credential: "managedidentity", ClientID: "6f1c0a2b-0000-4000-8000-000000000001"},
		{FullyQualifiedNamespace: "sb://contoso-cc.servicebus.windows.net/"},
		{ConnectionString: testConn},
	} {
		s, err := New(t.Context(), o)
		if err != nil {
			t.Errorf("New(%v): %v", o, err)
			continue
		}
		if err := s.Close(t.Context()); err != nil {
			t.Errorf("Close(%v): %v", o, err)
		}
	}
	if _, err := New(t.Context(), Options{}); err == nil {
		t.Error("New accepted empty options")
	}
}
