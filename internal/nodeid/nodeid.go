// Package nodeid names this process in a cluster when the operator gave
// no name.
package nodeid

import (
	"fmt"
	"os"
)

// Default returns "<hostname>-<pid>" ("node-<pid>" when the host name is
// unknown): unique among the processes of one host, and telling in logs
// and in Redis keys which machine and process a record came from.
func Default() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
