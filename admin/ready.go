package admin

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// readyBody is the answer of GET /api/v1/ready.
type readyBody struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// GET /api/v1/ready: /readyz with the full reason, which may name Redis
// addresses and keys, so it is served here and not on the public listener.
func (s *Server) ready(c echo.Context) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return c.JSON(http.StatusServiceUnavailable, readyBody{Status: "not ready", Reason: err.Error()})
		}
	}
	return c.JSON(http.StatusOK, readyBody{Status: "ready"})
}
