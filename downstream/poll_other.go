//go:build !linux

package downstream

import (
	"bufio"
	"sync"
)

// poller is the portable stand-in for the epoll poller: one goroutine per
// connection blocks in Peek and reports readability. It keeps the server
// correct on every platform; only Linux gets the goroutine-free idle path.
type poller struct{}

// pollState is what the portable poller keeps per connection: a permanent
// read buffer (Peek needs one) and the goroutine's wake-up channels.
type pollState struct {
	br       *bufio.Reader
	resumeCh chan struct{}
	stopCh   chan struct{}
	stopOnce *sync.Once
}

func (c *conn) acquireReader() *bufio.Reader { return c.poll.br }

func (c *conn) releaseReader(*bufio.Reader) {}

func newPoller(func(error)) (*poller, error) { return &poller{}, nil }

func (p *poller) add(c *conn, onReadable func()) error {
	c.poll.br = bufio.NewReaderSize(c.nc, readBufferSize)
	c.poll.resumeCh = make(chan struct{}, 1)
	c.poll.stopCh = make(chan struct{})
	c.poll.stopOnce = new(sync.Once)
	go func() {
		for {
			c.poll.br.Peek(1) // an error is seen again by the read task
			onReadable()
			select {
			case <-c.poll.resumeCh:
			case <-c.poll.stopCh:
				return
			}
		}
	}()
	return nil
}

func (p *poller) prepare(*conn) error { return nil }

func (p *poller) resume(c *conn) error {
	select {
	case c.poll.resumeCh <- struct{}{}:
	default:
	}
	return nil
}

func (p *poller) remove(c *conn) error {
	c.poll.stopOnce.Do(func() { close(c.poll.stopCh) })
	return nil
}

func (p *poller) close() error { return nil }

func raiseFileLimit() (uint64, error) { return 0, nil }
