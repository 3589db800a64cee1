package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/marketgate/marketgate/exchangesim/binancesim"
)

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // substring; "" means success
		check   func(settings) bool
	}{
		{"defaults", nil, nil, "", func(s settings) bool {
			// Mode-dependent limits stay zero: binancesim.New fills the mode's.
			return s.listen == "127.0.0.1:9443" && len(s.cfg.Symbols) == 5 && s.exchange == "binance" &&
				s.cfg.MaxMessagesPerSecond == 0 && s.cfg.PingInterval == 0 && s.cfg.PongTimeout == 0 &&
				s.cfg.MaxStreams == 1024 && s.cfg.MaxLifetime == 24*time.Hour && s.logLevel == slog.LevelInfo
		}},
		{"futures flag", []string{"--mode", "futures"}, nil, "", func(s settings) bool {
			return s.exchange == "binance-futures" && s.cfg.MaxMessagesPerSecond == 0 && s.cfg.PingInterval == 0
		}},
		{"futures env", nil, map[string]string{"EXCHANGESIM_MODE": "futures", "EXCHANGESIM_MAX_STREAMS": "200"}, "", func(s settings) bool {
			return s.exchange == "binance-futures" && s.cfg.MaxStreams == 200
		}},
		{"mode flag beats env", []string{"--mode=spot"}, map[string]string{"EXCHANGESIM_MODE": "futures"}, "", func(s settings) bool {
			return s.exchange == "binance"
		}},
		{"futures with explicit limits", []string{"--mode=futures", "--max-messages-per-second=5", "--ping-interval=20s"}, nil, "", func(s settings) bool {
			return s.exchange == "binance-futures" && s.cfg.MaxMessagesPerSecond == 5 && s.cfg.PingInterval == 20*time.Second
		}},
		{"bad mode flag", []string{"--mode", "coinm"}, nil, "-mode", nil},
		{"bad mode env", nil, map[string]string{"EXCHANGESIM_MODE": "Futures"}, "EXCHANGESIM_MODE", nil},
		{"exchange flag", []string{"--exchange", "binance-futures"}, nil, "", func(s settings) bool {
			return s.exchange == "binance-futures" && s.cfg.MaxMessagesPerSecond == 0 && s.cfg.PingInterval == 0
		}},
		{"exchange env", nil, map[string]string{"EXCHANGESIM_EXCHANGE": "binance-futures", "EXCHANGESIM_MAX_STREAMS": "200"}, "", func(s settings) bool {
			return s.exchange == "binance-futures" && s.cfg.MaxStreams == 200
		}},
		{"exchange flag beats env", []string{"--exchange=binance"}, map[string]string{"EXCHANGESIM_EXCHANGE": "binance-futures"}, "", func(s settings) bool {
			return s.exchange == "binance"
		}},
		{"mode flag beats exchange env", []string{"--mode=spot"}, map[string]string{"EXCHANGESIM_EXCHANGE": "binance-futures"}, "", func(s settings) bool {
			return s.exchange == "binance"
		}},
		{"exchange flag beats mode env", []string{"--exchange=binance-futures"}, map[string]string{"EXCHANGESIM_MODE": "spot"}, "", func(s settings) bool {
			return s.exchange == "binance-futures"
		}},
		{"bad exchange flag", []string{"--exchange", "futures"}, nil, "-exchange", nil},
		{"bad exchange env", nil, map[string]string{"EXCHANGESIM_EXCHANGE": "Binance"}, "EXCHANGESIM_EXCHANGE", nil},
		{"flags", []string{"--listen", ":0", "--symbols", "BTCUSDT, ETHBTC", "--tick-interval=10ms", "--strict-method", "--log-level=debug"}, nil, "", func(s settings) bool {
			return s.listen == ":0" && slices.Equal(s.cfg.Symbols, []string{"BTCUSDT", "ETHBTC"}) && s.cfg.TickInterval == 10*time.Millisecond &&
				s.cfg.StrictMethod && s.logLevel == slog.LevelDebug
		}},
		{"env", nil, map[string]string{"EXCHANGESIM_MAX_STREAMS": "7", "EXCHANGESIM_PONG_TIMEOUT": "5s"}, "", func(s settings) bool {
			return s.cfg.MaxStreams == 7 && s.cfg.PongTimeout == 5*time.Second
		}},
		{"flag beats env", []string{"--max-streams=9"}, map[string]string{"EXCHANGESIM_MAX_STREAMS": "7"}, "", func(s settings) bool {
			return s.cfg.MaxStreams == 9
		}},
		{"bad env", nil, map[string]string{"EXCHANGESIM_PING_INTERVAL": "soon"}, "EXCHANGESIM_PING_INTERVAL", nil},
		{"bad flag", []string{"--max-messages-per-second=0"}, nil, "-max-messages-per-second", nil},
		{"bad duration", []string{"--max-lifetime=-1h"}, nil, "-max-lifetime", nil},
		{"bad attempts", []string{"--max-connection-attempts=-5"}, nil, "-max-connection-attempts", nil},
		{"unknown flag", []string{"--nope"}, nil, "-nope", nil},
		{"no symbols", []string{"--symbols", " , "}, nil, "-symbols", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			st, err := parseSettings(tc.args, lookup, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("parseSettings: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("parseSettings error = %v; want one naming %s", err, tc.wantErr)
			case tc.wantErr != "" && strings.Contains(err.Error(), "\n"):
				t.Errorf("error %q spans lines", err)
			case tc.check != nil && !tc.check(st):
				t.Errorf("settings = %+v", st)
			}
			if err == nil {
				// What main does next must accept the settings.
				if _, err := binancesim.New(st.cfg); err != nil {
					t.Errorf("binancesim.New(%+v) = %v", st.cfg, err)
				}
				if _, err := exchanges[st.exchange].build(st.cfg); err != nil {
					t.Errorf("build %s (%+v) = %v", st.exchange, st.cfg, err)
				}
			}
		})
	}
}

// TestExchanges checks that each entry of the table builds the simulator
// of its exchange: the REST ping of its own product answers, the other's
// is HTTP 404.
func TestExchanges(t *testing.T) {
	tests := []struct {
		exchange, mode string
		ping, notFound string
	}{
		{"binance", "spot", "/api/v3/ping", "/fapi/v1/ping"},
		{"binance-futures", "futures", "/fapi/v1/ping", "/api/v3/ping"},
		{"okx", "", "/api/v5/public/instruments?instType=SPOT", "/api/v3/ping"},
		{"bybit", "", "/v5/market/instruments-info?category=spot", "/api/v3/ping"},
		{"bybit-linear", "", "/v5/market/instruments-info?category=linear", "/v5/public/spot"},
	}
	if len(exchanges) != len(tests) {
		t.Errorf("exchanges has %d entries; the test knows %d", len(exchanges), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.exchange, func(t *testing.T) {
			ex, ok := exchanges[tc.exchange]
			if !ok {
				t.Fatalf("no exchange %q", tc.exchange)
			}
			if ex.mode != tc.mode {
				t.Errorf("mode = %q; want %q", ex.mode, tc.mode)
			}
			sim, err := ex.build(binancesim.Config{})
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			for path, want := range map[string]int{tc.ping: http.StatusOK, tc.notFound: http.StatusNotFound} {
				rec := httptest.NewRecorder()
				sim.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != want {
					t.Errorf("GET %s = %d; want %d", path, rec.Code, want)
				}
			}
			if f := ex.endpoints("127.0.0.1:1"); tc.mode != "" && (len(f) < 2 || f[0] != "mode" || fmt.Sprint(f[1]) != tc.mode) {
				t.Errorf("endpoints = %v; want the mode %q first", f, tc.mode)
			}
		})
	}
}
