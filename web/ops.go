package web

import (
	"embed"
	"io/fs"
	"net/http"
)

// opsFiles is the ops page; it shares theme.css, theme.js and chart.js with
// the market page (sharedFiles).
//
//go:embed ops
var opsFiles embed.FS

// sharedFiles are the files of static/ that the ops page serves too.
var sharedFiles = map[string]bool{"theme.css": true, "theme.js": true, "chart.js": true}

// opsFS is the ops page's files with the shared ones of static/.
type opsFS struct{}

func (opsFS) Open(name string) (fs.File, error) {
	if sharedFiles[name] {
		return static.Open("static/" + name)
	}
	if name == "." {
		name = ""
	} else {
		name = "/" + name
	}
	return opsFiles.Open("ops" + name)
}

// OpsPage returns the handler of the ops page, which the control listener
// serves at /ops/: a dashboard of this node's control API (nodes,
// upstreams, streams, clients, live charts) with buttons to pin a stream,
// kick a client and drain the node. It holds no data; its script asks for
// the admin token and calls /api/v1/ with it.
func OpsPage() http.Handler {
	// pagePolicy: no framing matters most here, since its buttons drain
	// the node.
	files := pageHeaders(http.StripPrefix("/ops", http.FileServerFS(opsFS{})))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
