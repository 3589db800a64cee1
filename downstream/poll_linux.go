//go:build linux

package downstream

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"syscall"

	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// readEvents arms a connection for one readiness report: level-triggered and
// one-shot, so exactly one worker owns a readable connection until it re-arms
// it, and data that arrived meanwhile is reported again at once.
const readEvents = netpoll.EPOLLIN | netpoll.EPOLLRDHUP | netpoll.EPOLLONESHOT

// poller reports readable connections. It drives easygo's epoll wrapper with
// each connection's own descriptor: unlike netpoll.Handle, that costs no
// duplicated descriptor and never switches the socket to blocking mode, so
// the net.Conn stays the descriptor's only owner and its deadlines work.
type poller struct {
	ep *netpoll.Epoll
}

// pollState is what the epoll poller keeps per connection: its descriptor.
type pollState struct {
	fd int
}

// readers lends read buffers to read tasks only while a connection is being
// read, so an idle connection holds none.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

func (c *conn) acquireReader() *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c.nc)
	return br
}

func (c *conn) releaseReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

func newPoller(onError func(error)) (*poller, error) {
	ep, err := netpoll.EpollCreate(&netpoll.EpollConfig{OnWaitError: onError})
	if err != nil {
		return nil, fmt.Errorf("epoll create: %w", err)
	}
	return &poller{ep: ep}, nil
}

// connFD returns the descriptor of a TCP connection. The descriptor stays
// owned by nc; the server removes it from epoll before it closes nc.
func connFD(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("connection %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("syscall conn: %w", err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, fmt.Errorf("descriptor: %w", err)
	}
	return fd, nil
}

// add registers c and calls onReadable (on the epoll goroutine, so it must
// not block) each time c becomes readable after being armed.
func (p *poller) add(c *conn, onReadable func()) error {
	return p.ep.Add(c.poll.fd, readEvents, func(netpoll.EpollEvent) { onReadable() })
}

// prepare records c's descriptor before c is shared with other goroutines.
func (p *poller) prepare(c *conn) error {
	fd, err := connFD(c.nc)
	c.poll.fd = fd
	return err
}

// resume re-arms c after its read task is done.
func (p *poller) resume(c *conn) error { return p.ep.Mod(c.poll.fd, readEvents) }

// remove unregisters c; it must run before c.nc is closed, because epoll
// dispatches by descriptor number and a closed number is soon reused.
func (p *poller) remove(c *conn) error { return p.ep.Del(c.poll.fd) }

// close stops the epoll goroutine and releases its descriptors.
func (p *poller) close() error { return p.ep.Close() }

// raiseFileLimit lifts the soft descriptor limit to the hard one, because
// each browser connection costs one descriptor.
func raiseFileLimit() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return lim.Cur, nil
}
