// Package envflag reads a command's flags from its environment too: every
// flag --some-name also reads PREFIX_SOME_NAME, and a flag given on the
// command line wins. The binaries in cmd/ share it: [Parse] does both
// steps, [Fill] the environment's after the command's own fs.Parse.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Name is the environment variable of the flag name: prefix, then the
// name in upper case with '-' as '_'.
func Name(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse sets fs's flags from the environment (through lookup) and then
// from args, so the command line wins. Flags named in skip read no
// variable. On -h it writes usage line and the defaults to usage and
// returns flag.ErrHelp. A stray argument is an error.
func Parse(fs *flag.FlagSet, args []string, prefix string, lookup func(string) (string, bool), usage io.Writer, usageLine string, skip ...string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := Name(prefix, f.Name)
		v, ok := lookup(env)
		if !ok || err != nil || isIn(f.Name, skip) {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = &Error{Var: env, Flag: f.Name, Value: v, Err: serr}
		}
	})
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintln(usage, usageLine)
			fs.PrintDefaults()
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// Error is a variable's value that its flag refuses.
type Error struct {
	// Var is the variable, e.g. "MARKETGATE_MAX_CONNS".
	Var string
	// Flag is the flag's name, e.g. "max-conns".
	Flag string
	// Value is the variable's value.
	Value string
	// Err is the flag's error.
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("invalid value %q for %s: %v", e.Value, e.Var, e.Err)
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Fill sets each flag of fs that the command line did not set, and that
// skip does not name, from its variable (see [Name]), read through
// lookup. A variable that is set but empty sets the flag to "": an
// operator who writes MARKETGATE_BINANCE_FUTURES_URL= means it. Call it
// after fs.Parse, so the command line wins. It visits the flags in
// lexical order and stops at the first value a flag refuses, returning an
// [*Error]; the names of the flags it set are returned either way.
func Fill(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool), skip ...string) ([]string, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var filled []string
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || isIn(f.Name, skip) {
			return
		}
		env := Name(prefix, f.Name)
		if v, ok := lookup(env); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = &Error{Var: env, Flag: f.Name, Value: v, Err: serr}
				return
			}
			filled = append(filled, f.Name)
		}
	})
	return filled, err
}

// Unknown returns, sorted, the names among environ (KEY=value pairs, as
// from os.Environ, or bare names) that start with prefix but are the
// variable of none of fs's flags, or of one that skip names: typos such as
// MARKETGATE_MAX_CONN, which would otherwise be ignored without a word.
func Unknown(fs *flag.FlagSet, prefix string, environ []string, skip ...string) []string {
	known := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if !isIn(f.Name, skip) {
			known[Name(prefix, f.Name)] = true
		}
	})
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, prefix) && !known[name] && !isIn(name, out) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func isIn(s string, list []string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
