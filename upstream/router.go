package upstream

import (
	"fmt"
	"strings"
)

// Exchange is an upstream that carries the streams of one exchange.
// Implementations are safe for concurrent use, and Subscribe and
// Unsubscribe never block.
type Exchange interface {
	// Name is the exchange's stream key prefix, e.g. "binance".
	Name() string
	// Validate checks an exchange stream name (without the prefix). Its
	// error message is meant for clients.
	Validate(name string) error
	// Subscribe adds validated names to the set the exchange keeps
	// subscribed upstream. Set semantics: reference counting is the
	// caller's.
	Subscribe(names []string)
	// Unsubscribe removes names from that set.
	Unsubscribe(names []string)
}

// Router maps gateway stream keys "<exchange>:<exchange stream name>", e.g.
// "binance:btcusdt@trade", to the [Exchange] that serves them. It is
// immutable after NewRouter and safe for concurrent use.
type Router struct {
	exchanges map[string]Exchange
}

// NewRouter returns a Router over exchanges. It panics if two exchanges
// share a name, a name is empty or contains ':', or an exchange is nil:
// those are wiring mistakes in main.
func NewRouter(exchanges ...Exchange) *Router {
	r := &Router{exchanges: make(map[string]Exchange, len(exchanges))}
	for _, ex := range exchanges {
		if ex == nil {
			panic("upstream: NewRouter: nil exchange")
		}
		name := ex.Name()
		if name == "" || strings.Contains(name, ":") {
			panic(fmt.Sprintf("upstream: NewRouter: invalid exchange name %q", name))
		}
		if _, dup := r.exchanges[name]; dup {
			panic(fmt.Sprintf("upstream: NewRouter: duplicate exchange %q", name))
		}
		r.exchanges[name] = ex
	}
	return r
}

// split returns the exchange and stream name of key.
func (r *Router) split(key string) (Exchange, string, error) {
	exName, name, ok := strings.Cut(key, ":")
	if !ok || exName == "" || name == "" {
		return nil, "", &ValidationError{Err: ErrInvalidKey, Value: key}
	}
	ex := r.exchanges[exName]
	if ex == nil {
		return nil, "", &ValidationError{Err: ErrUnknownExchange, Value: exName}
	}
	return ex, name, nil
}

// Validate checks a stream key: its form, its exchange and, through the
// exchange, the stream name. Messages are meant for clients, e.g.
// `unknown exchange "kraken"`, `invalid stream key "foo": want
// <exchange>:<stream>`, or the exchange's own.
func (r *Router) Validate(key string) error {
	ex, name, err := r.split(key)
	if err != nil {
		return err
	}
	return ex.Validate(name)
}

// Want subscribes keys, which the caller has validated, calling each
// exchange's Subscribe once with its names. Malformed keys and unknown
// exchanges are skipped.
func (r *Router) Want(keys []string) {
	for name, names := range r.group(keys) {
		r.exchanges[name].Subscribe(names)
	}
}

// Unwant unsubscribes keys, grouped by exchange like Want.
func (r *Router) Unwant(keys []string) {
	for name, names := range r.group(keys) {
		r.exchanges[name].Unsubscribe(names)
	}
}

// UnwantNow unsubscribes keys at once, grouped by exchange like Want:
// through UnsubscribeNow where the exchange has it (a [Feed] does), so that
// they do not linger, else through Unsubscribe.
func (r *Router) UnwantNow(keys []string) {
	for name, names := range r.group(keys) {
		if ex, ok := r.exchanges[name].(interface{ UnsubscribeNow([]string) }); ok {
			ex.UnsubscribeNow(names)
		} else {
			r.exchanges[name].Unsubscribe(names)
		}
	}
}

// group returns the stream names of keys by exchange name.
func (r *Router) group(keys []string) map[string][]string {
	groups := make(map[string][]string, len(r.exchanges))
	for _, key := range keys {
		ex, name, err := r.split(key)
		if err != nil {
			continue
		}
		groups[ex.Name()] = append(groups[ex.Name()], name)
	}
	return groups
}
