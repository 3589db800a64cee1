package binancesim

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds a small JSON parser whose error messages and positions
// imitate serde_json, which Binance's stream servers evidently use: their
// replies read "Invalid JSON: expected value at line 1 column 1" and
// "missing field `method` at line 1 column 73".
//
// Positions follow serde_json: "line" is 1-based; "column" is the byte
// offset within the line of the last byte consumed when the error was
// raised ("error") or of the byte looked at without consuming it
// ("peek error"), both counted from 1.

// jsonKind is the type of a parsed JSON value.
type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonBool
	jsonNumber
	jsonString
	jsonArray
	jsonObject
)

// jsonValue is one parsed JSON value with its byte span in the input.
type jsonValue struct {
	kind   jsonKind
	b      bool        // jsonBool
	s      string      // decoded jsonString, or the literal text of a jsonNumber
	items  []jsonValue // jsonArray
	fields []jsonField // jsonObject, in document order
	start  int         // offset of the value's first byte
	end    int         // offset just past the value's last byte
}

// jsonField is one member of a JSON object.
type jsonField struct {
	key    string
	keyEnd int // offset just past the key's closing quote
	value  jsonValue
}

// jsonError is a serde_json style syntax error.
type jsonError struct {
	msg    string
	offset int // serde position index; -1 means no position
}

// jsonMaxDepth is serde_json's default recursion limit.
const jsonMaxDepth = 128

// serde_json error texts.
const (
	errEOFList       = "EOF while parsing a list"
	errEOFObject     = "EOF while parsing an object"
	errEOFString     = "EOF while parsing a string"
	errEOFValue      = "EOF while parsing a value"
	errColon         = "expected `:`"
	errListComma     = "expected `,` or `]`"
	errObjectComma   = "expected `,` or `}`"
	errIdent         = "expected ident"
	errValue         = "expected value"
	errEscape        = "invalid escape"
	errNumber        = "invalid number"
	errCodePoint     = "invalid unicode code point"
	errControlChar   = "control character (\\u0000-\\u001F) found while parsing a string"
	errKeyString     = "key must be a string"
	errLoneSurrogate = "lone leading surrogate in hex escape"
	errTrailingComma = "trailing comma"
	errTrailingChars = "trailing characters"
	errRecursion     = "recursion limit exceeded"
)

// jsonParser parses one document. i is the number of bytes consumed.
type jsonParser struct {
	data  []byte
	i     int
	depth int
}

// parseJSON parses data as one JSON document followed only by whitespace.
func parseJSON(data []byte) (jsonValue, *jsonError) {
	p := &jsonParser{data: data}
	v, err := p.value()
	if err != nil {
		return v, err
	}
	if _, ok := p.skipSpace(); ok {
		return v, p.peekErr(errTrailingChars)
	}
	return v, nil
}

// serdePosition converts a serde position index into line and column.
func serdePosition(data []byte, idx int) (line, col int) {
	idx = min(idx, len(data))
	line, lineStart := 1, 0
	for j := 0; j < idx; j++ {
		if data[j] == '\n' {
			line++
			lineStart = j + 1
		}
	}
	return line, idx - lineStart
}

// format renders the error as serde_json displays it.
func (e *jsonError) format(data []byte) string {
	if e.offset < 0 {
		return e.msg
	}
	line, col := serdePosition(data, e.offset)
	return e.msg + " at line " + strconv.Itoa(line) + " column " + strconv.Itoa(col)
}

// err is serde's error(): positioned after the last consumed byte.
func (p *jsonParser) err(msg string) *jsonError { return &jsonError{msg: msg, offset: p.i} }

// peekErr is serde's peek_error(): positioned at the byte looked at.
func (p *jsonParser) peekErr(msg string) *jsonError {
	return &jsonError{msg: msg, offset: min(len(p.data), p.i+1)}
}

// skipSpace skips JSON whitespace and peeks at the next byte.
func (p *jsonParser) skipSpace() (byte, bool) {
	for p.i < len(p.data) {
		switch c := p.data[p.i]; c {
		case ' ', '\n', '\t', '\r':
			p.i++
		default:
			return c, true
		}
	}
	return 0, false
}

func (p *jsonParser) value() (jsonValue, *jsonError) {
	c, ok := p.skipSpace()
	if !ok {
		return jsonValue{}, p.peekErr(errEOFValue)
	}
	v := jsonValue{start: p.i}
	var err *jsonError
	switch {
	case c == 'n':
		p.i++
		err = p.ident("ull")
	case c == 't':
		p.i++
		v.kind, v.b = jsonBool, true
		err = p.ident("rue")
	case c == 'f':
		p.i++
		v.kind = jsonBool
		err = p.ident("alse")
	case c == '-' || (c >= '0' && c <= '9'):
		v.kind = jsonNumber
		err = p.number()
		v.s = string(p.data[v.start:p.i])
	case c == '"':
		p.i++
		v.kind = jsonString
		v.s, err = p.str()
	case c == '[':
		v.kind = jsonArray
		v.items, err = p.array()
	case c == '{':
		v.kind = jsonObject
		v.fields, err = p.object()
	default:
		return v, p.peekErr(errValue)
	}
	v.end = p.i
	return v, err
}

func (p *jsonParser) ident(rest string) *jsonError {
	for k := 0; k < len(rest); k++ {
		if p.i >= len(p.data) {
			return p.err(errEOFValue)
		}
		c := p.data[p.i]
		p.i++
		if c != rest[k] {
			return p.err(errIdent)
		}
	}
	return nil
}

func (p *jsonParser) isDigit() bool {
	return p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9'
}

func (p *jsonParser) number() *jsonError {
	if p.data[p.i] == '-' {
		p.i++
	}
	if p.i >= len(p.data) {
		return p.err(errNumber)
	}
	switch c := p.data[p.i]; {
	case c == '0':
		p.i++
		if p.isDigit() {
			return p.peekErr(errNumber)
		}
	case c >= '1' && c <= '9':
		for p.isDigit() {
			p.i++
		}
	default:
		p.i++
		return p.err(errNumber)
	}
	if p.i < len(p.data) && p.data[p.i] == '.' {
		p.i++
		if !p.isDigit() {
			if p.i >= len(p.data) {
				return p.peekErr(errEOFValue)
			}
			return p.peekErr(errNumber)
		}
		for p.isDigit() {
			p.i++
		}
	}
	if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		p.i++
		if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
			p.i++
		}
		if p.i >= len(p.data) {
			return p.err(errEOFValue)
		}
		if !p.isDigit() {
			p.i++
			return p.err(errNumber)
		}
		for p.isDigit() {
			p.i++
		}
	}
	return nil
}

// str parses a string body; the opening quote is consumed.
func (p *jsonParser) str() (string, *jsonError) {
	var out []byte
	start := p.i
	for {
		if p.i >= len(p.data) {
			return "", p.err(errEOFString)
		}
		c := p.data[p.i]
		switch {
		case c == '"':
			if out == nil {
				s := string(p.data[start:p.i])
				p.i++
				return s, nil
			}
			out = append(out, p.data[start:p.i]...)
			p.i++
			return string(out), nil
		case c == '\\':
			out = append(out, p.data[start:p.i]...)
			p.i++
			var err *jsonError
			if out, err = p.escape(out); err != nil {
				return "", err
			}
			start = p.i
		case c < 0x20:
			p.i++
			return "", p.err(errControlChar)
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, n := utf8.DecodeRune(p.data[p.i:])
			if r == utf8.RuneError && n <= 1 {
				p.i++
				return "", p.err(errCodePoint)
			}
			p.i += n
		}
	}
}

// escape decodes one escape sequence; the backslash is consumed.
func (p *jsonParser) escape(out []byte) ([]byte, *jsonError) {
	if p.i >= len(p.data) {
		return out, p.err(errEOFString)
	}
	c := p.data[p.i]
	p.i++
	switch c {
	case '"', '\\', '/':
		return append(out, c), nil
	case 'b':
		return append(out, '\b'), nil
	case 'f':
		return append(out, '\f'), nil
	case 'n':
		return append(out, '\n'), nil
	case 'r':
		return append(out, '\r'), nil
	case 't':
		return append(out, '\t'), nil
	case 'u':
		r, err := p.hex4()
		if err != nil {
			return out, err
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return out, p.err(errLoneSurrogate)
		case r >= 0xD800 && r <= 0xDBFF:
			if p.i+1 >= len(p.data) || p.data[p.i] != '\\' || p.data[p.i+1] != 'u' {
				return out, p.err(errLoneSurrogate)
			}
			p.i += 2
			r2, err := p.hex4()
			if err != nil {
				return out, err
			}
			r = utf16.DecodeRune(r, r2)
			if r == utf8.RuneError {
				return out, p.err(errLoneSurrogate)
			}
		}
		return utf8.AppendRune(out, r), nil
	}
	return out, p.err(errEscape)
}

func (p *jsonParser) hex4() (rune, *jsonError) {
	if p.i+4 > len(p.data) {
		p.i = len(p.data)
		return 0, p.err(errEOFString)
	}
	var r rune
	for k := 0; k < 4; k++ {
		c := p.data[p.i]
		p.i++
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, p.err(errEscape)
		}
	}
	return r, nil
}

func (p *jsonParser) enter() *jsonError {
	p.i++ // the opening bracket
	p.depth++
	if p.depth > jsonMaxDepth {
		return p.err(errRecursion)
	}
	return nil
}

func (p *jsonParser) array() ([]jsonValue, *jsonError) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	var items []jsonValue
	for first := true; ; first = false {
		c, ok := p.skipSpace()
		switch {
		case !ok:
			return items, p.peekErr(errEOFList)
		case c == ']':
			p.i++
			return items, nil
		case !first && c != ',':
			return items, p.peekErr(errListComma)
		case !first:
			p.i++
			if c, ok = p.skipSpace(); ok && c == ']' {
				return items, p.peekErr(errTrailingComma)
			}
		}
		v, err := p.value()
		items = append(items, v)
		if err != nil {
			return items, err
		}
	}
}

func (p *jsonParser) object() ([]jsonField, *jsonError) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	var fields []jsonField
	for first := true; ; first = false {
		c, ok := p.skipSpace()
		switch {
		case !ok:
			return fields, p.peekErr(errEOFObject)
		case c == '}':
			p.i++
			return fields, nil
		case !first && c != ',':
			return fields, p.peekErr(errObjectComma)
		case !first:
			p.i++
			c, ok = p.skipSpace()
		}
		switch {
		case !ok:
			return fields, p.peekErr(errEOFValue)
		case c == '}':
			return fields, p.peekErr(errTrailingComma)
		case c != '"':
			return fields, p.peekErr(errKeyString)
		}
		p.i++
		key, err := p.str()
		if err != nil {
			return fields, err
		}
		f := jsonField{key: key, keyEnd: p.i}
		c, ok = p.skipSpace()
		switch {
		case !ok:
			return fields, p.peekErr(errEOFObject)
		case c != ':':
			return fields, p.peekErr(errColon)
		}
		p.i++
		f.value, err = p.value()
		fields = append(fields, f)
		if err != nil {
			return fields, err
		}
	}
}

// serdeUnexpected describes v the way serde's invalid-type errors do.
func serdeUnexpected(v jsonValue) string {
	switch v.kind {
	case jsonNull:
		return "null"
	case jsonBool:
		return "boolean `" + strconv.FormatBool(v.b) + "`"
	case jsonNumber:
		for k := 0; k < len(v.s); k++ {
			if c := v.s[k]; c == '.' || c == 'e' || c == 'E' {
				f, _ := strconv.ParseFloat(v.s, 64)
				return "floating point `" + strconv.FormatFloat(f, 'g', -1, 64) + "`"
			}
		}
		return "integer `" + v.s + "`"
	case jsonString:
		return "string " + strconv.Quote(v.s)
	case jsonArray:
		return "sequence"
	}
	return "map"
}

// serdeTypeErrorOffset is where serde reports an invalid-type error for v:
// after a scalar, which it consumes, or at the opening bracket of a
// container, which it only peeks at.
func serdeTypeErrorOffset(v jsonValue) int {
	if v.kind == jsonArray || v.kind == jsonObject {
		return v.start + 1
	}
	return v.end
}
