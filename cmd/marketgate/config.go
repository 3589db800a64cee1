package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// config is the gateway's effective configuration: flags, each also read
// from MARKETGATE_<FLAG>; a flag given on the command line wins.
type config struct {
	listen         string
	adminListen    string
	adminToken     string
	demo           bool
	binanceURL     string
	binanceRESTURL string
	redis          string
	nodeID         string
	allowedOrigins []string
	logLevel       slog.Level
	logFormat      string
}

// envName returns the environment variable that mirrors a flag.
func envName(flagName string) string {
	return "MARKETGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig parses args and the environment. Its error names the setting,
// the value and what is wrong, in one line.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	var c config
	var origins, level string
	host, _ := os.Hostname()
	fs := flag.NewFlagSet("marketgate", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.listen, "listen", ":8080", "public listener: web UI, browser WebSockets, /healthz, /readyz")
	fs.StringVar(&c.adminListen, "admin-listen", "127.0.0.1:9090", "control listener: /api/v1/…, /metrics")
	fs.StringVar(&c.adminToken, "admin-token", "", "bearer token for the control listener; empty: loopback clients only")
	fs.BoolVar(&c.demo, "demo", false, "run the built-in exchange simulator in-process and use it as the Binance upstream")
	fs.StringVar(&c.binanceURL, "binance-url", "wss://stream.binance.com:9443", "base URL of Binance-compatible market streams (the gateway connects to <base>/stream)")
	fs.StringVar(&c.binanceRESTURL, "binance-rest-url", "https://api.binance.com", "base URL for /api/v3/exchangeInfo, the list of valid symbols")
	fs.StringVar(&c.redis, "redis", "", "Redis URL (redis://host:port/db); empty: the in-process hub (one node)")
	fs.StringVar(&c.nodeID, "node-id", fmt.Sprintf("%s-%d", host, os.Getpid()), "this node's name in the cluster")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated browser origins allowed to open WebSockets; empty: any")
	fs.StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(usage, "Usage: marketgate [flags]\n\nEvery flag can also be set with its environment variable; a flag given on the command line wins.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(usage, "  --%s (%s)\n    \t%s (default %q)\n", f.Name, envName(f.Name), f.Usage, f.DefValue)
		})
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q: marketgate takes flags only", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return c, envErr
	}
	if err := c.level(level); err != nil {
		return c, err
	}
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
				return c, fmt.Errorf("--allowed-origins: %q is not an origin like https://app.example.com", o)
			}
			c.allowedOrigins = append(c.allowedOrigins, o)
		}
	}
	for name, v := range map[string]string{"listen": c.listen, "admin-listen": c.adminListen} {
		if _, port, err := net.SplitHostPort(v); err != nil {
			return c, fmt.Errorf("--%s: %q is not host:port: %v", name, v, err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return c, fmt.Errorf("--%s: %q has no valid port", name, v)
		}
	}
	for name, v := range map[string]string{"binance-url": c.binanceURL, "binance-rest-url": c.binanceRESTURL} {
		schemes := []string{"ws", "wss"}
		if name == "binance-rest-url" {
			schemes = []string{"http", "https"}
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || (u.Scheme != schemes[0] && u.Scheme != schemes[1]) {
			return c, fmt.Errorf("--%s: %q is not a %s:// or %s:// URL", name, v, schemes[0], schemes[1])
		}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return c, fmt.Errorf("--log-format: %q is not text or json", c.logFormat)
	}
	if c.redis != "" {
		if u, err := url.Parse(c.redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			return c, fmt.Errorf("--redis: %q is not a redis:// URL", c.redis)
		}
		return c, errors.New("--redis: the Redis hub is not available in this version; leave --redis empty to run one node with the in-process hub")
	}
	return c, nil
}

func (c *config) level(s string) error {
	if err := c.logLevel.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("--log-level: %q is not debug, info, warn or error", s)
	}
	return nil
}

func (c *config) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.logLevel}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
