package admin

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// loadOpenAPI loads and validates the embedded document and returns a
// router over it.
func loadOpenAPI(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.json does not validate: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// TestOpenAPIDocumentsEveryRoute checks that the document and the server
// have the same operations, with the Backend and Metrics set.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	s := newServer(t, "", newFakeBackend(), nil)
	var served []string
	for _, r := range s.echo.Routes() {
		// echo's :name is OpenAPI's {name}.
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if name, ok := strings.CutPrefix(p, ":"); ok {
				parts[i] = "{" + name + "}"
			}
		}
		served = append(served, r.Method+" "+strings.Join(parts, "/"))
	}
	slices.Sort(documented)
	slices.Sort(served)
	served = slices.Compact(served)
	if !slices.Equal(documented, served) {
		t.Errorf("documented operations\n  %s\nserved\n  %s", strings.Join(documented, "\n  "), strings.Join(served, "\n  "))
	}
}

// TestOpenAPIResponses calls every route through the real handler (over a
// fake Backend) in its success and error cases and validates each answer,
// status and body, against the document.
func TestOpenAPIResponses(t *testing.T) {
	_, router := loadOpenAPI(t)
	const token = "s3cret-s3cret-s3cret"
	bearer := "Bearer " + token
	tests := []struct {
		name     string
		token    string // configured
		from     string
		auth     string
		fail     string // the Backend operation that fails
		noBack   bool   // no Backend, no Metrics
		method   string
		target   string
		wantCode int
	}{
		{"drain", token, remote, bearer, "", false, "POST", "/api/v1/drain", 202},
		{"drain without token", token, remote, "", "", false, "POST", "/api/v1/drain", 401},
		{"drain remote", "", remote, "", "", false, "POST", "/api/v1/drain", 403},
		{"openapi", "", loopback, "", "", false, "GET", "/api/v1/openapi.json", 200},
		{"openapi wrong token", token, loopback, "Bearer x", "", false, "GET", "/api/v1/openapi.json", 401},
		{"openapi remote", "", remote, "", "", false, "GET", "/api/v1/openapi.json", 403},

		{"streams", token, remote, bearer, "", false, "GET", "/api/v1/streams", 200},
		{"streams without token", token, remote, "", "", false, "GET", "/api/v1/streams", 401},
		{"streams remote", "", remote, "", "", false, "GET", "/api/v1/streams", 403},
		{"streams failing", "", loopback, "", "streams", false, "GET", "/api/v1/streams", 500},
		{"pin", "", loopback, "", "", false, "PUT", "/api/v1/streams/binance:btcusdt@trade", 200},
		{"pin escaped", "", loopback, "", "", false, "PUT", "/api/v1/streams/binance%3Abtcusdt%40trade", 200},
		{"pin invalid", "", loopback, "", "", false, "PUT", "/api/v1/streams/kraken:x@trade", 400},
		{"pin without token", token, loopback, "", "", false, "PUT", "/api/v1/streams/binance:btcusdt@trade", 401},
		{"pin remote", "", remote, "", "", false, "PUT", "/api/v1/streams/binance:btcusdt@trade", 403},
		{"pin failing", "", loopback, "", "pin", false, "PUT", "/api/v1/streams/binance:btcusdt@trade", 500},
		{"unpin", "", loopback, "", "", false, "DELETE", "/api/v1/streams/binance:ethusdt@depth5@100ms", 200},
		{"unpin not pinned", "", loopback, "", "", false, "DELETE", "/api/v1/streams/binance%3Abtcusdt%40trade", 404},
		{"unpin without token", token, loopback, "", "", false, "DELETE", "/api/v1/streams/binance:btcusdt@trade", 401},
		{"unpin remote", "", remote, "", "", false, "DELETE", "/api/v1/streams/binance:btcusdt@trade", 403},
		{"unpin failing", "", loopback, "", "unpin", false, "DELETE", "/api/v1/streams/binance:btcusdt@trade", 500},

		{"upstreams", "", loopback, "", "", false, "GET", "/api/v1/upstreams", 200},
		{"upstreams without token", token, loopback, "", "", false, "GET", "/api/v1/upstreams", 401},
		{"upstreams remote", "", remote, "", "", false, "GET", "/api/v1/upstreams", 403},
		{"upstreams failing", "", loopback, "", "upstreams", false, "GET", "/api/v1/upstreams", 500},
		{"nodes", "", loopback, "", "", false, "GET", "/api/v1/nodes", 200},
		{"nodes without token", token, loopback, "", "", false, "GET", "/api/v1/nodes", 401},
		{"nodes remote", "", remote, "", "", false, "GET", "/api/v1/nodes", 403},
		{"nodes failing", "", loopback, "", "nodes", false, "GET", "/api/v1/nodes", 500},

		{"clients", "", loopback, "", "", false, "GET", "/api/v1/clients", 200},
		{"clients page", "", loopback, "", "", false, "GET", "/api/v1/clients?offset=1&limit=1", 200},
		{"clients past the end", "", loopback, "", "", false, "GET", "/api/v1/clients?offset=10", 200},
		{"clients limit too big", "", loopback, "", "", false, "GET", "/api/v1/clients?limit=1001", 400},
		{"clients bad offset", "", loopback, "", "", false, "GET", "/api/v1/clients?offset=-1", 400},
		{"clients without token", token, loopback, "", "", false, "GET", "/api/v1/clients", 401},
		{"clients remote", "", remote, "", "", false, "GET", "/api/v1/clients", 403},
		{"clients failing", "", loopback, "", "clients", false, "GET", "/api/v1/clients", 500},
		{"disconnect", "", loopback, "", "", false, "DELETE", "/api/v1/clients/1", 200},
		{"disconnect unknown", "", loopback, "", "", false, "DELETE", "/api/v1/clients/99", 404},
		{"disconnect not a number", "", loopback, "", "", false, "DELETE", "/api/v1/clients/x", 400},
		{"disconnect without token", token, loopback, "", "", false, "DELETE", "/api/v1/clients/1", 401},
		{"disconnect remote", "", remote, "", "", false, "DELETE", "/api/v1/clients/1", 403},
		{"disconnect failing", "", loopback, "", "disconnect", false, "DELETE", "/api/v1/clients/1", 500},

		{"metrics", "", loopback, "", "", false, "GET", "/metrics", 200},
		{"metrics not served", "", loopback, "", "", true, "GET", "/metrics", 404},
		{"metrics without token", token, loopback, "", "", false, "GET", "/metrics", 401},
		{"metrics remote", "", remote, "", "", false, "GET", "/metrics", 403},

		{"pprof redirect", "", loopback, "", "", false, "GET", "/debug/pprof", 301},
		{"pprof index", "", loopback, "", "", false, "GET", "/debug/pprof/", 200},
		{"pprof index without token", token, loopback, "", "", false, "GET", "/debug/pprof/", 401},
		{"pprof index remote", "", remote, "", "", false, "GET", "/debug/pprof/", 403},
		{"pprof cmdline", "", loopback, "", "", false, "GET", "/debug/pprof/cmdline", 200},
		{"pprof symbol", "", loopback, "", "", false, "GET", "/debug/pprof/symbol", 200},
		{"pprof symbol lookup", "", loopback, "", "", false, "POST", "/debug/pprof/symbol", 200},
		{"pprof heap", "", loopback, "", "", false, "GET", "/debug/pprof/heap", 200},
		{"pprof heap text", "", loopback, "", "", false, "GET", "/debug/pprof/heap?debug=1", 200},
		{"pprof goroutine", "", loopback, "", "", false, "GET", "/debug/pprof/goroutine", 200},
		{"pprof heap remote", "", remote, "", "", false, "GET", "/debug/pprof/heap", 403},
		{"pprof profile without token", token, loopback, "", "", false, "GET", "/debug/pprof/profile", 401},
		{"pprof trace remote", "", remote, "", "", false, "GET", "/debug/pprof/trace", 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b Backend
			if !tc.noBack {
				fb := newFakeBackend()
				if tc.fail != "" {
					fb.fail[tc.fail] = errRedisDown
				}
				b = fb
			}
			s := newServer(t, tc.token, b, func(c *Config) {
				if tc.noBack {
					c.Metrics = nil
				}
			})
			req := newRequest(tc.method, tc.target, tc.from, tc.auth)
			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, req)
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantCode {
				t.Fatalf("status %d (%.300s); want %d", res.StatusCode, body, tc.wantCode)
			}

			validateAnswer(t, router, req, res.StatusCode, res.Header, body)
		})
	}
}

// validateAnswer fails t unless the answer (status, header, body) to req
// is one the document allows.
func validateAnswer(t *testing.T, router routers.Router, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("FindRoute(%s %s): %v", req.Method, req.URL, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(t.Context(), in); err != nil {
		t.Errorf("answer %d %.300s does not match the document: %v", status, body, err)
	}
}

// TestOpenAPIServed checks that the served document is the embedded one.
func TestOpenAPIServed(t *testing.T) {
	s := newServer(t, "", nil, nil)
	rec := serve(s, http.MethodGet, "/api/v1/openapi.json", loopback, "")
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), openAPI) || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("status %d, Content-Type %q, %d bytes; want 200, the document", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}
