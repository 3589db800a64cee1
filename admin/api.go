package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/marketgate/marketgate/cluster"
	"github.com/marketgate/marketgate/downstream"
	"github.com/marketgate/marketgate/upstream"
)

// Backend is what the control API reads and changes: the node's parts,
// as gateway.Gateway delegates to them. Its methods are called concurrently,
// once per request, with the request's context, and must return when it
// ends. Their errors choose the answer as [ErrInvalid] and [ErrNotFound]
// say; any other answers 500. Nil slices are answered as empty lists.
type Backend interface {
	// Streams lists this node's streams, sorted by key: those its clients
	// subscribe to and those pinned on it.
	Streams(ctx context.Context) ([]StreamInfo, error)
	// Pin keeps stream subscribed upstream while no client wants it. A
	// key that does not validate is [ErrInvalid], with the validation's
	// text; pinning a pinned stream is no error.
	Pin(ctx context.Context, stream string) error
	// Unpin removes a pin set by Pin; a stream not pinned is
	// [ErrNotFound].
	Unpin(ctx context.Context, stream string) error
	// Upstreams returns the status of each exchange feed this node runs.
	Upstreams(ctx context.Context) ([]upstream.Status, error)
	// Nodes lists the cluster's live nodes, sorted by ID; a node without
	// a cluster lists itself.
	Nodes(ctx context.Context) ([]cluster.NodeInfo, error)
	// Clients returns this node's open client connections sorted by id,
	// from offset (>= 0) on and at most limit (1 to 1000) of them, and
	// the number of open connections (as [downstream.Server.Clients]).
	Clients(ctx context.Context, offset, limit int) ([]downstream.ClientInfo, int, error)
	// Disconnect closes the client connection with id (as
	// [downstream.Server.Disconnect]); false when there is none.
	Disconnect(ctx context.Context, id uint64) (bool, error)
	// DisconnectUser closes every client connection of user (the sub of
	// their tokens) on this node, as Disconnect closes one, and returns
	// how many (as [downstream.Server.DisconnectUser]).
	// In a cluster it also tells the other nodes to do so and returns
	// how many were told; 0 on a single node.
	DisconnectUser(ctx context.Context, user string) (disconnected int, otherNodes int64, err error)
}

// StreamInfo describes one stream of this node.
type StreamInfo struct {
	// Stream is the stream key, e.g. "binance:btcusdt@trade".
	Stream string `json:"stream"`
	// Subscribers counts this node's clients subscribed to it.
	Subscribers int `json:"subscribers"`
	// Pinned reports that it is pinned on this node.
	Pinned bool `json:"pinned"`
	// MessagesPerSecond is its message rate on this node (over the last
	// whole 10 s), and LastMessage when its last message was delivered.
	MessagesPerSecond float64   `json:"messages_per_second"`
	LastMessage       time.Time `json:"last_message,omitzero"`
	// Owner is the node that carries the stream's exchange upstream, where
	// known.
	Owner string `json:"owner,omitempty"`
}

// Limits of GET /api/v1/clients.
const (
	defaultClientsLimit = 100
	maxClientsLimit     = 1000
)

// The answers of the control API. Lists are wrapped in an object so that
// fields can be added next to them.
type (
	streamList struct {
		Streams []StreamInfo `json:"streams"`
	}
	pinState struct {
		Stream string `json:"stream"`
		Pinned bool   `json:"pinned"`
	}
	upstreamList struct {
		Upstreams []upstream.Status `json:"upstreams"`
	}
	nodeList struct {
		Nodes []cluster.NodeInfo `json:"nodes"`
		Self  string             `json:"self"`
	}
	clientPage struct {
		Clients []downstream.ClientInfo `json:"clients"`
		Total   int                     `json:"total"`
		Offset  int                     `json:"offset"`
		Limit   int                     `json:"limit"`
	}
	userDisconnected struct {
		User         string `json:"user"`
		Disconnected int    `json:"disconnected"` // on this node
		OtherNodes   int64  `json:"other_nodes"`  // told to do the same
	}
	disconnected struct {
		ID           uint64 `json:"id"`
		Disconnected bool   `json:"disconnected"`
	}
)

// routeAPI adds the routes answered by the Backend.
func (s *Server) routeAPI() {
	e := s.echo
	e.GET("/api/v1/streams", s.listStreams)
	e.PUT("/api/v1/streams/:stream", s.pin)
	e.DELETE("/api/v1/streams/:stream", s.unpin)
	e.GET("/api/v1/upstreams", s.listUpstreams)
	e.GET("/api/v1/nodes", s.listNodes)
	e.GET("/api/v1/clients", s.listClients)
	e.DELETE("/api/v1/clients/:id", s.disconnect)
	e.DELETE("/api/v1/users/:user", s.disconnectUser)
}

// backendError maps a Backend's error to the answer: 400, 404, or 500
// with no details (logged here).
func (s *Server) backendError(op string, err error) error {
	switch {
	case errors.Is(err, ErrInvalid):
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotFound):
		return echo.NewHTTPError(http.StatusNotFound, err.Error())
	}
	s.cfg.Logger.Error("control API: "+op, "err", err)
	return echo.NewHTTPError(http.StatusInternalServerError, op+": internal error (logged)")
}

// GET /api/v1/streams
func (s *Server) listStreams(c echo.Context) error {
	list, err := s.cfg.Backend.Streams(c.Request().Context())
	if err != nil {
		return s.backendError("streams", err)
	}
	return c.JSON(http.StatusOK, streamList{Streams: nonNil(list)})
}

// streamParam returns the path's stream key, unescaped: keys hold ':' and
// '@', which a client may send as is or as %3A and %40. The key is the
// rest of the path (echo's last parameter takes it, '/' included); an
// empty one does not match the route.
func streamParam(c echo.Context) (string, error) {
	key := c.Param("stream")
	// echo routes on the escaped path when the request's differs from
	// the default escaping, and then its parameters are escaped.
	if c.Request().URL.RawPath != "" {
		var err error
		if key, err = url.PathUnescape(key); err != nil {
			return "", echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("stream key: %v", err))
		}
	}
	return key, nil
}

// PUT /api/v1/streams/{stream}
func (s *Server) pin(c echo.Context) error {
	key, err := streamParam(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Backend.Pin(c.Request().Context(), key); err != nil {
		return s.backendError("pin", err)
	}
	s.cfg.Logger.Info("stream pinned", "stream", key, "remote", c.Request().RemoteAddr)
	return c.JSON(http.StatusOK, pinState{Stream: key, Pinned: true})
}

// DELETE /api/v1/streams/{stream}
func (s *Server) unpin(c echo.Context) error {
	key, err := streamParam(c)
	if err != nil {
		return err
	}
	if err := s.cfg.Backend.Unpin(c.Request().Context(), key); err != nil {
		return s.backendError("unpin", err)
	}
	s.cfg.Logger.Info("stream unpinned", "stream", key, "remote", c.Request().RemoteAddr)
	return c.JSON(http.StatusOK, pinState{Stream: key, Pinned: false})
}

// GET /api/v1/upstreams
func (s *Server) listUpstreams(c echo.Context) error {
	list, err := s.cfg.Backend.Upstreams(c.Request().Context())
	if err != nil {
		return s.backendError("upstreams", err)
	}
	list = slices.Clone(nonNil(list)) // the Backend's may be shared
	for i := range list {
		list[i].Shards = nonNil(list[i].Shards)
	}
	return c.JSON(http.StatusOK, upstreamList{Upstreams: list})
}

// GET /api/v1/nodes
func (s *Server) listNodes(c echo.Context) error {
	list, err := s.cfg.Backend.Nodes(c.Request().Context())
	if err != nil {
		return s.backendError("nodes", err)
	}
	list = slices.Clone(nonNil(list))
	for i := range list {
		list[i].Owns = nonNil(list[i].Owns)
	}
	return c.JSON(http.StatusOK, nodeList{Nodes: list, Self: s.cfg.NodeID})
}

// GET /api/v1/clients?offset=&limit=
func (s *Server) listClients(c echo.Context) error {
	offset, err := queryInt(c, "offset", 0, 0, math.MaxInt)
	if err != nil {
		return err
	}
	limit, err := queryInt(c, "limit", defaultClientsLimit, 1, maxClientsLimit)
	if err != nil {
		return err
	}
	list, total, err := s.cfg.Backend.Clients(c.Request().Context(), offset, limit)
	if err != nil {
		return s.backendError("clients", err)
	}
	list = slices.Clone(nonNil(list))
	for i := range list {
		list[i].Streams = nonNil(list[i].Streams)
	}
	return c.JSON(http.StatusOK, clientPage{Clients: list, Total: total, Offset: offset, Limit: limit})
}

// queryInt returns the query parameter name as an integer in [lo, hi],
// def when it is absent or empty, or a 400 error.
func queryInt(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		want := fmt.Sprintf("an integer from %d to %d", lo, hi)
		if hi == math.MaxInt {
			want = fmt.Sprintf("an integer of at least %d", lo)
		}
		return 0, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s must be %s; got %q", name, want, v))
	}
	return n, nil
}

// DELETE /api/v1/clients/{id}
func (s *Server) disconnect(c echo.Context) error {
	id, err := strconv.ParseUint(c.Param("id"), 10, 64)
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("client id must be a positive integer; got %q", c.Param("id")))
	}
	ok, err := s.cfg.Backend.Disconnect(c.Request().Context(), id)
	if err != nil {
		return s.backendError("disconnect", err)
	}
	if !ok {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no client %d on this node", id))
	}
	s.cfg.Logger.Info("client disconnected", "conn", id, "remote", c.Request().RemoteAddr)
	return c.JSON(http.StatusOK, disconnected{ID: id, Disconnected: true})
}

// DELETE /api/v1/users/{user}
func (s *Server) disconnectUser(c echo.Context) error {
	user := c.Param("user")
	if c.Request().URL.RawPath != "" {
		var err error
		if user, err = url.PathUnescape(user); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("user: %v", err))
		}
	}
	if user == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "user must not be empty")
	}
	n, nodes, err := s.cfg.Backend.DisconnectUser(c.Request().Context(), user)
	if err != nil {
		return s.backendError(fmt.Sprintf("disconnect user (%d connections closed on this node)", n), err)
	}
	// The user id is not logged: only how many connections went.
	s.cfg.Logger.Info("user's clients disconnected", "clients", n, "other_nodes", nodes, "remote", c.Request().RemoteAddr)
	return c.JSON(http.StatusOK, userDisconnected{User: user, Disconnected: n, OtherNodes: nodes})
}

// nonNil returns s, or an empty slice for nil: JSON lists are [], not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
