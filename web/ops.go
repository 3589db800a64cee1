package web

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"time"
)

// opsFiles is the ops page; it shares theme.css, theme.js and chart.js with
// the market page (sharedFiles).
//
//go:embed ops
var opsFiles embed.FS

// sharedFiles are the files of static/ that the ops page serves too.
var sharedFiles = map[string]bool{"theme.css": true, "theme.js": true, "chart.js": true}

// opsAssets is the ops page's files with the shared ones of static/.
func opsAssets(modTime time.Time) (*assetFS, error) {
	sub, err := fs.Sub(opsFiles, "ops")
	if err != nil {
		return nil, fmt.Errorf("web: ops page: %w", err)
	}
	files, err := newAssetFS(sub, modTime)
	if err != nil {
		return nil, err
	}
	for name := range sharedFiles {
		b, err := fs.ReadFile(static, "static/"+name)
		if err != nil {
			return nil, fmt.Errorf("web: ops page: %w", err)
		}
		if files.files[name], err = newAsset(name, "", b, modTime); err != nil {
			return nil, fmt.Errorf("web: ops page: %w", err)
		}
	}
	return files, nil
}

// OpsPage returns the handler of the ops page, which the control listener
// serves at /ops/: a dashboard of this node's control API (nodes,
// upstreams, streams, clients, live charts) with buttons to pin a stream,
// kick a client and drain the node. It holds no data; its script asks for
// the admin token and calls /api/v1/ with it.
func OpsPage() http.Handler {
	// pagePolicy: no framing matters most here, since its buttons drain
	// the node.
	files, err := opsAssets(assetTime(time.Now))
	if err != nil {
		// The files are embedded: reading them cannot fail in a binary
		// whose tests passed.
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		})
	}
	return pageHeaders(http.StripPrefix("/ops", files))
}
