// Package browsertest starts Debian's headless Chromium for the browser
// tests (through chromedp) and gives them the few steps they all take:
// wait for an expression in the page, read its text, save a screenshot,
// and collect the console errors and uncaught exceptions the page had.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package puts the browser; the
// README's test command installs it.
const ChromiumPath = "/usr/bin/chromium"

// Browser is one headless Chromium with one tab, stopped when the test
// ends. Ctx runs chromedp actions in the tab, bounded by Start's timeout.
type Browser struct {
	Ctx context.Context
	t   *testing.T

	mu   sync.Mutex
	errs []string
}

// Start starts headless Chromium for t, for at most timeout; it fails t
// with the install command when Chromium is missing.
func Start(t *testing.T, timeout time.Duration) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("chromium not installed: apt-get install -y chromium (%v)", err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true), // screenshots at the full viewport width
		chromedp.UserDataDir(t.TempDir()),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })

	return listen(t, ctx)
}

// Tab opens another tab in b's browser, with its own console errors; it
// closes when the test ends.
func (b *Browser) Tab() *Browser {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.Ctx)
	b.t.Cleanup(cancel)
	return listen(b.t, ctx)
}

// listen returns the Browser of the tab ctx, recording its errors.
func listen(t *testing.T, ctx context.Context) *Browser {
	t.Helper()
	b := &Browser{Ctx: ctx, t: t}
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg = d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			msg = fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
				return
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			msg = "console.error: " + strings.Join(args, " ")
		default:
			return
		}
		b.mu.Lock()
		b.errs = append(b.errs, msg)
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// Errors returns the console errors and uncaught exceptions seen so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// NoErrors fails the test with the page's console errors, if it had any.
func (b *Browser) NoErrors() {
	b.t.Helper()
	if errs := b.Errors(); len(errs) > 0 {
		b.t.Errorf("browser errors:\n%s", strings.Join(errs, "\n"))
	}
}

// Do runs chromedp actions in the tab and fails the test if one fails.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// Poll waits up to d until the JavaScript expression expr is true in the
// page; on timeout it fails the test and shows state, an expression whose
// value describes the page.
func (b *Browser) Poll(d time.Duration, what, expr, state string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, d)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(25*time.Millisecond))); err != nil {
		got, _ := chromedp.Run(b.Ctx, chromedp.Evaluate[string](`String(`+state+`)`))
		b.t.Fatalf("waiting for %s (%s): %v\npage state: %s", what, expr, err, got)
	}
}

// Eval returns the value of the JavaScript expression expr.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.Ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// Text returns the trimmed text of the first element matching the CSS
// selector sel, or "" when there is none.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return Eval[string](b, fmt.Sprintf(`document.querySelector(%q)?.textContent.trim() ?? ''`, sel))
}

// Screenshot saves the whole page as a PNG at path, after a short pause
// for canvases to draw, and logs where.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	if err := chromedp.Do(b.Ctx, chromedp.Sleep(300*time.Millisecond)); err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}
