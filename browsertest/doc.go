// Package browsertest drives observe's status page in a real headless
// Chromium (github.com/chromedp/chromedp). It is a module of its own, like
// bench/, so that users of observe never download a browser driver.
//
//	cd browsertest && go test -count=1 ./...
//
// It needs /usr/bin/chromium (Debian: apt-get install chromium), or the
// path in OBSERVE_CHROMIUM; without one it skips, except in CI (CI=true),
// where that is a failure. Screenshots of each view are written to
// OBSERVE_SCREENSHOTS (default: artifacts/); docs/screenshots holds the
// committed ones.
package browsertest
