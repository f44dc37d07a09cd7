package redact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// render logs attrs through NewHandler and a JSON handler and returns the line.
func render(t testing.TB, p *Policy, msg string, as ...slog.Attr) string {
	t.Helper()
	var buf bytes.Buffer
	l := slog.New(NewHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}), p))
	l.LogAttrs(context.Background(), slog.LevelInfo, msg, as...)
	return strings.TrimSpace(buf.String())
}

func TestAttr(t *testing.T) {
	p := Default()
	for _, c := range []struct {
		name string
		in   slog.Attr
		want string // JSON of the attribute
	}{
		{"sensitive string", slog.String("password", "hunter2"), `"password":"[REDACTED]"`},
		{"sensitive int", slog.Int("pin", 1234), `"pin":"[REDACTED]"`},
		{"sensitive group", slog.Group("credentials", slog.String("user", "bob"), slog.String("x", "y")), `"credentials":"[REDACTED]"`},
		{"sensitive segment", slog.String("X-Api-Key", "abc"), `"X-Api-Key":"[REDACTED]"`},
		{"detected", slog.String("note", "mail jane@example.com"), `"note":"mail [REDACTED:email]"`},
		{"clean", slog.String("user", "bob"), `"user":"bob"`},
		{"int", slog.Int("status", 200), `"status":200`},
		{"group", slog.Group("req", slog.String("auth", "Bearer x"), slog.String("q", "password=1"), slog.Int("n", 1)),
			`"req":{"auth":"[REDACTED]","q":"password=[REDACTED:kv]","n":1}`},
		{"nested group", slog.Group("a", slog.Group("b", slog.Group("c", slog.String("email", "jane@example.com")))),
			`"a":{"b":{"c":{"email":"[REDACTED:email]"}}}`},
		{"error", slog.Any("err", errors.New("login failed for jane@example.com")), `"err":"login failed for [REDACTED:email]"`},
		{"wrapped error", slog.Any("err", fmt.Errorf("db: %w", errors.New("dial postgres://u:pw@h/db"))), `"err":"db: dial postgres://u:[REDACTED:kv]@h/db"`},
		{"clean error", slog.Any("err", errors.New("not found")), `"err":"not found"`},
		{"bytes", slog.Any("body", []byte(`{"password":"x"}`)), `"body":"{\"password\":\"[REDACTED:kv]\"}"`},
		{"raw json", slog.Any("body", json.RawMessage(`{"password":"x","n":1}`)), `"body":{"password":"[REDACTED:kv]","n":1}`},
		{"raw json number", slog.Any("body", json.RawMessage(`{"pin":1234}`)), `"body":{"pin":"[REDACTED:kv]"}`},
		{"url", slog.Any("url", mustURL("https://u:pw@h.example.com/p?token=abc&q=1")), `"url":"https://u:%5BREDACTED%5D@h.example.com/p?token=[REDACTED]&q=1"`},
		{"url value", slog.Any("url", *mustURL("https://h/?api_key=abc")), `"url":"https://h/?api_key=[REDACTED]"`},
		{"strings", slog.Any("to", []string{"a@example.com", "ok"}), `"to":["[REDACTED:email]","ok"]`},
		{"map", slog.Any("m", map[string]any{"password": "x", "note": "4111111111111111", "n": 1}), `"m":{"n":1,"note":"[REDACTED:card]","password":"[REDACTED]"}`},
		{"map string", slog.Any("h", map[string]string{"Authorization": "Bearer abc", "Accept": "json"}), `"h":{"Accept":"json","Authorization":"[REDACTED]"}`},
		{"map int keys", slog.Any("m", map[int]string{2: "a@example.com", 1: "x"}), `"m":{"1":"x","2":"[REDACTED:email]"}`},
		{"map email key", slog.Any("m", map[string]int{"jane@example.com": 1}), `"m":{"[REDACTED:email]":1}`},
		{"clean map", slog.Any("m", map[string]int{"a": 1}), `"m":{"a":1}`},
		{"array", slog.Any("a", [2]string{"x", "jane@example.com"}), `"a":["x","[REDACTED:email]"]`},
		{"any slice", slog.Any("a", []any{1, "jane@example.com", map[string]string{"token": "t"}}), `"a":[1,"[REDACTED:email]",{"token":"[REDACTED]"}]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, p, "m", c.in)
			want := `{"level":"INFO","msg":"m",` + c.want + `}`
			if got != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

type address struct {
	Street string
	Zip    string
}

type customer struct {
	ID        int               `json:"id"`
	Name      string            `json:"name"`
	Email     string            `json:"email"`
	Password  string            `json:"password"`
	APIKey    string            `json:"-"`
	Card      string            `json:"card" redact:"true"`
	Token     string            `json:"token" redact:"false"` // opted out of the name rule
	Note      string            `json:"note,omitempty"`
	Home      *address          `json:"home,omitempty"`
	Tags      []string          `json:"tags"`
	Meta      map[string]string `json:"meta,omitempty"`
	Created   time.Time         `json:"created"`
	IP        netip.Addr        `json:"ip"`
	secretPin string
}

type embedded struct {
	address
	Meta
	Secret string
}

type Meta struct {
	Owner string
	Trace string
}

func TestStruct(t *testing.T) {
	p := Default()
	created := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	c := customer{
		ID: 7, Name: "Jane", Email: "jane@example.com", Password: "hunter2", APIKey: "k",
		Card: "4242", Token: "not-a-secret", Home: &address{Street: "1 Main St", Zip: "12345"},
		Tags: []string{"vip", "ssn 123-45-6789"}, Created: created, IP: netip.MustParseAddr("10.0.0.1"),
		secretPin: "0000",
	}
	got := render(t, p, "m", slog.Any("c", c))
	want := `{"level":"INFO","msg":"m","c":{"id":7,"name":"Jane","email":"[REDACTED:email]","password":"[REDACTED]","card":"[REDACTED]","token":"not-a-secret","home":{"Street":"1 Main St","Zip":"12345"},"tags":["vip","ssn [REDACTED:ssn]"],"created":"2024-01-15T10:30:00Z","ip":"10.0.0.1"}}`
	if got != want {
		t.Errorf("struct:\n got %s\nwant %s", got, want)
	}
	// Pointers are followed.
	if got2 := render(t, p, "m", slog.Any("c", &c)); got2 != want {
		t.Errorf("pointer to struct:\n got %s\nwant %s", got2, want)
	}
	// Embedded structs are promoted, as encoding/json does.
	e := embedded{address: address{Street: "x"}, Meta: Meta{Owner: "jane@example.com", Trace: "t"}, Secret: "s"}
	if got, want := render(t, p, "m", slog.Any("e", e)), `{"level":"INFO","msg":"m","e":{"Owner":"[REDACTED:email]","Trace":"t","Secret":"[REDACTED]"}}`; got != want {
		t.Errorf("embedded:\n got %s\nwant %s", got, want)
	}
}

func TestStructClean(t *testing.T) {
	p := Default()
	type point struct{ X, Y int }
	type labelled struct {
		Name  string
		Point point
		Tags  []string
		When  time.Time
	}
	v := labelled{Name: "a", Point: point{1, 2}, Tags: []string{"x"}, When: time.Unix(0, 0)}
	a := slog.Any("v", v)
	if got := p.Attr(a); !reflect.DeepEqual(got.Value.Any(), v) {
		t.Errorf("clean struct changed: %v", got)
	}
	u := slog.Any("url", mustURL("https://h/p?q=1"))
	if got := p.Attr(u); !got.Equal(u) {
		t.Errorf("clean URL changed: %v", got)
	}
	if n := testing.AllocsPerRun(50, func() { p.Attr(a) }); n != 0 {
		t.Errorf("clean struct: %v allocations", n)
	}
	ptr := slog.Any("p", &point{1, 2})
	if n := testing.AllocsPerRun(50, func() { p.Attr(ptr) }); n != 0 {
		t.Errorf("clean struct pointer: %v allocations", n)
	}
}

func TestUnexportedSecrets(t *testing.T) {
	p := Default()
	type creds struct {
		User     string
		password string
	}
	type note struct {
		Title string
		body  string
	}
	// A sensitive unexported field forces a rebuild, which leaves it out.
	got := render(t, p, "m", slog.Any("c", creds{User: "bob", password: "hunter2"}))
	if strings.Contains(got, "hunter2") || !strings.Contains(got, `"c":{"User":"bob"}`) {
		t.Errorf("got %s", got)
	}
	// So does a secret in an unexported field: a text handler would print it.
	v := slog.Any("n", note{Title: "t", body: "jane@example.com"})
	if r := p.Attr(v); r.Value.Kind() != slog.KindGroup {
		t.Errorf("unexported secret not caught: %v", r)
	}
	var buf bytes.Buffer
	slog.New(NewHandler(slog.NewTextHandler(&buf, nil), p)).Info("m", "n", note{Title: "t", body: "jane@example.com"})
	if strings.Contains(buf.String(), "jane") {
		t.Errorf("text handler leaked: %s", buf.String())
	}
}

type secretToken string

func (secretToken) LogValue() slog.Value { return slog.StringValue("tok-***") }

type userLV struct{ name, email string }

func (u userLV) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", u.name), slog.String("email", u.email), slog.String("password", "p"))
}

type panicky struct{ msg string }

func (p panicky) LogValue() slog.Value { panic(p.msg) }

type loop struct{ n int }

func (l loop) LogValue() slog.Value { return slog.AnyValue(loop{l.n + 1}) }

type selfGroup struct{}

func (s selfGroup) LogValue() slog.Value { return slog.GroupValue(slog.Any("again", s)) }

func TestLogValuer(t *testing.T) {
	p := Default()
	for _, c := range []struct {
		name string
		in   slog.Attr
		want string
	}{
		{"group", slog.Any("u", userLV{"jane", "jane@example.com"}), `"u":{"name":"jane","email":"[REDACTED:email]","password":"[REDACTED]"}`},
		{"panic", slog.Any("x", panicky{"bad jane@example.com"}), `"x":"[LogValuer panic: bad [REDACTED:email]]"`},
		{"loop", slog.Any("x", loop{}), `"x":"[TRUNCATED]"`},
		{"nested in struct", slog.Any("s", struct{ T secretToken }{"abc"}), `"s":{"T":"tok-***"}`},
		{"in slice", slog.Any("s", []secretToken{"abc"}), `"s":["tok-***"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := render(t, p, "m", c.in)
			want := `{"level":"INFO","msg":"m",` + c.want + `}`
			if got != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
		})
	}
	// A LogValuer that returns a group holding itself ends in TRUNCATED.
	got := p.Attr(slog.Any("x", selfGroup{}))
	if s := got.String(); !strings.Contains(s, truncated) {
		t.Errorf("self group: %s", s)
	}
}

type jsonErr struct{ Secret string }

func (e jsonErr) Error() string                { return "failed" }
func (e jsonErr) MarshalJSON() ([]byte, error) { return json.Marshal(map[string]string{"s": e.Secret}) }

type nilErr struct{ msg string }

func (e *nilErr) Error() string { return e.msg }

func TestErrors(t *testing.T) {
	p := Default()
	// An error that marshals itself is replaced by its text.
	if got := render(t, p, "m", slog.Any("err", jsonErr{"hunter2"})); got != `{"level":"INFO","msg":"m","err":"failed"}` {
		t.Errorf("json error: %s", got)
	}
	// A typed nil error does not crash the policy.
	var e *nilErr
	got := render(t, p, "m", slog.Any("err", error(e)))
	if !json.Valid([]byte(got)) {
		t.Errorf("nil error: %s", got)
	}
	if s := p.String(errorText(e)); !strings.HasPrefix(s, "[Error panic: ") {
		t.Errorf("errorText(nil) = %q", s)
	}
	// Errors inside structs become their text.
	type result struct {
		Err error
		N   int
	}
	got = render(t, p, "m", slog.Any("r", result{Err: errors.New("bad jane@example.com"), N: 1}))
	if got != `{"level":"INFO","msg":"m","r":{"Err":"bad [REDACTED:email]","N":1}}` {
		t.Errorf("error in struct: %s", got)
	}
}

type node struct {
	Name string
	Next *node
}

func TestDepthAndSize(t *testing.T) {
	p := Default()
	// A cycle is cut at the depth limit, not followed forever.
	n := &node{Name: "a@example.com"}
	n.Next = n
	got := p.Attr(slog.Any("n", n))
	if !strings.Contains(fmt.Sprint(got.Value), truncated) {
		t.Errorf("cycle: %v", got.Value)
	}
	// Deep groups.
	a := slog.String("email", "jane@example.com")
	for i := 0; i < 100; i++ {
		a = slog.Group("g", a)
	}
	if s := p.Attr(a).String(); strings.Contains(s, "jane") {
		t.Error("deep group leaked")
	}
	// Huge values are truncated rather than passed unchecked.
	big := make([]string, maxNodes+10)
	for i := range big {
		big[i] = "x"
	}
	big[len(big)-1] = "jane@example.com"
	out := p.Attr(slog.Any("big", big))
	b, _ := json.Marshal(out.Value.Any())
	if strings.Contains(string(b), "jane") || !strings.Contains(string(b), truncated) {
		t.Errorf("big slice: leaked or not truncated")
	}
	// A DAG with exponential paths terminates.
	type dag struct {
		L, R *dag
		S    string
	}
	d := &dag{S: "x"}
	for i := 0; i < 60; i++ {
		d = &dag{L: d, R: d, S: "x"}
	}
	done := make(chan struct{})
	go func() { p.Attr(slog.Any("d", d)); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("DAG walk did not terminate")
	}
}

func TestAttrsNoMutation(t *testing.T) {
	p := Default()
	as := []slog.Attr{slog.String("a", "1"), slog.String("password", "x"), slog.String("b", "jane@example.com")}
	orig := append([]slog.Attr(nil), as...)
	out := p.Attrs(as)
	for i := range as {
		if !as[i].Equal(orig[i]) {
			t.Errorf("Attrs mutated the input at %d: %v", i, as[i])
		}
	}
	if out[1].Value.String() != Mask || out[2].Value.String() != "[REDACTED:email]" || out[0].Value.String() != "1" {
		t.Errorf("Attrs = %v", out)
	}
	clean := []slog.Attr{slog.String("a", "1"), slog.Int("n", 2)}
	if got := p.Attrs(clean); &got[0] != &clean[0] {
		t.Error("clean Attrs should return the input slice")
	}
}

func TestCleanRecordNoAlloc(t *testing.T) {
	p := Default()
	as := cleanRecord()
	if n := testing.AllocsPerRun(100, func() { p.Attrs(as) }); n != 0 {
		t.Errorf("clean record: %v allocations", n)
	}
	if got := p.Attrs(as); &got[0] != &as[0] {
		t.Error("clean record was copied")
	}
	h := NewHandler(discardHandler{}, p)
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "request completed", 0)
	r.AddAttrs(as...)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { _ = h.Handle(ctx, r) }); n != 0 {
		t.Errorf("handler, clean record: %v allocations", n)
	}
	r.AddAttrs(cleanRecord()...) // twenty attributes
	if n := testing.AllocsPerRun(100, func() { _ = h.Handle(ctx, r) }); n != 0 {
		t.Errorf("handler, clean record of 20: %v allocations", n)
	}
	// Checking does not count: only what is redacted is.
	q, _ := New()
	hq := NewHandler(discardHandler{}, q)
	_ = hq.Handle(ctx, r)
	dirty := slog.NewRecord(time.Now(), slog.LevelInfo, "to jane@example.com", 0)
	dirty.AddAttrs(slog.String("password", "x"), slog.String("note", "a@example.com"))
	_ = hq.Handle(ctx, dirty)
	if c := q.Counts(); c["email"] != 2 || c["key"] != 1 {
		t.Errorf("counts after one dirty record: %v", c)
	}
}

func TestConcurrent(t *testing.T) {
	p, _ := New(WithKeys("tenant"))
	type t1 struct{ Email, Password string }
	type t2 struct {
		A []t1
		M map[string]t1
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				v := t2{A: []t1{{"a@example.com", "x"}}, M: map[string]t1{"k": {"b@example.com", "y"}}}
				out := p.Attr(slog.Any("v", v))
				if s := out.String(); strings.Contains(s, "example.com") || strings.Contains(s, "x}") {
					t.Errorf("leak: %s", s)
					return
				}
				p.String("jane@example.com")
				p.Counts()
			}
		}()
	}
	wg.Wait()
	if c := p.Counts(); c["email"] != 8*200*3 || c["key"] != 8*200*2 {
		t.Errorf("counts = %v", c)
	}
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

func TestHashKeys(t *testing.T) {
	p, _ := New(WithHashKey([]byte("k")))
	a := p.Attr(slog.String("password", "hunter2")).Value.String()
	b := p.Attr(slog.String("db_password", "hunter2")).Value.String()
	if a != b || !strings.HasPrefix(a, "[HASH:") || len(a) != len("[HASH:1a2b3c4d5e6f]") {
		t.Errorf("hashes: %q %q", a, b)
	}
	if g := p.Attr(slog.Group("creds", slog.String("u", "x"))).Value.String(); g != Mask {
		t.Errorf("group under a sensitive key in hash mode: %q", g)
	}
	if n := p.Attr(slog.Int("pin", 1234)).Value.String(); !strings.HasPrefix(n, "[HASH:") {
		t.Errorf("int under a sensitive key in hash mode: %q", n)
	}
}

func TestValueKinds(t *testing.T) {
	p := Default()
	for _, v := range []slog.Value{
		slog.Int64Value(4111111111111111), // numbers are never inspected
		slog.Float64Value(1.5), slog.BoolValue(true), slog.DurationValue(time.Second),
		slog.TimeValue(time.Unix(0, 0)), slog.Uint64Value(7), slog.AnyValue(nil),
		slog.AnyValue(struct{}{}), slog.AnyValue(make(chan int)), slog.AnyValue(func() {}),
		slog.AnyValue([]byte("clean")), slog.AnyValue(json.RawMessage(`{"a":1}`)),
		slog.AnyValue((*url.URL)(nil)), slog.AnyValue((*node)(nil)), slog.AnyValue(map[string]int(nil)),
	} {
		got := p.Value(v)
		if v.Kind() != slog.KindAny {
			if !got.Equal(v) {
				t.Errorf("Value(%v) = %v", v, got)
			}
			continue
		}
		if got.Kind() != slog.KindAny || reflect.TypeOf(got.Any()) != reflect.TypeOf(v.Any()) {
			t.Errorf("Value(%#v) = %#v", v.Any(), got.Any())
		}
	}
}

func TestHandler(t *testing.T) {
	p := Default()
	var buf bytes.Buffer
	l := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil), p))
	l = l.With("password", "hunter2", "user", "jane@example.com").WithGroup("credentials")
	l.Info("login by jane@example.com", "user", "bob", "n", 1)
	out := buf.String()
	for _, leak := range []string{"hunter2", "jane@example.com", "bob"} {
		if strings.Contains(out, leak) {
			t.Errorf("leaked %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, `"msg":"login by [REDACTED:email]"`) || !strings.Contains(out, `"credentials":{"user":"[REDACTED]","n":"[REDACTED]"}`) {
		t.Errorf("unexpected output: %s", out)
	}
	if !l.Enabled(context.Background(), slog.LevelInfo) || l.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled not passed through")
	}
}

func TestReplaceAttr(t *testing.T) {
	p := Default()
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: p.ReplaceAttr, AddSource: true}))
	l.Info("mail jane@example.com", "password", "x", slog.Group("auth", slog.String("user", "bob")),
		slog.Group("req", slog.String("q", "token=abc")), "card", "4111111111111111")
	out := buf.String()
	for _, leak := range []string{"jane@", `"x"`, "bob", "abc", "4111"} {
		if strings.Contains(out, leak) {
			t.Errorf("leaked %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, `"source":{`) || !strings.Contains(out, `"level":"INFO"`) {
		t.Errorf("built-in attributes damaged: %s", out)
	}
}
