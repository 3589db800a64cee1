package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
)

// TestReady: GET /api/v1/ready answers 200 or 503 with the full reason,
// behind the same guard as the rest, and as the document says.
func TestReady(t *testing.T) {
	_, router := loadOpenAPI(t)
	detail := errors.New("redis: subscriber connection: dial tcp 127.0.0.1:17002: connect: connection refused")
	tests := []struct {
		name       string
		ready      func() error
		token      string
		from       string
		wantCode   int
		wantReason string
	}{
		{"ready", func() error { return nil }, "", loopback, 200, ""},
		{"no check", nil, "", loopback, 200, ""},
		{"not ready", func() error { return detail }, "", loopback, 503, detail.Error()},
		{"remote", func() error { return detail }, "", remote, 403, ""},
		{"without token", func() error { return detail }, "0123456789abcdef", loopback, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.token, newFakeBackend(), func(c *Config) { c.Ready = tc.ready })
			req := httptest.NewRequest("GET", "/api/v1/ready", nil)
			req.RemoteAddr, req.Host = tc.from, listenHost
			rec := httptest.NewRecorder()
			s.http.Handler.ServeHTTP(rec, req)
			body := rec.Body.Bytes()
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d (%s); want %d", rec.Code, body, tc.wantCode)
			}
			if tc.wantCode == 200 || tc.wantCode == 503 {
				var got readyBody
				if err := json.Unmarshal(body, &got); err != nil || got.Reason != tc.wantReason {
					t.Errorf("body %s (%v); want reason %q", body, err, tc.wantReason)
				}
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("FindRoute: %v", err)
			}
			in := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
				Status:                 rec.Code,
				Header:                 rec.Header(),
				Body:                   io.NopCloser(bytes.NewReader(body)),
				Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
			}
			if err := openapi3filter.ValidateResponse(t.Context(), in); err != nil {
				t.Errorf("answer %d %s does not match the document: %v", rec.Code, body, err)
			}
		})
	}
}
