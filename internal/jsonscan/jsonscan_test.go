package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	trade = `{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100","T":1672515782136,"m":true,"M":true}`
	depth = `{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}`
)

func TestInt(t *testing.T) {
	ev := []byte(` { "e" : "trade", "E":1672515782136,"s":"B\"T}","t":12345,"x":{"t":1,"k":[1,{"t":2}]},"T":99,"u":-5 } `)
	tests := []struct {
		key  string
		want int64
		ok   bool
	}{
		{"t", 12345, true},
		{"T", 99, true},
		{"E", 1672515782136, true},
		{"u", -5, true},
		{"U", 0, false},
		{"e", 0, false}, // a string
		{"k", 0, false}, // nested only
	}
	for _, tc := range tests {
		got, ok := Int(ev, tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Int(%q) = %d, %v; want %d, %v", tc.key, got, ok, tc.want, tc.ok)
		}
	}
	for _, bad := range []string{``, `[1]`, `{"t":`, `{"t" 1}`, `{"a":"x,"t":1}`} {
		if v, ok := Int([]byte(bad), "t"); ok {
			t.Errorf("Int(%q) = %d; want not found", bad, v)
		}
	}
}

func TestSkipValue(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`{"t":1}`, 7},
		{`{"t":1] `, -1},
		{`[1,{"y":2}] x`, 11},
		{`"a\"b"`, 6},
		{`123,`, 3},
		{``, -1},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), 2 * MaxDepth},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), -1},
	}
	for _, tc := range tests {
		if got := SkipValue([]byte(tc.in), 0); got != tc.want {
			t.Errorf("SkipValue(%.20q) = %d; want %d", tc.in, got, tc.want)
		}
	}
}

func TestFieldAllocs(t *testing.T) {
	b := []byte(depth)
	if a := testing.AllocsPerRun(100, func() { Int(b, "u") }); a != 0 {
		t.Errorf("Int: %v allocs; want 0", a)
	}
}

func FuzzField(f *testing.F) {
	f.Add([]byte(trade), "t")
	f.Add([]byte(depth), "u")
	f.Add([]byte(`{"k":{"t":1},"E":2}`), "k")
	f.Fuzz(func(t *testing.T, obj []byte, key string) {
		v, ok := Field(obj, key)
		// encoding/json turns invalid UTF-8 in keys into U+FFFD, so it is
		// no oracle for them; exchange keys are ASCII.
		if !ok || !json.Valid(obj) || strings.ContainsAny(key, "\"\\") || !utf8.Valid(obj) || !utf8.ValidString(key) {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(obj, &m); err != nil {
			return // not an object
		}
		// encoding/json keeps the last of duplicate keys, Field the first.
		if n := bytes.Count(obj, []byte(`"`+key+`"`)); n != 1 {
			return
		}
		var want, got bytes.Buffer
		if json.Compact(&want, m[key]) != nil || json.Compact(&got, v) != nil || want.String() != got.String() {
			t.Fatalf("Field(%q, %q) = %q; encoding/json says %q", obj, key, v, m[key])
		}
	})
}
