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

func TestFill(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantErr *Error
	}{
		{"default", nil, nil, 1, nil},
		{"from the environment", nil, map[string]string{"T_MAX_CONNS": "5"}, 5, nil},
		{"the flag wins", []string{"--max-conns", "7"}, map[string]string{"T_MAX_CONNS": "5"}, 7, nil},
		{"the flag wins over a bad variable", []string{"--max-conns", "7"}, map[string]string{"T_MAX_CONNS": "five"}, 7, nil},
		{"empty is a value", nil, map[string]string{"T_MAX_CONNS": ""}, 0, &Error{Var: "T_MAX_CONNS", Flag: "max-conns", Value: ""}},
		{"bad variable", nil, map[string]string{"T_MAX_CONNS": "five"}, 0, &Error{Var: "T_MAX_CONNS", Flag: "max-conns", Value: "five"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			n := fs.Int("max-conns", 1, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			_, err := Fill(fs, "T_", func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.wantErr != nil {
				e, ok := errors.AsType[*Error](err)
				if !ok || e.Var != tc.wantErr.Var || e.Flag != tc.wantErr.Flag || e.Value != tc.wantErr.Value || e.Err == nil {
					t.Fatalf("Fill = %v; want an *Error for %s=%q of --%s", err, tc.wantErr.Var, tc.wantErr.Value, tc.wantErr.Flag)
				}
				return
			}
			if err != nil || *n != tc.want {
				t.Fatalf("Fill = %v, max-conns %d; want nil, %d", err, *n, tc.want)
			}
		})
	}
}

func TestFillEmptyString(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	url := fs.String("futures-url", "wss://example", "")
	secret := fs.String("secret", "s", "")
	env := map[string]string{"T_FUTURES_URL": "", "T_SECRET": "x"}
	filled, err := Fill(fs, "T_", func(k string) (string, bool) { v, ok := env[k]; return v, ok }, "secret")
	if err != nil || *url != "" || *secret != "s" || len(filled) != 1 || filled[0] != "futures-url" {
		t.Fatalf("Fill = %q, %v; futures-url %q, secret %q; want [futures-url], nil, empty, s", filled, err, *url, *secret)
	}
}

func TestUnknown(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Int("max-conns", 1, "")
	fs.Bool("version", false, "")
	environ := []string{"T_MAX_CONNS=5", "T_MAX_CONN=5", "HOME=/root", "T_VERSION=1", "T_EMPTY=", "T_MAX_CONN=6", "T_BARE"}
	got := Unknown(fs, "T_", environ, "version")
	want := []string{"T_BARE", "T_EMPTY", "T_MAX_CONN", "T_VERSION"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Unknown = %q; want %q", got, want)
	}
}
