package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileSetting is one setting of a configuration file.
type fileSetting struct {
	key   string // as written, nested keys joined with dots: binance.url
	value string // the flag's value: a scalar, or a list joined with commas
	line  int
}

// where is the file and line of s, then its key, for errors:
// "marketgate.yaml:7: binance.url".
func (s fileSetting) where(file string) string {
	return fmt.Sprintf("%s:%d: %s", file, s.line, s.key)
}

// notInFile are flags a configuration file cannot set.
var notInFile = []string{"config", "version"}

// readConfigFile reads the YAML configuration file path: a mapping whose
// keys are the flags' names (listen: ":8080"), where a mapping under a
// prefix of names stands for the names it completes (binance: {url: …}
// is binance-url). A list of scalars is joined with commas, for the
// comma-separated flags (allowed-origins: [a, b]). It returns the
// settings by flag name. Its errors name the file, the line and the key:
// an unknown key, a flag set twice, or a value of the wrong shape. Whether
// a value suits its flag is checked when it is set.
func readConfigFile(path string, fs *flag.FlagSet) (map[string]fileSetting, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return parseConfigFile(path, b, fs)
}

// parseConfigFile is readConfigFile of the contents b of the file path.
func parseConfigFile(path string, b []byte, fs *flag.FlagSet) (map[string]fileSetting, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return map[string]fileSetting{}, nil // empty: no settings
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: a second YAML document; the file holds one mapping of settings", path, more.Line)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return map[string]fileSetting{}, nil // comments only
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping of settings such as \"listen: :8080\", not %s", path, root.Line, kindName(root))
	}
	out := map[string]fileSetting{}
	if err := walkConfig(path, root, "", "", fs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// walkConfig adds the settings of the mapping m, whose keys complete the
// flag name prefix (written keyPrefix in the file), to out.
func walkConfig(path string, m *yaml.Node, prefix, keyPrefix string, fs *flag.FlagSet, out map[string]fileSetting) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		key := keyPrefix + k.Value
		if k.Kind != yaml.ScalarNode || k.Value == "<<" {
			return fmt.Errorf("%s:%d: key %q: keys are setting names; merge keys and complex keys are not supported", path, k.Line, key)
		}
		name := prefix + k.Value
		if v.Kind == yaml.MappingNode {
			if !hasFlagPrefix(fs, name+"-") {
				if fs.Lookup(name) != nil {
					return fmt.Errorf("%s:%d: %s: want a value, not a mapping", path, v.Line, key)
				}
				return unknownKey(path, k.Line, key, name, fs)
			}
			if err := walkConfig(path, v, name+"-", key+".", fs, out); err != nil {
				return err
			}
			continue
		}
		if slices.Contains(notInFile, name) {
			return fmt.Errorf("%s:%d: %s: cannot be set in a configuration file", path, k.Line, key)
		}
		f := fs.Lookup(name)
		if f == nil {
			return unknownKey(path, k.Line, key, name, fs)
		}
		if prev, ok := out[name]; ok {
			return fmt.Errorf("%s:%d: %s: %s is set already at line %d (as %s)", path, k.Line, key, name, prev.line, prev.key)
		}
		s := fileSetting{key: key, line: k.Line}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag != "!!null" {
				s.value = v.Value
			}
		case yaml.SequenceNode:
			if _, ok := f.Value.(flag.Getter).Get().(string); !ok {
				return fmt.Errorf("%s:%d: %s: a list, but the setting takes one value", path, v.Line, key)
			}
			var items []string
			for _, it := range v.Content {
				if it.Kind == yaml.AliasNode {
					it = it.Alias
				}
				if it.Kind != yaml.ScalarNode {
					return fmt.Errorf("%s:%d: %s: a list item must be a single value, not %s", path, it.Line, key, kindName(it))
				}
				items = append(items, it.Value)
			}
			s.value = strings.Join(items, ",")
		default:
			return fmt.Errorf("%s:%d: %s: want a value, not %s", path, v.Line, key, kindName(v))
		}
		out[name] = s
	}
	return nil
}

// unknownKey is the error for key (the flag name name), with a
// suggestion when it is a near miss: underscores for dashes, or one
// letter off.
func unknownKey(path string, line int, key, name string, fs *flag.FlagSet) error {
	msg := fmt.Sprintf("%s:%d: unknown key %q: no setting %s (marketgate --help lists them)", path, line, key, name)
	var near string
	fs.VisitAll(func(f *flag.Flag) {
		if near == "" && f.Name != name && !slices.Contains(notInFile, f.Name) && (f.Name == strings.ReplaceAll(strings.ToLower(name), "_", "-") || oneEditApart(f.Name, name)) {
			near = f.Name
		}
	})
	if near != "" {
		msg += fmt.Sprintf("; did you mean %s?", near)
	}
	return errors.New(msg)
}

// oneEditApart reports whether a and b differ by one inserted, deleted or
// replaced byte.
func oneEditApart(a, b string) bool {
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a)-len(b) > 1 || a == b {
		return false
	}
	i := 0
	for i < len(b) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return a[i+1:] == b[i+1:]
	}
	return a[i+1:] == b[i:]
}

// hasFlagPrefix reports whether some flag's name starts with prefix.
func hasFlagPrefix(fs *flag.FlagSet, prefix string) bool {
	found := false
	fs.VisitAll(func(f *flag.Flag) { found = found || strings.HasPrefix(f.Name, prefix) })
	return found
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "an empty document"
}
