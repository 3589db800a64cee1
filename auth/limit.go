package auth

import "context"

// ConnLimiter counts each user's open connections against the user's
// limit (the conns claim). Connections are named by an id unique in the
// whole cluster (node id and connection id). Implementations are safe for
// concurrent use.
type ConnLimiter interface {
	// Acquire counts connection conn of user, unless user already holds
	// limit connections: then it reports false and counts nothing.
	// Acquiring a connection already counted is true and counts it once.
	// It may wait for the network (Redis); ctx bounds it.
	Acquire(ctx context.Context, user, conn string, limit int) (bool, error)
	// Release stops counting conn. It never blocks: a count it cannot
	// remove at once expires on its own.
	Release(user, conn string)
}
