package deploy_test

import (
	"os"
	"strings"
	"testing"
)

// TestComposeRedisPassword checks that the compose Redis requires a
// password and that the nodes' URL carries the same one: an open Redis
// lets anyone who reaches it publish to every browser.
func TestComposeRedisPassword(t *testing.T) {
	b, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	compose := string(b)
	for _, want := range []string{
		"REDIS_PASSWORD: ${REDIS_PASSWORD:-",                // Redis's environment
		`requirepass "%s"\n' "$$REDIS_PASSWORD"`,            // its configuration
		"MARKETGATE_REDIS: redis://:${REDIS_PASSWORD:-",     // the nodes' URL
		`REDISCLI_AUTH=\"$$REDIS_PASSWORD\" redis-cli ping`, // the healthcheck authenticates
	} {
		if !strings.Contains(compose, want) {
			t.Errorf("docker-compose.yml has no %q", want)
		}
	}
	// Both defaults are the same password.
	def := func(after string) string {
		_, rest, _ := strings.Cut(compose, after)
		v, _, _ := strings.Cut(rest, "}")
		return v
	}
	if a, b := def("REDIS_PASSWORD: ${REDIS_PASSWORD:-"), def("redis://:${REDIS_PASSWORD:-"); a == "" || a != b {
		t.Errorf("Redis's default password %q differs from the nodes' %q", a, b)
	}
	if strings.Contains(compose, "redis://redis:") {
		t.Error("docker-compose.yml still has a Redis URL without a password")
	}
}
