//go:build linux

package downstream

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"unsafe"

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

// pollState is what the epoll poller keeps per connection: its descriptor,
// and access to it that holds off Close while a write runs.
type pollState struct {
	fd int
	rc syscall.RawConn
}

// readNow reads what c's socket holds now into p, without waiting: it
// returns errWouldBlock when the socket is empty and io.EOF at the end of
// the stream. The read holds the descriptor (RawConn.Read), so a
// concurrent Close cannot release its number meanwhile.
func (c *conn) readNow(p []byte) (int, error) {
	var n int
	var errno error
	err := c.poll.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = unix.Read(int(fd), p)
			if errno != unix.EINTR {
				return true // done: never wait in the poller
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno == unix.EAGAIN:
		return 0, errWouldBlock
	case errno != nil:
		return 0, fmt.Errorf("read: %w", errno)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
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
	if err != nil {
		return err
	}
	c.poll.fd = fd
	c.poll.rc, err = c.nc.(syscall.Conn).SyscallConn()
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

// outBatch is the batch of frames a flush is writing, as the kernel's
// writev takes it: each entry points into a shared frame (which it keeps
// alive) and is advanced past what was written. Only the flush task, one
// at a time per connection, touches it.
type outBatch struct {
	iov  []unix.Iovec
	next int                // the first entry not fully written
	fn   func(uintptr) bool // writeFD, made once
	// n is, going in, the most entries writeFD may write
	// (Config.MaxFramesPerWrite: not a field of its own, which every
	// connection would pay for), and coming out what it wrote.
	n   int
	err error // and its error
}

func (b *outBatch) load(batch []qframe) {
	b.reset()
	for _, e := range batch {
		var v unix.Iovec
		v.Base = unsafe.SliceData(e.frame)
		v.SetLen(len(e.frame))
		b.iov = append(b.iov, v)
	}
}

func (b *outBatch) empty() bool { return b.next == len(b.iov) }

// keepFirst drops every entry but the one being written.
func (b *outBatch) keepFirst() {
	clear(b.iov[b.next+1:])
	b.iov = b.iov[:b.next+1]
}

func (b *outBatch) reset() {
	clear(b.iov)
	b.iov, b.next = b.iov[:0], 0
}

// capacity is the number of entries the batch's array holds.
func (b *outBatch) capacity() int { return cap(b.iov) }

// shrink releases an empty batch's array when a slow episode grew it past
// maxKeptQueue entries.
func (b *outBatch) shrink() {
	if b.empty() && cap(b.iov) > maxKeptQueue {
		b.iov, b.next = nil, 0
	}
}

// write writes the batch to c's socket without waiting: it returns nil
// when all of it is written, errWouldBlock when the socket buffer filled
// first (n bytes went out before), or the socket's error. The write holds
// the descriptor (RawConn.Write), so a concurrent Close cannot release its
// number to another connection meanwhile.
func (b *outBatch) write(c *conn) (int, error) {
	if b.fn == nil {
		b.fn = b.writeFD
	}
	total := 0
	for !b.empty() {
		c.srv.metrics.writes.Add(1)
		b.n = c.srv.cfg.MaxFramesPerWrite
		if err := c.poll.rc.Write(b.fn); err != nil {
			return total, err
		}
		if b.err != nil {
			if b.err == unix.EAGAIN {
				return total, errWouldBlock
			}
			return total, fmt.Errorf("writev: %w", b.err)
		}
		total += b.n
		b.advance(b.n)
	}
	b.reset()
	return total, nil
}

// writeFD is the RawConn.Write callback: one writev of up to b.n
// entries.
func (b *outBatch) writeFD(fd uintptr) bool {
	iov := b.iov[b.next:]
	if len(iov) > b.n {
		iov = iov[:b.n]
	}
	for {
		n, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e == unix.EINTR {
			continue
		}
		b.n, b.err = int(n), nil
		if e != 0 {
			b.n, b.err = 0, e
		}
		return true // done: never wait in the poller
	}
}

// advance moves past n written bytes.
func (b *outBatch) advance(n int) {
	for n > 0 {
		v := &b.iov[b.next]
		if uint64(n) < v.Len {
			v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
			v.Len -= uint64(n)
			return
		}
		n -= int(v.Len)
		*v = unix.Iovec{}
		b.next++
	}
}
