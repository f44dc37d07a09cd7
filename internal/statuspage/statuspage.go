// Package statuspage holds the status page's assets, embedded in the
// binary: two HTML templates, one script and one style sheet, written by
// hand (no build step), served from the admin handler under static/.
package statuspage

import (
	"embed"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed assets
var files embed.FS

// Page is the status page; it takes Service, CSRF and SignOut.
var Page = template.Must(template.ParseFS(files, "assets/index.html"))

// SignIn is the sign-in form; it takes Service and Error.
var SignIn = template.Must(template.ParseFS(files, "assets/signin.html"))

// Assets serves the script, the style sheet and the icon.
func Assets() http.Handler {
	sub, err := fs.Sub(files, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	fsrv := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "app.js", "style.css", "icon.svg":
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		fsrv.ServeHTTP(w, r)
	})
}

// Size returns the total size of the embedded assets in bytes.
func Size() int {
	n := 0
	_ = fs.WalkDir(files, "assets", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, err := files.ReadFile(path); err == nil {
				n += len(b)
			}
		}
		return nil
	})
	return n
}
