package nodeid

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestDefault(t *testing.T) {
	id := Default()
	host, pid, ok := strings.Cut(id, "-"+strconv.Itoa(os.Getpid()))
	if !ok || pid != "" || host == "" {
		t.Fatalf("Default() = %q; want <host>-%d", id, os.Getpid())
	}
	if h, err := os.Hostname(); err == nil && h != "" && host != h {
		t.Errorf("Default() = %q; want the host name %q first", id, h)
	}
	if Default() != id {
		t.Error("Default() changes between calls")
	}
}
