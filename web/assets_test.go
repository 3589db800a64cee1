package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// embedded returns the bytes of an embedded file of static/.
func embedded(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(static, "static/"+name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAssetValidators checks every kind of static file the public and the
// control listeners serve: validators on the plain and the gzip form, 304
// on a matching If-None-Match or If-Modified-Since, and a gzip body that
// inflates to the embedded file.
func TestAssetValidators(t *testing.T) {
	s, err := New(Config{Addr: ":0", WebSockets: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	ops := OpsPage()
	tests := []struct {
		path  string
		h     http.Handler
		ctype string
		want  []byte
	}{
		{"/", s.Handler(), "text/html", embedded(t, "index.html")},
		{"/compare", s.Handler(), "text/html", embedded(t, "compare.html")},
		{"/static/app.js", s.Handler(), "text/javascript", embedded(t, "app.js")},
		{"/static/app.css", s.Handler(), "text/css", embedded(t, "app.css")},
		{"/static/vendor/lightweight-charts.standalone.production.js", s.Handler(), "text/javascript",
			embedded(t, "vendor/lightweight-charts.standalone.production.js")},
		{"/marketgate.js", s.Handler(), "text/javascript", clientJS},
		{"/marketgate.d.ts", s.Handler(), "application/typescript", clientDTS},
		{"/ops/", ops, "text/html", nil},
		{"/ops/theme.css", ops, "text/css", embedded(t, "theme.css")},
	}
	do := func(h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			plain := do(tc.h, tc.path)
			if plain.Code != 200 {
				t.Fatalf("GET %s = %d; want 200", tc.path, plain.Code)
			}
			ph := plain.Header()
			if ct := ph.Get("Content-Type"); !strings.HasPrefix(ct, tc.ctype) {
				t.Errorf("Content-Type %q; want %s", ct, tc.ctype)
			}
			etag, lastMod := ph.Get("ETag"), ph.Get("Last-Modified")
			if !strings.HasPrefix(etag, `"`) || len(etag) < 10 {
				t.Errorf("ETag %q; want a strong validator", etag)
			}
			if _, err := http.ParseTime(lastMod); err != nil {
				t.Errorf("Last-Modified %q: %v", lastMod, err)
			}
			if ph.Get("Content-Encoding") != "" || ph.Get("Cache-Control") != "no-cache" {
				t.Errorf("Content-Encoding %q, Cache-Control %q; want none, no-cache", ph.Get("Content-Encoding"), ph.Get("Cache-Control"))
			}
			if tc.want != nil && !bytes.Equal(plain.Body.Bytes(), tc.want) {
				t.Errorf("body (%d bytes) is not the embedded file (%d bytes)", plain.Body.Len(), len(tc.want))
			}

			zipped := do(tc.h, tc.path, "Accept-Encoding", "br, gzip, deflate")
			zh := zipped.Header()
			if zipped.Code != 200 || zh.Get("Content-Encoding") != "gzip" || zh.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("GET with Accept-Encoding gzip = %d, Content-Encoding %q, Vary %q; want 200, gzip, Accept-Encoding",
					zipped.Code, zh.Get("Content-Encoding"), zh.Get("Vary"))
			}
			if ph.Get("Vary") != "Accept-Encoding" {
				t.Errorf("plain response's Vary %q; want Accept-Encoding (caches must key on it)", ph.Get("Vary"))
			}
			zr, err := gzip.NewReader(zipped.Body)
			if err != nil {
				t.Fatal(err)
			}
			inflated, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(inflated, plain.Body.Bytes()) {
				t.Fatalf("gzip body inflates to %d bytes (%v); want the plain body's %d", len(inflated), err, plain.Body.Len())
			}
			if zipped.Body.Len() >= plain.Body.Len() {
				t.Errorf("gzip body %d bytes; want fewer than the plain %d", zipped.Body.Len(), plain.Body.Len())
			}
			zetag := zh.Get("ETag")
			if zetag == "" || zetag == etag {
				t.Errorf("gzip ETag %q; want its own, not the plain form's %q", zetag, etag)
			}
			if zh.Get("Last-Modified") != lastMod {
				t.Errorf("gzip Last-Modified %q; want %q", zh.Get("Last-Modified"), lastMod)
			}

			for _, c := range []struct {
				name   string
				hdr    []string
				status int
			}{
				{"If-None-Match plain", []string{"If-None-Match", etag}, 304},
				{"If-None-Match gzip", []string{"If-None-Match", zetag, "Accept-Encoding", "gzip"}, 304},
				{"If-None-Match of the other form", []string{"If-None-Match", etag, "Accept-Encoding", "gzip"}, 200},
				{"If-None-Match list", []string{"If-None-Match", `"old", ` + etag}, 304},
				{"If-None-Match weak", []string{"If-None-Match", "W/" + etag}, 304},
				{"If-None-Match stale", []string{"If-None-Match", `"stale"`}, 200},
				{"If-Modified-Since", []string{"If-Modified-Since", lastMod}, 304},
				{"If-Modified-Since earlier", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200},
			} {
				rec := do(tc.h, tc.path, c.hdr...)
				if rec.Code != c.status {
					t.Errorf("%s: status %d; want %d", c.name, rec.Code, c.status)
				}
				if c.status == 304 && (rec.Body.Len() != 0 || rec.Header().Get("ETag") == "") {
					t.Errorf("%s: 304 with a %d-byte body, ETag %q; want no body and the ETag", c.name, rec.Body.Len(), rec.Header().Get("ETag"))
				}
			}
		})
	}
}

// TestAssetsOverHTTP fetches a script through a real listener with Go's
// client, which asks for gzip and inflates it, and then revalidates it as
// a browser does.
func TestAssetsOverHTTP(t *testing.T) {
	s, err := New(Config{Addr: ":0", WebSockets: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/marketgate.js")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || !resp.Uncompressed || !bytes.Equal(body, clientJS) {
		t.Fatalf("GET /marketgate.js = %d, gzipped %v, %d bytes (%v); want 200, gzipped, the embedded %d bytes",
			resp.StatusCode, resp.Uncompressed, len(body), err, len(clientJS))
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/marketgate.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	req.Header.Set("If-Modified-Since", resp.Header.Get("Last-Modified"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation = %d; want 304", resp.StatusCode)
	}
}

// TestAssetsPrecompressed checks that the gzip forms exist before any
// request: they are made once when the server is made.
func TestAssetsPrecompressed(t *testing.T) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	files, err := newAssetFS(sub, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for name, a := range files.files {
		if !compressible(a.contentType) || len(a.body) < minGzip {
			continue
		}
		n++
		if a.gz == nil {
			t.Errorf("%s (%s, %d bytes) has no gzip form", name, a.contentType, len(a.body))
		}
	}
	if n < 5 {
		t.Errorf("%d compressible files; want the page's scripts and styles", n)
	}
	if a := files.files["index.html"]; a == nil {
		t.Error("static/index.html was not read")
	}
	for _, path := range []string{"/static/vendor/", "/static/vendor", "/static/nosuch.js", "/static/../web.go"} {
		rec := httptest.NewRecorder()
		http.StripPrefix("/static", files).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 404 {
			t.Errorf("GET %s = %d; want 404 (folders are not listed, nothing outside is served)", path, rec.Code)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"x-gzip", true},
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"deflate, br", false},
		{"identity", false},
		{"*", true},
		{"*;q=0", false},
		{"*, gzip;q=0", false},
		{"gzip;q=0, *", false},
		{"gzip;q=bad", false},
	}
	for _, tc := range tests {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", tc.header, got, tc.want)
		}
	}
}
