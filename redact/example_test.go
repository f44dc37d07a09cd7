package redact_test

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/observekit/observe/redact"
	"go.opentelemetry.io/otel/attribute"
)

func ExamplePolicy_String() {
	p := redact.Default()
	fmt.Println(p.String("login by jane@example.com with card 4111 1111 1111 1111"))
	fmt.Println(p.String("GET /cb?code=x&access_token=abc123&state=1"))
	fmt.Println(p.String("dial postgres://app:s3cr3t@db:5432/orders"))
	fmt.Println(p.String("trace 4bf92f3577b34da6a3ce929d0e0e4736 took 12ms"))
	// Output:
	// login by [REDACTED:email] with card [REDACTED:card]
	// GET /cb?code=x&access_token=[REDACTED:kv]&state=1
	// dial postgres://app:[REDACTED:kv]@db:5432/orders
	// trace 4bf92f3577b34da6a3ce929d0e0e4736 took 12ms
}

func ExamplePolicy_IsSensitiveKey() {
	p := redact.Default()
	for _, k := range []string{"password", "db.password", "X-Api-Key", "userPassword", "author", "tokens_used", "token_count"} {
		fmt.Println(k, p.IsSensitiveKey(k))
	}
	// Output:
	// password true
	// db.password true
	// X-Api-Key true
	// userPassword true
	// author false
	// tokens_used false
	// token_count false
}

func ExampleNewHandler() {
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // keep the example's output stable
			}
			return a
		},
	})
	type user struct {
		Name     string `json:"name"`
		Email    string `json:"email"`
		Password string `json:"password"`
		Card     string `json:"card" redact:"true"`
	}
	logger := slog.New(redact.NewHandler(h, redact.Default()))
	logger = logger.With("api_key", "k-123") // redacted once, here
	logger.Info("signup from jane@example.com",
		"user", user{Name: "Jane", Email: "jane@example.com", Password: "hunter2", Card: "4242"},
		slog.Group("req", slog.String("authorization", "Bearer abc"), slog.Int("status", 201)))
	// Output:
	// {"level":"INFO","msg":"signup from [REDACTED:email]","api_key":"[REDACTED]","user":{"name":"Jane","email":"[REDACTED:email]","password":"[REDACTED]","card":"[REDACTED]"},"req":{"authorization":"[REDACTED]","status":201}}
}

func ExamplePolicy_ReplaceAttr() {
	p := redact.Default()
	h := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return p.ReplaceAttr(groups, a)
		},
	})
	slog.New(h).Info("reset sent to jane@example.com", "token", "t-123", "status", 200)
	// Output:
	// level=INFO msg="reset sent to [REDACTED:email]" token=[REDACTED] status=200
}

func ExampleNew() {
	p, err := redact.New(
		redact.WithKeys("tenant_secret"),
		redact.WithCardLast4(true),
		redact.WithoutDetectors("email"),
		redact.WithDetector(redact.RegexpDetector("phone", regexp.MustCompile(`\+\d{1,3} \d{3}-\d{3}-\d{4}`))),
	)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.String("tenantSecret=abc from jane@example.com, +1 415-555-0100, card 4111111111111111"))
	fmt.Println(p.Counts()["phone"], p.Counts()["card"], p.Counts()["kv"])
	// Output:
	// tenantSecret=[REDACTED:kv] from jane@example.com, [REDACTED:phone], card [REDACTED:card:1111]
	// 1 1 1
}

func ExampleWithHashKey() {
	p, _ := redact.New(redact.WithHashKey([]byte("correlation-key")))
	a := p.String("invite jane@example.com")
	b := p.String("reminder for jane@example.com")
	// The same address hashes alike in both records; the address is gone.
	fmt.Println(a[strings.Index(a, "[HASH"):] == b[strings.Index(b, "[HASH"):], strings.Contains(a, "jane"))
	// Output:
	// true false
}

func ExampleDetector() {
	// A detector for an in-house token format: "acme_" and 24 letters or digits.
	acme := redact.Detector{
		Kind: "acme_token",
		Find: func(s string) [][2]int {
			var found [][2]int
			for off := 0; ; {
				i := strings.Index(s[off:], "acme_")
				if i < 0 {
					return found // nil when there is nothing: no allocation
				}
				i += off
				if i+29 <= len(s) {
					found = append(found, [2]int{i, i + 29})
				}
				off = i + 5
			}
		},
	}
	p, _ := redact.New(redact.WithDetector(acme))
	fmt.Println(p.String("deploy with acme_0123456789abcdefghijklmn done"))
	// Output:
	// deploy with [REDACTED:acme_token] done
}

func ExamplePolicy_Header() {
	p := redact.Default()
	fmt.Println(p.Header("Authorization", []string{"Bearer eyJhbGciOi.x.y"}))
	fmt.Println(p.Header("Cookie", []string{"sid=abc; theme=dark"}))
	fmt.Println(p.Header("Accept", []string{"application/json"}))
	// Output:
	// [Bearer [REDACTED]]
	// [sid=[REDACTED]; theme=[REDACTED]]
	// [application/json]
}

func ExamplePolicy_URL() {
	p := redact.Default()
	u, _ := url.Parse("https://app:s3cr3t@api.example.com/v1/users?email=jane%40example.com&api_key=abc&page=2")
	fmt.Println(p.URL(u))
	// Output:
	// https://app:%5BREDACTED%5D@api.example.com/v1/users?email=[REDACTED:email]&api_key=[REDACTED]&page=2
}

func ExamplePolicy_KeyValue() {
	p := redact.Default()
	fmt.Println(p.KeyValue(attribute.String("db.password", "hunter2")).Value.AsString())
	fmt.Println(p.KeyValue(attribute.String("url.full", "https://h/cb?token=abc")).Value.AsString())
	// Output:
	// [REDACTED]
	// https://h/cb?token=[REDACTED:kv]
}
