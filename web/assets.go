package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// asset is one embedded file ready to serve: its bytes, their gzip form
// (made once, when the asset is made, never per request) and the validators
// a browser revalidates with. An asset is immutable and safe for concurrent
// use.
type asset struct {
	contentType string
	body        []byte
	etag        string // strong, of body: "<sha256 prefix>"
	gz          []byte // body gzipped; nil when that would not be smaller
	gzETag      string // strong, of gz: "<sha256 prefix>-gz"
	modTime     time.Time
}

// minGzip is the smallest body worth compressing: below it the gzip header
// and trailer (18 bytes) and the extra Vary make the win negligible.
const minGzip = 512

// newAsset makes an asset of body. An empty contentType is derived from
// name's extension, else sniffed from body.
func newAsset(name, contentType string, body []byte, modTime time.Time) (*asset, error) {
	if contentType == "" {
		contentType = typeOf(name, body)
	}
	sum := sha256.Sum256(body)
	tag := base64.RawURLEncoding.EncodeToString(sum[:12])
	a := &asset{contentType: contentType, body: body, etag: `"` + tag + `"`, modTime: modTime}
	if len(body) >= minGzip && compressible(contentType) {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if _, err := zw.Write(body); err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip %s: %w", name, err)
		}
		if buf.Len() < len(body) {
			a.gz = buf.Bytes()
			a.gzETag = `"` + tag + `-gz"`
		}
	}
	return a, nil
}

// ServeHTTP sends the asset, gzipped when the request accepts gzip and that
// is smaller. Each form has its own strong ETag, so a cache never mixes
// them; If-None-Match (and If-Modified-Since, Range, HEAD) are answered by
// [http.ServeContent]. Cache-Control: no-cache makes browsers revalidate,
// which costs a 304 and no body while the binary is unchanged.
func (a *asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	body, etag := a.body, a.etag
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gz, a.gzETag
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, "", a.modTime, bytes.NewReader(body))
}

// assetFS serves every regular file of a file system as an [asset], all made
// when the assetFS is made. A path ending in "/" serves that folder's
// index.html; folders are never listed.
type assetFS struct {
	files map[string]*asset // by slash-separated name within the file system
}

// newAssetFS reads every file of fsys into an assetFS. It reads the files
// once: fsys is meant to be embedded, so they never change.
func newAssetFS(fsys fs.FS, modTime time.Time) (*assetFS, error) {
	s := &assetFS{files: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		a, err := newAsset(name, "", b, modTime)
		if err != nil {
			return err
		}
		s.files[name] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: assets: %w", err)
	}
	return s, nil
}

// file returns the handler of one file of s, which must exist: the
// callers name files they embed, so a missing one is a programming error
// that the package's tests catch.
func (s *assetFS) file(name string) http.Handler {
	if a := s.files[name]; a != nil {
		return a
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "web: no embedded file "+name, http.StatusInternalServerError)
	})
}

// ServeHTTP serves the file that r's URL path names (after any
// [http.StripPrefix]), or 404.
func (s *assetFS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "" || strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	a := s.files[name]
	if a == nil {
		http.NotFound(w, r)
		return
	}
	a.ServeHTTP(w, r)
}

// typeOf is the Content-Type of a file named name: by its extension (the
// few a browser must get right are fixed here rather than left to the
// host's MIME tables), else sniffed.
func typeOf(name string, body []byte) string {
	switch ext := path.Ext(name); ext {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".ts":
		return "application/typescript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".json":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".md", ".LICENSE", ".NOTICE":
		return "text/plain; charset=utf-8"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return http.DetectContentType(body)
	}
}

// compressible reports whether a body of type ct gains from gzip: text
// does, images and fonts in compressed formats do not.
func compressible(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	switch mt = strings.TrimSpace(mt); {
	case strings.HasPrefix(mt, "text/"):
		return true
	case mt == "application/javascript", mt == "application/json", mt == "application/typescript", mt == "image/svg+xml":
		return true
	}
	return false
}

// acceptsGzip reports whether an Accept-Encoding header value accepts gzip:
// gzip (or x-gzip, or *) listed with a q-value above zero.
func acceptsGzip(header string) bool {
	star := false
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "x-gzip" && coding != "*" {
			continue
		}
		ok := true
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(k, "q") {
				q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				ok = err == nil && q > 0
			}
		}
		if coding == "*" {
			star = ok
		} else {
			// An explicit gzip entry overrides *.
			return ok
		}
	}
	return star
}

// assetTime is the Last-Modified of the embedded files: the commit time
// the binary was built from (vcs.time, when the build recorded it), so that
// every node of one build agrees, else now (to the second), which changes
// with each start; ETags, which browsers send too, stay the same either
// way.
func assetTime(now func() time.Time) time.Time {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					return t
				}
			}
		}
	}
	return now().UTC().Truncate(time.Second)
}
