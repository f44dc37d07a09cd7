package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
)

// plantedSecret is a secret as it appears in text, and the part of it that
// must never survive redaction.
type plantedSecret struct {
	kind, text, payload string
}

// plantedSecrets has one or more secrets of every kind. Payloads are
// distinctive, so that they do not occur in text by chance.
var plantedSecrets = []plantedSecret{
	{"card", "4111 1111 1111 1111", "4111 1111 1111 1111"},
	{"card", "5555555555554444", "5555555555554444"},
	{"card", "3782-822463-10005", "3782-822463-10005"},
	{"jwt", testJWT, "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"},
	{"bearer", "Authorization: Bearer Zq8xW3vN1pL6tR0y", "Zq8xW3vN1pL6tR0y"},
	{"bearer", "Basic dXNlcjpaUTh4VzN2TjE=", "dXNlcjpaUTh4VzN2TjE="},
	{"aws_key", testAWSID, testAWSID},
	{"aws_key", "aws_secret_access_key=" + testAWSSec, testAWSSec},
	{"gcp_key", testGCPKey, testGCPKey},
	{"gcp_key", "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", "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"},
	{"azure_key", "AccountKey=" + testAzure + ";", testAzure},
	{"private_key", testPEM, "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu"},
	{"email", "zq.jane-doe+x@mail.example.org", "zq.jane-doe+x@mail.example.org"},
	{"ssn", "078-05-1120", "078-05-1120"},
	{"kv", "password=Hu9nTer2xQ", "Hu9nTer2xQ"},
	{"kv", `{"api_key":"Kx7Pq2Lm9Zr4"}`, "Kx7Pq2Lm9Zr4"},
	{"kv", "client_secret: Vb5Nm8Qw2Er7", "Vb5Nm8Qw2Er7"},
	{"kv", "postgres://app:Pw4Xz8Qr2Lm@db.internal:5432/orders", "Pw4Xz8Qr2Lm"},
	{"kv", "Server=db;User Id=sa;Password=Tq3Wz9Lp5Xk;", "Tq3Wz9Lp5Xk"},
}

func pick(i uint8) plantedSecret { return plantedSecrets[int(i)%len(plantedSecrets)] }

func FuzzRedactString(f *testing.F) {
	f.Add("", "", uint8(0), false)
	f.Add("user logged in", "from 10.0.0.1", uint8(4), false)
	f.Add(`{"a":"`, `","b":2}`, uint8(15), true)
	f.Add("password=", "&x=1", uint8(13), false)
	f.Add("4111 ", " 1111", uint8(0), true)
	f.Add("-----BEGIN PRIVATE KEY-----", "", uint8(11), false)
	p := Default()
	last4, _ := New(WithCardLast4(true))
	hashed, _ := New(WithHashKey([]byte("fuzz")))
	f.Fuzz(func(t *testing.T, prefix, suffix string, which uint8, alt bool) {
		sec := pick(which)
		if strings.Contains(prefix, sec.payload) || strings.Contains(suffix, sec.payload) {
			t.Skip()
		}
		in := prefix + " " + sec.text + " " + suffix
		for _, q := range []*Policy{p, last4, hashed} {
			out := q.String(in)
			if strings.Contains(out, sec.payload) {
				t.Fatalf("%s secret survived:\n in %q\nout %q", sec.kind, in, out)
			}
		}
		if alt { // the same secret alone, and inside a JSON string
			if out := p.String(sec.text); strings.Contains(out, sec.payload) {
				t.Fatalf("%s secret survived alone: %q", sec.kind, out)
			}
			b, _ := json.Marshal(in)
			if out := p.String(string(b)); strings.Contains(out, sec.payload) {
				t.Fatalf("%s secret survived in JSON: %q", sec.kind, out)
			}
		}
	})
}

type fuzzUser struct {
	Name  string
	Note  string
	Inner *fuzzInner
	Any   any
}

type fuzzInner struct {
	Items []string
	Attrs map[string]any
}

type fuzzValuer struct{ s string }

func (v fuzzValuer) LogValue() slog.Value { return slog.GroupValue(slog.String("v", v.s)) }

// FuzzRedactRecord plants a secret at one place of a log record — message,
// attribute, group, struct, map, slice, error, LogValuer, bytes, With — and
// checks that the lines a JSON and a text handler write never hold it.
func FuzzRedactRecord(f *testing.F) {
	for place := uint8(0); place < 16; place++ {
		f.Add("some text", "more", place, place)
	}
	f.Add(`{"x":`, "]", uint8(3), uint8(11))
	f.Fuzz(func(t *testing.T, prefix, suffix string, which, place uint8) {
		sec := pick(which)
		if strings.Contains(prefix, sec.payload) || strings.Contains(suffix, sec.payload) {
			t.Skip()
		}
		text := prefix + " " + sec.text + " " + suffix
		msg := "request " + prefix
		var with []any
		var attrs []any
		filler := slog.String("filler", prefix)
		switch place % 16 {
		case 0:
			msg = text
		case 1:
			attrs = append(attrs, slog.String("note", text))
		case 2:
			attrs = append(attrs, slog.Group("req", slog.Group("body", slog.String("raw", text))))
		case 3:
			attrs = append(attrs, slog.Any("user", fuzzUser{Name: prefix, Note: text}))
		case 4:
			attrs = append(attrs, slog.Any("user", &fuzzUser{Inner: &fuzzInner{Items: []string{suffix, text}}}))
		case 5:
			attrs = append(attrs, slog.Any("m", map[string]any{"k": text, prefix: 1}))
		case 6:
			attrs = append(attrs, slog.Any("m", map[string]string{text: "v"}))
		case 7:
			attrs = append(attrs, slog.Any("err", fmt.Errorf("op: %w", errors.New(text))))
		case 8:
			attrs = append(attrs, slog.Any("v", fuzzValuer{text}))
		case 9:
			attrs = append(attrs, slog.Any("b", []byte(text)))
		case 10:
			raw, _ := json.Marshal(map[string]string{"field": text})
			attrs = append(attrs, slog.Any("raw", json.RawMessage(raw)))
		case 11:
			with = append(with, slog.String("bound", text))
		case 12:
			attrs = append(attrs, slog.Any("list", []any{1, map[string]any{"deep": []string{text}}}))
		case 13:
			attrs = append(attrs, slog.Any("u", &fuzzUser{Any: errors.New(text), Inner: &fuzzInner{Attrs: map[string]any{"x": text}}}))
		case 14:
			attrs = append(attrs, slog.String("password", sec.payload)) // by key alone
		case 15:
			attrs = append(attrs, slog.Group("credentials", slog.String("x", sec.payload)))
		}
		attrs = append(attrs, filler)
		for _, mk := range []func(*bytes.Buffer) slog.Handler{
			func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
			func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		} {
			var buf bytes.Buffer
			l := slog.New(NewHandler(mk(&buf), Default()))
			if len(with) > 0 {
				l = l.With(with...)
			}
			l.Info(msg, attrs...)
			if out := buf.String(); strings.Contains(out, sec.payload) || strings.Contains(out, jsonEscape(sec.payload)) {
				t.Fatalf("%s secret survived at place %d:\n%s", sec.kind, place%16, out)
			}
		}
	})
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// FuzzRedactArbitrary feeds arbitrary input to every entry point: nothing
// panics, clean input comes back as is, and redacting the output again changes
// nothing.
func FuzzRedactArbitrary(f *testing.F) {
	for _, s := range lookalikes {
		f.Add(s)
	}
	for _, s := range plantedSecrets {
		f.Add(s.text)
	}
	f.Add(`{"password":{"a":[1,{"b":"}"}]},"x":1}`)
	f.Add(`password="unclosed`)
	f.Add("https://u:p@h/p?token=x#frag=jane@example.com")
	p := Default()
	hashed, _ := New(WithHashKey([]byte("fuzz")), WithCardLast4(true))
	f.Fuzz(func(t *testing.T, s string) {
		for _, q := range []*Policy{p, hashed} {
			once := q.String(s)
			if twice := q.String(once); twice != once {
				t.Fatalf("not idempotent:\n   in %q\n once %q\ntwice %q", s, once, twice)
			}
			if utf8.ValidString(s) && !utf8.ValidString(once) {
				t.Fatalf("valid UTF-8 became invalid: %q -> %q", s, once)
			}
		}
		p.IsSensitiveKey(s)
		p.Attr(slog.String(s, s))
		p.Value(slog.AnyValue([]byte(s)))
		p.Value(slog.AnyValue(json.RawMessage(s)))
		p.Value(slog.AnyValue(map[string]any{s: []any{s}}))
		p.Header(s, []string{s})
		p.Header("Cookie", []string{s})
		p.Header("Set-Cookie", []string{s})
		p.Header("Authorization", []string{s})
		p.KeyValue(attribute.String(s, s))
		p.KeyValue(attribute.StringSlice("k", []string{s}))
		if u, err := url.Parse(s); err == nil {
			before := *u
			out := p.URL(u)
			if *u != before {
				t.Fatalf("URL modified its argument: %q", s)
			}
			if u2, err := url.Parse(out); err == nil {
				if again := p.URL(u2); again != out {
					t.Fatalf("URL not idempotent:\n   in %q\n once %q\ntwice %q", s, out, again)
				}
			}
		}
	})
}

// FuzzMayFind checks the early exit of String: a string mayFind calls clean
// is one the full scan finds nothing in.
func FuzzMayFind(f *testing.F) {
	for _, s := range plantedSecrets {
		f.Add(s.text)
	}
	for _, s := range []string{"eu-west-1", "u-1234", "/users/{id}", "123-45-6789", "a@b.co", "ya29.a0AfH6SMBx", "Bearer abcdefgh12"} {
		f.Add(s)
	}
	p := Default()
	f.Fuzz(func(t *testing.T, s string) {
		cls, digits := p.classify(s)
		if !mayFind(cls, digits) && p.foundAny(s, cls, digits) {
			t.Fatalf("mayFind says clean, the scan finds a secret in %q", s)
		}
		for _, x := range plantedSecrets {
			in := s + " " + x.text
			if c, d := p.classify(in); !mayFind(c, d) {
				t.Fatalf("%s secret not even looked for in %q", x.kind, in)
			}
		}
	})
}
