// Package redact is observe's one redaction policy: it hides secrets in log
// messages and attributes, span and span-event attributes, captured HTTP
// headers and URLs, before any of them leave the process.
//
// A [Policy] does two things.
//
// Sensitive keys. An attribute, struct field, map entry, header or query
// parameter whose key names a secret has its whole value replaced by
// "[REDACTED]". Keys match case-insensitively, as a whole or as a segment:
// keys are cut at '_', '-', '.', spaces and other punctuation, at camel-case
// humps and between letters and digits, so "password" also matches
// "user_password", "userPassword", "db.password" and "PASSWORD2", and
// "apikey" matches "X-Api-Key" and "apiKey". The built-in words are
// password, passwd, pwd, pass, passcode, passphrase, secret(s), token,
// authorization, auth, cookie(s), credential(s), creds, session (only as the
// whole key), session id/key, cvv, cvc, ssn, pin, otp, totp, jwt, bearer,
// signature, sig, csrf, xsrf, and the pairs api, access, private, secret,
// signing, encryption, master, account, session and subscription key; access,
// refresh and auth token; client secret, credit card, card number, shared
// access key and shared access signature. A few long ones also match inside a
// segment ("PGPASSWORD", "JSESSIONID"). [WithKeys] adds more.
//
// To keep telemetry useful, a key that describes a secret rather than holds
// it is not sensitive: a match followed by a qualifier segment (count, type,
// length, name, url, path, file, enabled, expires, ttl, version, status, …:
// "token_count", "auth_type", "cookie_name", "password_length") or preceded
// by has, is, num, max, min, no, next, page or idempotency ("max_token",
// "next_page_token"). "tokens" is not a word, so LLM accounting keys such as
// "tokens_used" and "max_tokens" stay visible; "author" and "authority" never
// match "auth".
//
// Detected values. Inside every string the policy inspects, these are
// replaced where they occur, the rest of the string kept, by
// "[REDACTED:<kind>]":
//
//	card         payment card numbers: 13–19 digits passing Luhn, issuer digit 2–6,
//	             plain or in 4-digit-first groups split by spaces or dashes
//	jwt          JSON Web Tokens (eyJ… three or more base64url segments)
//	bearer       the credentials after "Bearer " or "Basic "
//	aws_key      AWS access key ids (AKIA…, ASIA…) and aws_secret_access_key=… pairs
//	gcp_key      GCP API keys (AIza…), OAuth client secrets (GOCSPX-…), access tokens (ya29.…)
//	azure_key    AccountKey=…, SharedAccessKey=…, SharedAccessSignature=… and sig=… pairs
//	private_key  PEM private-key blocks, BEGIN to END (service-account JSON included)
//	email        e-mail addresses
//	ssn          US social security numbers ddd-dd-dddd, never-issued ranges excluded
//	kv           the value in key=value, key: value, key => value and "key":"value"
//	             pairs with a sensitive key (query strings, JSON logged as text,
//	             "password=…;" connection strings), and the password of
//	             scheme://user:password@host URLs
//
// A clean string is returned as is, without allocating (how the scanners
// keep that cheap is in docs/DESIGN.md). Trace and span ids, UUIDs,
// timestamps, durations, IP addresses, version strings, hex digests,
// numbers failing Luhn and URLs without credentials are left alone.
//
// Users add detectors ([WithDetector], [RegexpDetector]), turn built-in ones
// off ([WithoutDetectors]), show the last four digits of cards
// ([WithCardLast4]) or replace masks with a keyed hash to correlate equal
// secrets ([WithHashKey]). [Policy.Counts] reports what was redacted, by kind,
// for the observe_redactions_total metric. This package reads no environment
// variable: the observe root turns OBSERVE_REDACT_KEYS and
// OBSERVE_REDACT_HASH_KEY into options.
//
// Where it applies: [Policy.String] for messages and any text,
// [Policy.Attr], [Policy.Attrs] and [Policy.Value] for slog (groups,
// LogValuers, structs, maps, slices, errors, []byte, json.RawMessage),
// [NewHandler] and [Policy.ReplaceAttr] to plug into slog,
// [Policy.KeyValue] for OpenTelemetry attributes, [Policy.Header] and
// [Policy.URL] for HTTP.
//
// Not covered: attribute keys themselves (map keys are inspected; attribute
// keys are written by the program, not by its users); numbers typed as numbers (a card number logged as an int64 is
// not inspected: timestamps and ids would be mistaken for cards); secrets
// split across attributes; base64- or otherwise encoded secrets; the output of
// String methods, which the policy never calls (a text handler does, for
// values it formats with %+v); the user name of a URL, even when it is a
// token ("https://ghp_…@github.com"); URL passwords containing an unescaped
// '/', '?' or '#'.
package redact
