// Package envflag reads a command's flags from its environment too: every
// flag --some-name also reads PREFIX_SOME_NAME, and a flag given on the
// command line wins. The binaries in cmd/ share it.
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
			err = fmt.Errorf("invalid value %q for %s: %w", v, env, serr)
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

func isIn(s string, list []string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
