//go:build !linux

package downstream

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"time"
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

// readNow reads what the connection's buffer holds; when it is empty, it
// waits at most a millisecond for the socket (the portable poller has no
// non-blocking read). It returns errWouldBlock when nothing came.
func (c *conn) readNow(p []byte) (int, error) {
	if c.poll.br.Buffered() == 0 {
		c.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		defer c.nc.SetReadDeadline(time.Time{})
	}
	n, err := c.poll.br.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return n, errWouldBlock
	}
	return n, err
}

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

// outBatch is the batch of frames a flush is writing. Only the flush task,
// one at a time per connection, touches it.
type outBatch struct {
	bufs net.Buffers // the batch
	out  net.Buffers // what of bufs is not written yet
}

func (b *outBatch) load(batch []qframe) {
	b.reset()
	for _, e := range batch {
		b.bufs = append(b.bufs, e.frame)
	}
	b.out = b.bufs
}

func (b *outBatch) empty() bool { return len(b.out) == 0 }

// keepFirst drops every frame but the one being written.
func (b *outBatch) keepFirst() { b.out = b.out[:1] }

func (b *outBatch) reset() {
	clear(b.bufs)
	b.bufs, b.out = b.bufs[:0], nil
}

// capacity is the number of entries the batch's array holds.
func (b *outBatch) capacity() int { return cap(b.bufs) }

// shrink releases an empty batch's array when a slow episode grew it past
// maxKeptQueue entries.
func (b *outBatch) shrink() {
	if b.empty() && cap(b.bufs) > maxKeptQueue {
		b.bufs = nil
	}
}

// write writes the batch to c, waiting at most writeSlice for its socket
// buffer: it returns nil when all of it is written, errWouldBlock when the
// buffer stayed full (n bytes went out before), or the socket's error.
func (b *outBatch) write(c *conn) (int, error) {
	c.nc.SetWriteDeadline(time.Now().Add(writeSlice))
	c.srv.metrics.writes.Add(1)
	n, err := b.out.WriteTo(c.nc) // advances b.out past what it wrote
	switch {
	case err == nil:
		b.reset()
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = errWouldBlock
	}
	return int(n), err
}
