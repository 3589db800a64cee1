package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestTarget(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		listen  string
		want    string // empty: an error is wanted
		wantErr string
	}{
		{"default", nil, "", "http://127.0.0.1:8080/healthz", ""},
		{"listen port", nil, ":9000", "http://127.0.0.1:9000/healthz", ""},
		{"listen host and port", nil, "0.0.0.0:8081", "http://127.0.0.1:8081/healthz", ""},
		{"listen without port", nil, "8080", "", "want host:port"},
		{"url", []string{"http://127.0.0.1:1/readyz"}, ":9000", "http://127.0.0.1:1/readyz", ""},
		{"not a url", []string{"127.0.0.1:1"}, "", "", "not an http"},
		{"two args", []string{"http://a/", "http://b/"}, "", "", "at most one argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := target(tc.args, func(k string) string {
				if k == "MARKETGATE_LISTEN" {
					return tc.listen
				}
				return ""
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("target(%q, %q) = %q, %v; want an error containing %q", tc.args, tc.listen, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("target(%q, %q) = %q, %v; want %q", tc.args, tc.listen, got, err, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte(`{"status":"ok"}`))
			return
		}
		http.Error(w, `{"status":"not ready","reason":"draining"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	env := func(string) string { return "" }
	if err := run([]string{srv.URL + "/healthz"}, env); err != nil {
		t.Errorf("run(/healthz) = %v; want nil", err)
	}
	if err := run([]string{srv.URL + "/readyz"}, env); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "draining") {
		t.Errorf("run(/readyz) = %v; want the 503 and its reason", err)
	}
	srv.Close()
	if err := run([]string{srv.URL + "/healthz"}, env); err == nil {
		t.Error("run against a closed server = nil; want an error")
	}
	if err := run(nil, func(k string) string {
		return map[string]string{"MARKETGATE_LISTEN": ":1", "HEALTHCHECK_TIMEOUT": "soon"}[k]
	}); err == nil || !strings.Contains(err.Error(), "HEALTHCHECK_TIMEOUT") {
		t.Errorf("run with HEALTHCHECK_TIMEOUT=soon = %v; want an error naming it", err)
	}
}
