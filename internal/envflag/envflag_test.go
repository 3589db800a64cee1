package envflag

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantErr string
	}{
		{"default", nil, nil, 1, ""},
		{"from the environment", nil, map[string]string{"T_MAX_CONNS": "5"}, 5, ""},
		{"the flag wins", []string{"--max-conns", "7"}, map[string]string{"T_MAX_CONNS": "5"}, 7, ""},
		{"skipped flag", nil, map[string]string{"T_SECRET": "x"}, 1, ""},
		{"bad variable", nil, map[string]string{"T_MAX_CONNS": "five"}, 0, `invalid value "five" for T_MAX_CONNS`},
		{"stray argument", []string{"extra"}, nil, 0, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			n := fs.Int("max-conns", 1, "")
			secret := fs.String("secret", "", "")
			err := Parse(fs, tc.args, "T_", func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, io.Discard, "usage", "secret")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse = %v; want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || *n != tc.want || *secret != "" {
				t.Fatalf("Parse = %v, max-conns %d, secret %q; want nil, %d, empty", err, *n, *secret, tc.want)
			}
		})
	}
	var usage strings.Builder
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("max-conns", 1, "connections")
	if err := Parse(fs, []string{"-h"}, "T_", func(string) (string, bool) { return "", false }, &usage, "Usage: t"); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "Usage: t") || !strings.Contains(usage.String(), "-max-conns") {
		t.Errorf("-h: %v, usage %q", err, usage.String())
	}
}
