package redact

import (
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

// Test secrets. None of them is real.
const (
	testJWT    = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	testAWSID  = "AKIAIOSFODNN7EXAMPLE"
	testAWSSec = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testGCPKey = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
	testAzure  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	testPEM    = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END RSA PRIVATE KEY-----"
)

func TestString(t *testing.T) {
	p := Default()
	for _, c := range []struct{ name, in, want string }{
		// Cards.
		{"card plain", "paid with 4111111111111111 today", "paid with [REDACTED:card] today"},
		{"card spaces", "card 4111 1111 1111 1111.", "card [REDACTED:card]."},
		{"card dashes", "card=4111-1111-1111-1111&x=1", "card=[REDACTED:card]&x=1"},
		{"card amex", "amex 3782 822463 10005 ok", "amex [REDACTED:card] ok"},
		{"card amex plain", "378282246310005", "[REDACTED:card]"},
		{"card mastercard", "5555555555554444", "[REDACTED:card]"},
		{"card mastercard 2", "2223003122003222", "[REDACTED:card]"},
		{"card discover", "6011 1111 1111 1117", "[REDACTED:card]"},
		{"card diners", "3056 930902 5904", "[REDACTED:card]"},
		{"card 13 digits", "4222222222222", "[REDACTED:card]"},
		{"card 19 digits", "6011 0009 9013 9424 009 x", "[REDACTED:card] x"},
		{"card glued tail", "6011 0009 9013 9424 123x", "[REDACTED:card] 123x"},
		{"card then year", "4111 1111 1111 1111 2024", "[REDACTED:card] 2024"},
		{"card in json", `{"n":"4242424242424242"}`, `{"n":"[REDACTED:card]"}`},
		{"two cards", "4111111111111111,5555555555554444", "[REDACTED:card],[REDACTED:card]"},
		// JWTs.
		{"jwt", "token " + testJWT + " end", "token [REDACTED:jwt] end"},
		{"jwt in query", "/cb?id_token=" + testJWT + "&state=x", "/cb?id_token=[REDACTED:jwt]&state=x"},
		{"jwt unsigned", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "[REDACTED:jwt]"},
		// Bearer and Basic.
		{"bearer", "Authorization: Bearer abcdef1234567890", "Authorization: Bearer [REDACTED:bearer]"},
		{"bearer lower", "sent bearer ya.abc-DEF_123~+/= now", "sent bearer [REDACTED:bearer] now"},
		{"basic", "header Basic dXNlcjpwYXNzd29yZA== sent", "header Basic [REDACTED:bearer] sent"},
		{"bearer jwt", "Bearer " + testJWT, "Bearer [REDACTED:jwt]"},
		// AWS.
		{"aws id", "key " + testAWSID + " used", "key [REDACTED:aws_key] used"},
		{"aws sts id", "ASIAY34FZKBOKMUTVV7A", "[REDACTED:aws_key]"},
		{"aws secret kv", "aws_secret_access_key=" + testAWSSec, "aws_secret_access_key=[REDACTED:aws_key]"},
		{"aws secret env", "AWS_SECRET_ACCESS_KEY: " + testAWSSec + "\n", "AWS_SECRET_ACCESS_KEY: [REDACTED:aws_key]\n"},
		{"aws json", `{"SecretAccessKey":"` + testAWSSec + `"}`, `{"SecretAccessKey":"[REDACTED:aws_key]"}`},
		// GCP.
		{"gcp api key", "key=" + testGCPKey, "key=[REDACTED:gcp_key]"},
		{"gcp in url", "https://maps.googleapis.com/x?center=a&key=" + testGCPKey, "https://maps.googleapis.com/x?center=a&key=[REDACTED:gcp_key]"},
		{"gcp oauth secret", "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 x", "[REDACTED:gcp_key] x"},
		{"gcp access token", "ya29.a0AfH6SMBx-3qVbc_dEfGhIjKlMnOpQrStUvWxYz012345 x", "[REDACTED:gcp_key] x"},
		{"gcp service account", `{"type":"service_account","private_key_id":"5f2a9c1e0b7d4a3c8e6f1b2d9a0c7e4f3b8d1a6c","private_key":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n","client_email":"svc@proj.iam.gserviceaccount.com"}`,
			`{"type":"service_account","private_key_id":"[REDACTED:kv]","private_key":"[REDACTED:private_key]","client_email":"[REDACTED:email]"}`},
		// Azure.
		{"azure conn", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + testAzure + ";EndpointSuffix=core.windows.net",
			"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=[REDACTED:azure_key];EndpointSuffix=core.windows.net"},
		{"azure sas", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig=abC%2Bde%3D&se=2030-01-01", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sig=[REDACTED:azure_key]&se=2030-01-01"},
		{"azure servicebus", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=abc123+/=", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=[REDACTED:azure_key]"},
		// PEM.
		{"pem", "key:\n" + testPEM + "\nafter", "key:\n[REDACTED:private_key]\nafter"},
		{"pem escaped", `"-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----\n"`, `"[REDACTED:private_key]\n"`},
		{"pem openssh", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA\n-----END OPENSSH PRIVATE KEY-----", "[REDACTED:private_key]"},
		{"pem truncated", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEI", "[REDACTED:private_key]"},
		{"pem pgp", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQ\n-----END PGP PRIVATE KEY BLOCK-----!", "[REDACTED:private_key]!"},
		// E-mail.
		{"email", "sent to jane.doe+tag@mail.example.co.uk.", "sent to [REDACTED:email]."},
		{"email angle", "From: Jane <jane@example.com>", "From: Jane <[REDACTED:email]>"},
		{"email mailto", "mailto:jane@example.com", "mailto:[REDACTED:email]"},
		// SSN.
		{"ssn", "ssn on file: 123-45-6789.", "ssn on file: [REDACTED:ssn]."},
		{"ssn path", "/people/078-05-1120/profile", "/people/[REDACTED:ssn]/profile"},
		// key=value forms.
		{"kv query", "/login?user=bob&password=hunter2&next=/", "/login?user=bob&password=[REDACTED:kv]&next=/"},
		{"kv spaces", "password = hunter2 next", "password = [REDACTED:kv] next"},
		{"kv colon", "password: hunter2", "password: [REDACTED:kv]"},
		{"kv json", `{"user":"bob","password":"hunter2","pin":1234,"ok":true}`, `{"user":"bob","password":"[REDACTED:kv]","pin":"[REDACTED:kv]","ok":true}`},
		{"kv json spaced", `{"api_key" : "abc123"}`, `{"api_key" : "[REDACTED:kv]"}`},
		{"kv json object", `{"credentials":{"user":"a","pass":"b"},"x":1}`, `{"credentials":"[REDACTED:kv]","x":1}`},
		{"kv json escaped", `{\"password\":\"hunter2\",\"u\":1}`, `{\"password\":\"[REDACTED:kv]\",\"u\":1}`},
		{"kv single quoted", "password='hunter 2' x", "password='[REDACTED:kv]' x"},
		{"kv double quoted", `secret="a b c" x`, `secret="[REDACTED:kv]" x`},
		{"kv ruby", `{:password => "hunter2"}`, `{:password => "[REDACTED:kv]"}`},
		{"kv go map", "map[password:hunter2 user:bob]", "map[password:[REDACTED:kv] user:bob]"},
		{"kv go struct", "{User:bob Password:hunter2}", "{User:bob Password:[REDACTED:kv]}"},
		{"kv conn string", "Server=db;Database=app;User Id=sa;Password=P@ss;w0rd", "Server=db;Database=app;User Id=sa;Password=[REDACTED:kv];w0rd"},
		{"kv semicolon", "host=db password=hunter2; sslmode=require", "host=db password=[REDACTED:kv]; sslmode=require"},
		{"kv flag", "exec --db-password=hunter2 --verbose", "exec --db-password=[REDACTED:kv] --verbose"},
		{"kv header line", "Cookie: session=abc; theme=dark\nAccept: */*", "Cookie: [REDACTED:kv]\nAccept: */*"},
		{"kv x-api-key", "X-Api-Key: 0123456789abcdef", "X-Api-Key: [REDACTED:kv]"},
		{"kv env", "PGPASSWORD=hunter2 psql", "PGPASSWORD=[REDACTED:kv] psql"},
		{"kv unclosed quote", `password="hunter2`, `password="[REDACTED:kv]`},
		// URLs with user info.
		{"postgres", "dsn postgres://app:s3cr3t@db.internal:5432/orders?sslmode=disable", "dsn postgres://app:[REDACTED:kv]@db.internal:5432/orders?sslmode=disable"},
		{"redis no user", "redis://:s3cr3t@cache:6379/0", "redis://:[REDACTED:kv]@cache:6379/0"},
		{"amqp", "amqp://guest:guest@rabbit/", "amqp://guest:[REDACTED:kv]@rabbit/"},
		{"url email user", "smtp://jane%40example.com:pw123@mail.example.com", "smtp://jane%40example.com:[REDACTED:kv]@mail.example.com"},
		// Several in one string.
		{"many", "user jane@example.com paid 4111111111111111 with key " + testAWSID,
			"user [REDACTED:email] paid [REDACTED:card] with key [REDACTED:aws_key]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := p.String(c.in); got != c.want {
				t.Errorf("String(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

// lookalikes are strings services log all day that must pass untouched.
var lookalikes = []string{
	"",
	"GET",
	"request completed",
	"4bf92f3577b34da6a3ce929d0e0e4736", // trace id
	"00f067aa0ba902b7",                 // span id
	"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // traceparent
	"123e4567-e89b-12d3-a456-426614174000",                    // UUID
	"2024-01-15T10:30:00Z",
	"2024-01-15T10:30:00.123456789+02:00",
	"Mon, 15 Jan 2024 10:30:00 GMT",
	"1.532ms", "2h45m10.5s", "150µs",
	"10.1.2.3", "10.1.2.3:54012", "192.168.0.1/24", "::1", "fe80::1ff:fe23:4567:890a%eth0",
	"[2001:db8::1]:8443", "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
	"order 4111111111111112 shipped", // fails Luhn
	"order #1234567890123456",        // fails Luhn
	"1700000000000",                  // millisecond timestamp
	"1700000000000000000",            // nanosecond timestamp
	"id 7123456789012345",            // passes Luhn, but no card starts with 7
	"v1.2.3", "go1.26.8", "1.2.3-rc.1+build.5",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", // sha256
	"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"9fceb02d0ae598e95dc970b74767f19372d61af8", // git sha
	"a94a8fe5ccb19ba61c4c0873d391e987982fbbd3",
	"The quick brown fox jumps over the lazy dog.",
	"Bearer tokens are described in RFC 6750.",
	"basic authentication is disabled",
	"invalid token: expired",
	"password: required",
	"auth: permission denied",
	"token=",
	"failed to parse token: unexpected EOF",
	"https://example.com/path?q=go&page=2",
	"https://user@example.com/path",
	"http://localhost:8080/healthz",
	"grpc://10.0.0.1:9090",
	"/api/v1/users/{id}",
	"/api/v1/users/42/orders/1234",
	"user-service", "eu-west-1", "us-central1-a",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"golang.org/x/net@v0.20.0",
	"docker.io/library/nginx@sha256:abc",
	"@alice mentioned you",
	"user@localhost",
	"phone +1 415-555-0100",
	"415-555-0100 415-555-0101",
	"000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", // not issued
	"2024-123-45-6789",
	"ISBN 978-3-16-148410-0",
	"key=value", "a=b&c=d", "x: 1", "tokens_used=1532", "max_tokens: 4096", "token_count=3",
	"author=jane", "authority: example.com",
	"AKIA",                  // too short
	"XAKIAIOSFODNN7EXAMPLE", // glued
	"eyJhbGciOiJIUzI1NiJ9",  // a JWT header alone
	"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
	"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
	"[REDACTED]", "[REDACTED:card]", "[REDACTED:card:1234]", "[HASH:1a2b3c4d5e6f]", "[HASH:email:1a2b3c4d5e6f]",
	"password=[REDACTED:kv]", `{"password":"[REDACTED:kv]"}`, "postgres://u:[REDACTED:kv]@h/db",
	"SELECT * FROM users WHERE id = $1",
	"x == y && a != b || c <= d",
	"map[a:1 b:2]",
	"std::string", "a::b::c",
	"ratio 3:2",
	"12:30:45",
	"[2024-01-15 10:30:00] INFO done",
}

func TestLookalikes(t *testing.T) {
	p := Default()
	for _, s := range lookalikes {
		if got := p.String(s); got != s {
			t.Errorf("String(%q) = %q, want it unchanged", s, got)
		}
	}
}

func TestStringCleanNoAlloc(t *testing.T) {
	p := Default()
	for _, s := range lookalikes {
		if n := testing.AllocsPerRun(20, func() { _ = p.String(s) }); n != 0 {
			t.Errorf("String(%q) allocates %v times", s, n)
		}
		if got := p.String(s); len(s) > 0 && got != s {
			continue
		} else if len(s) > 0 && strings.Clone(s) != got {
			t.Errorf("String(%q) is not s", s)
		}
	}
}

func TestStringIdempotent(t *testing.T) {
	p := Default()
	for _, s := range []string{
		"card 4111 1111 1111 1111 and jane@example.com",
		"password=hunter2&api_key=abc",
		`{"password":"x","card_number":"4111111111111111"}`,
		"postgres://u:p@h/db",
		"Authorization: Bearer abcdef1234567890",
		testPEM,
	} {
		once := p.String(s)
		if twice := p.String(once); twice != once {
			t.Errorf("String is not idempotent on %q:\n once %q\ntwice %q", s, once, twice)
		}
	}
	l4, _ := New(WithCardLast4(true))
	once := l4.String("card_number=4111111111111111")
	if twice := l4.String(once); twice != once {
		t.Errorf("last-4 not idempotent: %q then %q", once, twice)
	}
}

func TestCardLast4(t *testing.T) {
	p, err := New(WithCardLast4(true))
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"card 4111 1111 1111 1234 ok":  "card 4111 1111 1111 1234 ok", // fails Luhn
		"card 4111 1111 1111 1111 ok":  "card [REDACTED:card:1111] ok",
		"amex 3782-822463-10005":       "amex [REDACTED:card:0005]",
		"card_number=5555555555554444": "card_number=[REDACTED:card:4444]",
	} {
		if got := p.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHashMode(t *testing.T) {
	p, err := New(WithHashKey([]byte("k1")))
	if err != nil {
		t.Fatal(err)
	}
	a := p.String("from jane@example.com")
	b := p.String("to jane@example.com!")
	hashRe := regexp.MustCompile(`\[HASH:email:[0-9a-f]{12}\]`)
	if !hashRe.MatchString(a) || hashRe.FindString(a) != hashRe.FindString(b) {
		t.Errorf("hashes %q and %q should match each other and the format", a, b)
	}
	if c := p.String("to john@example.com"); hashRe.FindString(c) == hashRe.FindString(a) {
		t.Errorf("different secrets hash alike: %q %q", a, c)
	}
	q, _ := New(WithHashKey([]byte("k2")))
	if d := q.String("from jane@example.com"); d == a {
		t.Errorf("different keys give the same hash %q", d)
	}
	// Cards hash on their digits, whatever the separators.
	if x, y := p.String("4111 1111 1111 1111"), p.String("4111-1111-1111-1111"); x != y {
		t.Errorf("card hashes differ: %q %q", x, y)
	}
	if got := p.String("4111 1111 1111 1111"); strings.Contains(got, "1111") {
		t.Errorf("hash leaked digits: %q", got)
	}
	if _, err := New(WithHashKey(nil)); err == nil {
		t.Error("New(WithHashKey(nil)) succeeded")
	}
	// Idempotent.
	once := p.String("password=hunter2 jane@example.com")
	if twice := p.String(once); twice != once {
		t.Errorf("hash mode not idempotent: %q then %q", once, twice)
	}
}

func TestWithoutDetectors(t *testing.T) {
	p, err := New(WithoutDetectors("email", "card"))
	if err != nil {
		t.Fatal(err)
	}
	in := "jane@example.com 4111111111111111 123-45-6789"
	if got, want := p.String(in), "jane@example.com 4111111111111111 [REDACTED:ssn]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Without "azure_key", Azure pairs are still caught as kv.
	p, _ = New(WithoutDetectors("azure_key"))
	if got, want := p.String("AccountKey=abc123=="), "AccountKey=[REDACTED:kv]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Without "kv" too, they are not.
	p, _ = New(WithoutDetectors("azure_key", "kv"))
	if got := p.String("AccountKey=abc123== password=x postgres://u:p@h"); got != "AccountKey=abc123== password=x postgres://u:p@h" {
		t.Errorf("got %q", got)
	}
	// Without "kv", AWS secrets in pairs are still caught.
	p, _ = New(WithoutDetectors("kv"))
	if got, want := p.String("aws_secret_access_key="+testAWSSec+" password=x"), "aws_secret_access_key=[REDACTED:aws_key] password=x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := New(WithoutDetectors("nope")); err == nil {
		t.Error("unknown kind accepted")
	}
	if _, err := New(WithoutDetectors("key")); err == nil {
		t.Error(`"key" accepted as a detector`)
	}
}

func TestUserDetector(t *testing.T) {
	phone := regexp.MustCompile(`\+\d{1,3} \d{3}-\d{3}-\d{4}`)
	p, err := New(
		WithDetector(RegexpDetector("phone", phone)),
		WithDetector(Detector{Kind: "acme_token", Find: func(s string) [][2]int {
			var out [][2]int
			for off := 0; ; {
				i := strings.Index(s[off:], "acme_")
				if i < 0 {
					return out
				}
				i += off
				out = append(out, [2]int{i, i + 15})
				off = i + 5
			}
		}}),
		WithDetector(Detector{Kind: "broken", Find: func(s string) [][2]int {
			if strings.Contains(s, "boom") {
				panic("boom")
			}
			return [][2]int{{-5, 0}, {3, 2}, {len(s), len(s) + 10}} // all ignored
		}}),
	)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"call +1 415-555-0100 now":         "call [REDACTED:phone] now",
		"tok acme_0123456789 x":            "tok [REDACTED:acme_token] x",
		"tok acme_01234":                   "tok [REDACTED:acme_token]", // range clipped to the end
		"clean text":                       "clean text",
		"boom here":                        "[REDACTED:broken]", // fails closed
		"boom jane@example.com":            "[REDACTED:email]",  // the whole string, named by the higher-priority kind
		"jane@example.com +1 415-555-0100": "[REDACTED:email] [REDACTED:phone]",
	} {
		if got := p.String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
	c := p.Counts()
	if c["phone"] != 2 || c["acme_token"] != 2 || c["broken"] != 1 || c["email"] != 2 {
		t.Errorf("counts = %v", c)
	}
	for _, d := range []Detector{
		{Kind: "", Find: func(string) [][2]int { return nil }},
		{Kind: "Bad-Kind", Find: func(string) [][2]int { return nil }},
		{Kind: "email", Find: func(string) [][2]int { return nil }},
		{Kind: "key", Find: func(string) [][2]int { return nil }},
		{Kind: "nofind"},
		RegexpDetector("nilre", nil),
	} {
		if _, err := New(WithDetector(d)); err == nil {
			t.Errorf("New(WithDetector(%q)) succeeded", d.Kind)
		}
	}
	if _, err := New(WithDetector(RegexpDetector("dup", phone)), WithDetector(RegexpDetector("dup", phone))); err == nil {
		t.Error("duplicate kinds accepted")
	}
}

func TestCounts(t *testing.T) {
	p, _ := New()
	p.String("jane@example.com and john@example.com, card 4111111111111111")
	p.Attr(slog.String("password", "x"))
	c := p.Counts()
	if c["email"] != 2 || c["card"] != 1 || c["key"] != 1 || c["jwt"] != 0 {
		t.Errorf("Counts() = %v", c)
	}
	if len(c) != len(p.Kinds()) {
		t.Errorf("Counts has %d kinds, Kinds %d", len(c), len(p.Kinds()))
	}
	for _, k := range []string{"key", "card", "jwt", "bearer", "aws_key", "gcp_key", "azure_key", "private_key", "email", "ssn", "kv"} {
		if _, ok := c[k]; !ok {
			t.Errorf("Counts() lacks %q", k)
		}
	}
}

func TestNilPolicy(t *testing.T) {
	var p *Policy
	if got := p.String("jane@example.com"); got != "[REDACTED:email]" {
		t.Errorf("nil policy: %q", got)
	}
	if !p.IsSensitiveKey("password") {
		t.Error("nil policy: password not sensitive")
	}
}

func TestManyFindings(t *testing.T) {
	p := Default()
	var b, want strings.Builder
	for i := 0; i < 50; i++ {
		b.WriteString("a@example.com ")
		want.WriteString("[REDACTED:email] ")
	}
	if got := p.String(b.String()); got != want.String() {
		t.Errorf("50 findings: got %q", got)
	}
}
