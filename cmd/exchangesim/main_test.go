package main

import (
	"io"
	"log/slog"
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
			return s.listen == "127.0.0.1:9443" && len(s.cfg.Symbols) == 5 && s.cfg.Mode == binancesim.ModeSpot &&
				s.cfg.MaxMessagesPerSecond == 0 && s.cfg.PingInterval == 0 && s.cfg.PongTimeout == 0 &&
				s.cfg.MaxStreams == 1024 && s.cfg.MaxLifetime == 24*time.Hour && s.logLevel == slog.LevelInfo
		}},
		{"futures flag", []string{"--mode", "futures"}, nil, "", func(s settings) bool {
			return s.cfg.Mode == binancesim.ModeFutures && s.cfg.MaxMessagesPerSecond == 0 && s.cfg.PingInterval == 0
		}},
		{"futures env", nil, map[string]string{"EXCHANGESIM_MODE": "futures", "EXCHANGESIM_MAX_STREAMS": "200"}, "", func(s settings) bool {
			return s.cfg.Mode == binancesim.ModeFutures && s.cfg.MaxStreams == 200
		}},
		{"mode flag beats env", []string{"--mode=spot"}, map[string]string{"EXCHANGESIM_MODE": "futures"}, "", func(s settings) bool {
			return s.cfg.Mode == binancesim.ModeSpot
		}},
		{"futures with explicit limits", []string{"--mode=futures", "--max-messages-per-second=5", "--ping-interval=20s"}, nil, "", func(s settings) bool {
			return s.cfg.Mode == binancesim.ModeFutures && s.cfg.MaxMessagesPerSecond == 5 && s.cfg.PingInterval == 20*time.Second
		}},
		{"bad mode flag", []string{"--mode", "coinm"}, nil, "-mode", nil},
		{"bad mode env", nil, map[string]string{"EXCHANGESIM_MODE": "Futures"}, "EXCHANGESIM_MODE", nil},
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
			}
		})
	}
}
