package profiling

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"testing"
	"time"
)

// uploadRequest builds an upload as pyroscope-go's remote does.
func uploadRequest(t testing.TB, units string, profile []byte) *http.Request {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("profile", "profile.pprof")
	_, _ = fw.Write(profile)
	_ = mw.Close()
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:4040/ingest?name=app&from=1000000000&until=2000000000&units="+units+"&spyName=gospy", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

func TestTeeCPU(t *testing.T) {
	var got [][]byte
	var from, until time.Time
	tee := func(s, e time.Time, p []byte) { got, from, until = append(got, p), s, e }
	teeCPU(uploadRequest(t, "samples", []byte("cpu profile")), tee)
	teeCPU(uploadRequest(t, "goroutines", []byte("goroutines")), tee)
	if len(got) != 1 || string(got[0]) != "cpu profile" || from.Unix() != 1 || until.Unix() != 2 {
		t.Fatalf("teed %q from %v until %v, want the CPU profile only", got, from, until)
	}
	// The upload itself still sends its whole body.
	req := uploadRequest(t, "samples", []byte("cpu profile"))
	teeCPU(req, tee)
	var b bytes.Buffer
	if _, err := b.ReadFrom(req.Body); err != nil || !bytes.Contains(b.Bytes(), []byte("cpu profile")) {
		t.Fatalf("the request's body after the tee: %q, %v", b.String(), err)
	}
}

// FuzzTeeCPU: whatever the upload looks like, the tee never panics and
// never leaves the request's body read.
func FuzzTeeCPU(f *testing.F) {
	req := uploadRequest(f, "samples", []byte("p"))
	var seed bytes.Buffer
	_, _ = seed.ReadFrom(req.Body)
	f.Add(req.Header.Get("Content-Type"), "units=samples&from=1&until=2", seed.Bytes())
	f.Add("multipart/form-data; boundary=x", "units=samples&from=-1&until=x", []byte("--x\r\n\r\n--x--"))
	f.Add("text/plain", "units=samples", []byte{})
	f.Fuzz(func(t *testing.T, ctype, query string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/ingest", bytes.NewReader(body))
		if err != nil {
			t.Skip()
		}
		req.URL.RawQuery = query
		req.Header.Set("Content-Type", ctype)
		teeCPU(req, func(time.Time, time.Time, []byte) {})
		var b bytes.Buffer
		if _, err := b.ReadFrom(req.Body); err != nil || !bytes.Equal(b.Bytes(), body) {
			t.Fatalf("body changed by the tee")
		}
	})
}
