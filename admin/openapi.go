package admin

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPI is the OpenAPI 3 document of the control listener. Its tests
// validate every answer of every route against it.
//
//go:embed openapi.json
var openAPI []byte

// GET /api/v1/openapi.json
func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPI)
}
