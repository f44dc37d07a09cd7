package redact

import (
	"fmt"
	"strings"
	"testing"
)

func TestIsSensitiveKey(t *testing.T) {
	p := Default()
	sensitive := []string{
		// Whole keys, any case.
		"password", "PASSWORD", "Password", "passwd", "pwd", "pass", "passphrase", "passcode",
		"secret", "secrets", "token", "authorization", "auth", "cookie", "cookies",
		"credential", "credentials", "creds", "cvv", "cvc", "ssn", "pin", "otp", "totp",
		"jwt", "bearer", "signature", "sig", "csrf", "xsrf", "session",
		// Segments, every separator.
		"user_password", "user-password", "user.password", "user password", "db.password",
		"DB_PASSWORD", "userPassword", "UserPassword", "password2", "password_hash",
		"client_secret", "clientSecret", "aws_secret_access_key", "AWS_SECRET_ACCESS_KEY",
		"refresh_token", "refreshToken", "access_token", "id_token", "X-Auth-Token",
		"x-csrf-token", "auth_header", "basic_auth", "Set-Cookie", "session_cookie",
		"Proxy-Authorization", "X-Amz-Security-Token", "X-Amz-Signature", "X-Amz-Credential",
		"X-Goog-Iap-Jwt-Assertion", "private-token", "x-vault-token", "pin_code", "card_cvv",
		"webhook_secret", "secret_key_base", "user[password]", "map[password", "{Password",
		// Pairs of segments.
		"api_key", "apiKey", "APIKey", "ApiKey", "apikey", "X-Api-Key", "x-api-key", "X_API_KEY",
		"X-Goog-Api-Key", "access_key", "accessKey", "private_key", "privateKey", "private_key_id",
		"secret_key", "signing_key", "encryption_key", "master_key", "AccountKey", "account_key",
		"session_id", "sessionId", "SessionID", "session_key", "subscription_key",
		"Ocp-Apim-Subscription-Key", "credit_card", "creditCard", "card_number", "cardNumber",
		"cc_number", "SharedAccessKey", "SharedAccessSignature", "privkey",
		// Inside a segment.
		"PGPASSWORD", "MYSQL_ROOT_PASSWORD", "dbpassword", "JSESSIONID", "PHPSESSID",
		"myapikey", "xaccesstoken", "oauthtoken_value", "githubclientsecret",
	}
	for _, k := range sensitive {
		if !p.IsSensitiveKey(k) {
			t.Errorf("IsSensitiveKey(%q) = false, want true", k)
		}
	}
	clean := []string{
		"", "_", "--", "author", "authors", "authority", "authored_at", "Author",
		"tokens", "tokens_used", "max_tokens", "input_tokens", "tokenizer_version", "tokenizer",
		"token_count", "tokenCount", "token_type", "token_expires_at", "token_ttl", "max_token",
		"next_token", "NextToken", "next_page_token", "nextPageToken", "page_token",
		"auth_type", "auth_method", "auth_provider", "auth_enabled", "auth_url", "auth_duration_ms",
		"password_length", "password_policy", "passwordMinLength", "has_password", "is_secret",
		"cookie_name", "secret_name", "secret_arn", "secret_version", "signature_algorithm",
		"credentials_file", "jwt_issuer", "pin_count", "session_duration", "session_count",
		"user_session", "key", "cache_key", "partition_key", "idempotency_key", "primary_key",
		"keys", "secretary", "secretary_name", "spin", "ping", "pinned", "design", "signal",
		"signed", "passenger", "bypass", "compass", "message", "msg", "user", "user_id",
		"email", "http.method", "http.status_code", "trace_id", "span_id", "duration",
		"level", "time", "service.name", "db.statement", "url.full", "net.peer.name",
		"oauth", "oauth2", "sigma", "passport", "tokyo", "otpauth_enabled", "cvs", "sso",
	}
	for _, k := range clean {
		if p.IsSensitiveKey(k) {
			t.Errorf("IsSensitiveKey(%q) = true, want false", k)
		}
	}
}

func TestWithKeys(t *testing.T) {
	p, err := New(WithKeys("tenant_secret_id", "X-Internal-Sig", "phone"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tenant_secret_id", "tenantSecretId", "TENANT-SECRET-ID", "phone", "user_phone", "phoneNumber", "x_internal_sig", "XInternalSig", "password"} {
		if !p.IsSensitiveKey(k) {
			t.Errorf("IsSensitiveKey(%q) = false, want true", k)
		}
	}
	for _, k := range []string{"tenant", "headphones", "phone_type", "internal"} {
		if p.IsSensitiveKey(k) {
			t.Errorf("IsSensitiveKey(%q) = true, want false", k)
		}
	}
	if Default().IsSensitiveKey("phone") {
		t.Error("WithKeys leaked into Default")
	}
	for _, bad := range []string{"", "--", " ", "pässword"} {
		if _, err := New(WithKeys(bad)); err == nil {
			t.Errorf("New(WithKeys(%q)) succeeded, want an error", bad)
		}
	}
}

func TestNextSegment(t *testing.T) {
	for _, c := range []struct {
		key  string
		want string
	}{
		{"user_password", "user|password"},
		{"X-Api-Key", "X|Api|Key"},
		{"APIKey", "API|Key"},
		{"userPassword", "user|Password"},
		{"HTTPSProxy", "HTTPS|Proxy"},
		{"password2hash", "password|2|hash"},
		{"db.password", "db|password"},
		{"user[password]", "user|password"},
		{"ÄrgerKey", "Ärger|Key"},
		{"__x__", "x"},
		{"", ""},
	} {
		var segs []string
		for s, e := nextSegment(c.key, 0); s < len(c.key); s, e = nextSegment(c.key, e) {
			segs = append(segs, c.key[s:e])
		}
		if got := strings.Join(segs, "|"); got != c.want {
			t.Errorf("segments(%q) = %q, want %q", c.key, got, c.want)
		}
	}
}

func TestIsSensitiveKeyAllocs(t *testing.T) {
	p := Default()
	keys := []string{"user_password", "X-Api-Key", "http.method", "tokens_used", "PGPASSWORD", "a.b.c.d.e.f.g"}
	if n := testing.AllocsPerRun(100, func() {
		for _, k := range keys {
			p.IsSensitiveKey(k)
		}
	}); n != 0 {
		t.Errorf("IsSensitiveKey allocates %v times", n)
	}
}

func TestLongKeys(t *testing.T) {
	p := Default()
	long := strings.Repeat("abcdefgh_", 1000)
	if p.IsSensitiveKey(long) {
		t.Error("long clean key matched")
	}
	if !p.IsSensitiveKey(long + "password") {
		t.Error("long key ending in password did not match")
	}
	if !p.IsSensitiveKey(strings.Repeat("A", 5000) + "_token") {
		t.Error("long key ending in _token did not match")
	}
}

// The verdict cache answers as matching does, for keys seen once, again,
// and after others took their slots.
func TestKeyCacheAgreesWithMatching(t *testing.T) {
	p := Default()
	m := p.keys
	var keys []string
	for i := range 3000 {
		keys = append(keys, fmt.Sprintf("k%d", i), fmt.Sprintf("user_%d_password", i), fmt.Sprintf("x-%d-token", i))
	}
	keys = append(keys, "password", "http.route", "api_key", "tokens_used", "a", "")
	for round := range 3 {
		for _, k := range keys {
			if got, want := m.match(k), m.matchUncached(k); got != want {
				t.Fatalf("round %d: match(%q) = %v, matching says %v", round, k, got, want)
			}
		}
	}
	// A key cut from a larger string is cached as a copy.
	big := strings.Repeat("x", 1<<20) + "session_id"
	k := big[len(big)-len("session_id"):]
	if !m.match(k) || !m.match("session_id") {
		t.Fatal("session_id not sensitive")
	}
}
