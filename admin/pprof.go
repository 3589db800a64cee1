package admin

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// pprofProfiles are the runtime/pprof profiles served by name.
var pprofProfiles = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// routePprof serves net/http/pprof under /debug/pprof/, each handler named
// here: importing net/http/pprof also registers them on
// http.DefaultServeMux, which the gateway never serves. cmdline is what
// /debug/pprof/cmdline answers instead of os.Args, which may hold secrets.
func routePprof(e *echo.Echo, cmdline []string) {
	wrap := func(f http.HandlerFunc) echo.HandlerFunc { return echo.WrapHandler(f) }
	e.GET("/debug/pprof", func(c echo.Context) error {
		return c.Redirect(http.StatusMovedPermanently, "/debug/pprof/")
	})
	e.GET("/debug/pprof/", wrap(pprof.Index))
	e.GET("/debug/pprof/cmdline", func(c echo.Context) error {
		// As pprof.Cmdline, but not os.Args.
		c.Response().Header().Set("X-Content-Type-Options", "nosniff")
		return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(strings.Join(cmdline, "\x00")))
	})
	e.GET("/debug/pprof/symbol", wrap(pprof.Symbol))
	e.POST("/debug/pprof/symbol", wrap(pprof.Symbol))
	// A CPU profile and a trace take the time asked (?seconds=, 30 and 1
	// by default) before they write: give them that on top of writeTimeout.
	e.GET("/debug/pprof/profile", wrap(pprof.Profile), sampling(30))
	e.GET("/debug/pprof/trace", wrap(pprof.Trace), sampling(1))
	for _, name := range pprofProfiles {
		e.GET("/debug/pprof/"+name, echo.WrapHandler(pprof.Handler(name)))
	}
}

// sampling extends the write deadline of a request that samples for
// ?seconds= (def when absent or not a positive number).
func sampling(def float64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			sec, err := strconv.ParseFloat(c.QueryParam("seconds"), 64)
			if err != nil || sec <= 0 || sec > 24*3600 {
				sec = def
			}
			extendWriteDeadline(c, time.Duration(sec*float64(time.Second))+writeTimeout)
			return next(c)
		}
	}
}
