package auth

import (
	"context"
	"sync"
)

var _ ConnLimiter = (*Memory)(nil)

// Memory counts connections in this process: a node without Redis. The
// zero Memory is ready to use. Its map holds one entry per counted
// connection, so it is bounded by the node's connections.
type Memory struct {
	// mu guards users.
	mu    sync.Mutex
	users map[string]map[string]struct{}
}

// Acquire implements [ConnLimiter]; it never waits.
func (m *Memory) Acquire(_ context.Context, user, conn string, limit int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	held := m.users[user]
	if _, ok := held[conn]; ok {
		return true, nil
	}
	if len(held) >= limit {
		return false, nil
	}
	if held == nil {
		if m.users == nil {
			m.users = make(map[string]map[string]struct{})
		}
		held = make(map[string]struct{})
		m.users[user] = held
	}
	held[conn] = struct{}{}
	return true, nil
}

// Release implements [ConnLimiter].
func (m *Memory) Release(user, conn string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if held := m.users[user]; held != nil {
		delete(held, conn)
		if len(held) == 0 {
			delete(m.users, user)
		}
	}
}

// Count returns how many connections of user are counted.
func (m *Memory) Count(user string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.users[user])
}
