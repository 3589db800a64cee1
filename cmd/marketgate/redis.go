package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisOptions parses --redis and applies the --redis-tls-… files: the
// one place the node's Redis clients (the hub's and the cluster
// coordination's) get their address, credentials and TLS from. Exactly
// one result is non-nil without an error: standalone, or cluster with
// --redis-cluster. Errors never show the URL's password.
func redisOptions(c config) (*redis.Options, *redis.ClusterOptions, error) {
	var tlsConf **tls.Config
	var opt *redis.Options
	var copt *redis.ClusterOptions
	var err error
	if c.redisCluster {
		if copt, err = redis.ParseClusterURL(c.redis); err == nil {
			tlsConf = &copt.TLSConfig
		}
	} else if opt, err = redis.ParseURL(c.redis); err == nil {
		tlsConf = &opt.TLSConfig
	}
	if err != nil {
		// url.Parse's errors quote the URL or a piece of it (":pass"
		// as an "invalid port"), and go-redis's quote parts of it (the
		// path, a parameter): with user information in the URL, only
		// go-redis's that show no piece of it are kept.
		why := err.Error()
		if ue, ok := errors.AsType[*url.Error](err); ok {
			why = ue.Err.Error()
		}
		if i := strings.LastIndex(c.redis, "@"); i >= 0 {
			if _, ok := errors.AsType[*url.Error](err); ok {
				why = "malformed"
			} else if j := strings.Index(c.redis, "//"); j >= 0 && j+2 < i {
				why = strings.ReplaceAll(why, c.redis[j+2:i], "***")
			}
			if strings.Contains(why, "@") {
				why = "malformed"
			}
		}
		return nil, nil, fmt.Errorf("--redis: %q is not a redis:// or rediss:// URL: %s", redactURL(c.redis), why)
	}
	if err := applyRedisTLS(c, *tlsConf); err != nil {
		return nil, nil, err
	}
	return opt, copt, nil
}

// applyRedisTLS adds the --redis-tls-ca roots and the --redis-tls-cert
// client certificate to conf, the TLS configuration a rediss:// URL gave
// (nil for redis://).
func applyRedisTLS(c config, conf *tls.Config) error {
	name := ""
	switch {
	case c.redisTLSCA != "":
		name = "redis-tls-ca"
	case c.redisTLSCert != "":
		name = "redis-tls-cert"
	case c.redisTLSKey != "":
		name = "redis-tls-key"
	default:
		return nil
	}
	if conf == nil {
		return fmt.Errorf("--%s: needs a rediss:// --redis URL (TLS)", name)
	}
	if c.redisTLSCA != "" {
		pem, err := os.ReadFile(c.redisTLSCA)
		if err != nil {
			return fmt.Errorf("--redis-tls-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--redis-tls-ca: %s holds no PEM certificate", c.redisTLSCA)
		}
		conf.RootCAs = roots
	}
	if (c.redisTLSCert == "") != (c.redisTLSKey == "") {
		return errors.New("--redis-tls-cert and --redis-tls-key: set both or neither")
	}
	if c.redisTLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.redisTLSCert, c.redisTLSKey)
		if err != nil {
			return fmt.Errorf("--redis-tls-cert, --redis-tls-key: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// userinfo matches everything from "//" to the last '@', where a URL's
// user and password are even when it is malformed.
var userinfo = regexp.MustCompile(`//.*@`)

// redactURL returns a Redis URL fit for logs and errors: its password
// replaced with "***". A URL with an '@' that does not parse as one user
// part loses everything between "//" and the last '@'.
func redactURL(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil || strings.Count(s, "@") > 1 {
		return userinfo.ReplaceAllString(s, "//***@")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.String()
}
