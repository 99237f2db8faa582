package e2e

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// consoleBrowser is headless Chromium on the web console. It records what
// the pages must never do: write an error to the JavaScript console or
// the browser log, or ask any host but the console's for anything.
type consoleBrowser struct {
	t     *testing.T
	ctx   context.Context
	base  string // http://host:port of the admin listener
	host  string
	shots string // where screenshots go

	mu       sync.Mutex
	errors   []string
	requests []string // URLs of requests to other hosts
	refused  []string // paths whose error page a test asked for
}

// expectRefusal tells the browser that the next load of path is meant to
// answer an error page: Chromium logs the status of every failed load,
// which is then not a fault of the page.
func (b *consoleBrowser) expectRefusal(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refused = append(b.refused, b.base+path)
}

// newConsoleBrowser starts Chromium for the console at admin (host:port).
// Screenshots go to $WEIR_SCREENSHOTS when set, else to a test directory.
func newConsoleBrowser(t *testing.T, admin string) *consoleBrowser {
	t.Helper()
	shots := os.Getenv("WEIR_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &consoleBrowser{t: t, base: "http://" + admin, host: admin, shots: shots}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.observe))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // start the browser on a context without a deadline
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

// observe runs on the browser's reader goroutine: it only records.
func (b *consoleBrowser) observe(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if u, err := url.Parse(e.Request.URL); err == nil && u.Scheme != "data" && u.Host != b.host {
			b.requests = append(b.requests, e.Request.URL)
		}
	case *runtime.EventExceptionThrown:
		b.errors = append(b.errors, "exception: "+e.ExceptionDetails.Text)
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeWarning {
			b.errors = append(b.errors, "console."+string(e.Type))
		}
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError || e.Entry.Level == log.EntryLevelWarning {
			for i, u := range b.refused {
				if e.Entry.Source == log.EntrySourceNetwork && e.Entry.URL == u {
					b.refused = append(b.refused[:i], b.refused[i+1:]...)
					return
				}
			}
			b.errors = append(b.errors, string(e.Entry.Level)+": "+e.Entry.Text+" "+e.Entry.URL)
		}
	}
}

// do runs steps with a deadline of their own.
func (b *consoleBrowser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// open navigates to path and waits for the page's heading.
func (b *consoleBrowser) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS("main h1")))
}

// eval evaluates a JavaScript expression on the page into T.
func eval[T any](b *consoleBrowser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a screenshot of the whole page as name.png.
func (b *consoleBrowser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// assertClean fails the test if a page wrote an error or warning to the
// console or asked another host for anything.
func (b *consoleBrowser) assertClean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errors) > 0 {
		b.t.Errorf("the pages wrote to the browser console:\n%s", strings.Join(b.errors, "\n"))
	}
	if len(b.requests) > 0 {
		b.t.Errorf("the pages asked other hosts than %s:\n%s", b.host, strings.Join(b.requests, "\n"))
	}
}
