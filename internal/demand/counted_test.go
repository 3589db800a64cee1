package demand

import (
	"fmt"
	"testing"
)

func TestCounted(t *testing.T) {
	tests := []struct {
		name  string
		steps []string // "+k" want, "-k" unwant
		want  string   // what reached the sink
	}{
		{"one user", []string{"+a", "-a"}, "[+a -a]"},
		{"two users", []string{"+a", "+a", "-a", "-a"}, "[+a -a]"},
		{"unwant of a key not wanted", []string{"-a", "+a", "-a", "-a"}, "[+a -a]"},
		{"again after the last unwant", []string{"+a", "-a", "+a"}, "[+a -a +a]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &recorder{}
			c := NewCounted(s)
			for _, st := range tc.steps {
				if st[0] == '+' {
					c.Want([]string{st[1:]})
				} else {
					c.Unwant([]string{st[1:]})
				}
			}
			if got := fmt.Sprint(s.log); got != tc.want {
				t.Errorf("sink got %s; want %s", got, tc.want)
			}
		})
	}
}

// recorder is a Sink that logs the calls it gets, as "+key" and "-key".
type recorder struct{ log []string }

func (r *recorder) Want(keys []string) {
	for _, k := range keys {
		r.log = append(r.log, "+"+k)
	}
}

func (r *recorder) Unwant(keys []string) {
	for _, k := range keys {
		r.log = append(r.log, "-"+k)
	}
}
