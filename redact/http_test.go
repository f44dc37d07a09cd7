package redact

import (
	"net/url"
	"reflect"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestHeader(t *testing.T) {
	p := Default()
	for _, c := range []struct {
		name string
		in   []string
		want []string
	}{
		{"Authorization", []string{"Bearer abc.def.ghi"}, []string{"Bearer [REDACTED]"}},
		{"authorization", []string{"Basic dXNlcjpwYXNz"}, []string{"Basic [REDACTED]"}},
		{"Authorization", []string{"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/2024, Signature=abc"}, []string{"AWS4-HMAC-SHA256 [REDACTED]"}},
		{"Authorization", []string{"rawtoken"}, []string{"[REDACTED]"}},
		{"Proxy-Authorization", []string{"Digest username=x, response=y"}, []string{"Digest [REDACTED]"}},
		{"Cookie", []string{"sid=abc; theme=dark"}, []string{"sid=[REDACTED]; theme=[REDACTED]"}},
		{"Set-Cookie", []string{"sid=abc; Path=/; HttpOnly; Secure", "x=1"}, []string{"sid=[REDACTED]; Path=/; HttpOnly; Secure", "x=[REDACTED]"}},
		{"X-Api-Key", []string{"k1", "k2"}, []string{"[REDACTED]", "[REDACTED]"}},
		{"X-Auth-Token", []string{"t"}, []string{"[REDACTED]"}},
		{"X-Amz-Security-Token", []string{"t"}, []string{"[REDACTED]"}},
		{"X-Csrf-Token", []string{"t"}, []string{"[REDACTED]"}},
		{"Ocp-Apim-Subscription-Key", []string{"t"}, []string{"[REDACTED]"}},
		{"X-Forwarded-For", []string{"10.0.0.1, 10.0.0.2"}, []string{"10.0.0.1, 10.0.0.2"}},
		{"From", []string{"jane@example.com"}, []string{"[REDACTED:email]"}},
		{"Referer", []string{"https://a.example/cb?code=x&token=y"}, []string{"https://a.example/cb?code=x&token=[REDACTED:kv]"}},
		{"Accept", []string{"application/json"}, []string{"application/json"}},
	} {
		if got := p.Header(c.name, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Header(%q, %q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
	in := []string{"application/json", "text/plain"}
	if got := p.Header("Accept", in); &got[0] != &in[0] {
		t.Error("clean header values were copied")
	}
	if n := testing.AllocsPerRun(50, func() { p.Header("Accept", in) }); n != 0 {
		t.Errorf("clean header: %v allocations", n)
	}
	dirty := []string{"ok", "jane@example.com"}
	p.Header("From", dirty)
	if dirty[1] != "jane@example.com" {
		t.Error("Header mutated its input")
	}
}

func TestURL(t *testing.T) {
	p := Default()
	for _, c := range []struct{ in, want string }{
		{"https://example.com/path?q=go&page=2", "https://example.com/path?q=go&page=2"},
		{"https://user:pw@example.com/p", "https://user:%5BREDACTED%5D@example.com/p"},
		{"https://user@example.com/p", "https://user@example.com/p"},
		{"postgres://app:s3cr3t@db:5432/orders?sslmode=disable&password=x", "postgres://app:%5BREDACTED%5D@db:5432/orders?sslmode=disable&password=[REDACTED]"},
		{"https://h/cb?code=abc&access_token=xyz&state=1", "https://h/cb?code=abc&access_token=[REDACTED]&state=1"},
		{"https://h/?api%5Fkey=abc", "https://h/?api%5Fkey=[REDACTED]"},
		{"https://h/?to=jane%40example.com&n=1", "https://h/?to=[REDACTED:email]&n=1"},
		{"https://h/?note=card+4111111111111111+x", "https://h/?note=card+[REDACTED:card]+x"},
		{"https://h/users/jane@example.com/orders", "https://h/users/[REDACTED:email]/orders"},
		{"https://h/a%20b/jane@example.com", "https://h/a%20b/[REDACTED:email]"},
		{"https://h/p#token=abc", "https://h/p#token=[REDACTED:kv]"},
		{"https://jane%40example.com:pw@h/", "https://%5BREDACTED%3Aemail%5D:%5BREDACTED%5D@h/"},
		{"https://h/?token=", "https://h/?token="},
		{"https://h/?token=[REDACTED]", "https://h/?token=[REDACTED]"},
		{"mailto:jane@example.com", "mailto:[REDACTED:email]"},
		{"https://h/?sig=abc&sv=2022", "https://h/?sig=[REDACTED]&sv=2022"},
		{"/relative?password=x", "/relative?password=[REDACTED]"},
	} {
		u, err := url.Parse(c.in)
		if err != nil {
			t.Fatal(err)
		}
		before := *u
		if got := p.URL(u); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
		if !reflect.DeepEqual(before, *u) {
			t.Errorf("URL(%q) modified its argument", c.in)
		}
		// The result parses back and redacting it again changes nothing.
		if u2, err := url.Parse(p.URL(u)); err != nil {
			t.Errorf("URL(%q) does not parse: %v", c.in, err)
		} else if again := p.URL(u2); again != p.URL(u) {
			t.Errorf("URL not idempotent: %q then %q", p.URL(u), again)
		}
	}
	if got := p.URL(nil); got != "" {
		t.Errorf("URL(nil) = %q", got)
	}
}

func TestKeyValue(t *testing.T) {
	p := Default()
	for _, c := range []struct{ in, want attribute.KeyValue }{
		{attribute.String("db.password", "x"), attribute.String("db.password", "[REDACTED]")},
		{attribute.Int("pin", 1234), attribute.String("pin", "[REDACTED]")},
		{attribute.String("http.url", "https://h/?token=abc"), attribute.String("http.url", "https://h/?token=[REDACTED:kv]")},
		{attribute.String("db.statement", "SELECT 1"), attribute.String("db.statement", "SELECT 1")},
		{attribute.StringSlice("to", []string{"a", "jane@example.com"}), attribute.StringSlice("to", []string{"a", "[REDACTED:email]"})},
		{attribute.StringSlice("ok", []string{"a", "b"}), attribute.StringSlice("ok", []string{"a", "b"})},
		{attribute.Int64("n", 4111111111111111), attribute.Int64("n", 4111111111111111)},
		{attribute.ByteSlice("b", []byte("jane@example.com")), attribute.ByteSlice("b", []byte("[REDACTED:email]"))},
		{attribute.Slice("s", attribute.StringValue("jane@example.com"), attribute.IntValue(1)), attribute.Slice("s", attribute.StringValue("[REDACTED:email]"), attribute.IntValue(1))},
		{attribute.Map("m", attribute.String("token", "t"), attribute.String("note", "4111111111111111")), attribute.Map("m", attribute.String("note", "[REDACTED:card]"), attribute.String("token", "[REDACTED]"))},
	} {
		if got := p.KeyValue(c.in); got.Value.String() != c.want.Value.String() || got.Value.Type() != c.want.Value.Type() || got.Key != c.want.Key {
			t.Errorf("KeyValue(%v) = %v, want %v", c.in.Value.String(), got.Value.String(), c.want.Value.String())
		}
	}
	kv := attribute.String("http.route", "/users/{id}")
	if n := testing.AllocsPerRun(50, func() { p.KeyValue(kv) }); n != 0 {
		t.Errorf("clean KeyValue: %v allocations", n)
	}
	kvs := []attribute.KeyValue{kv, attribute.Int("n", 1)}
	if got := p.keyValues(kvs); &got[0] != &kvs[0] {
		t.Error("clean KeyValues copied")
	}
	dirty := []attribute.KeyValue{kv, attribute.String("password", "x")}
	got := p.keyValues(dirty)
	if dirty[1].Value.AsString() != "x" || got[1].Value.AsString() != Mask {
		t.Errorf("KeyValues: %v / %v", dirty, got)
	}
}
