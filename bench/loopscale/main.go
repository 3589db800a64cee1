// Command loopscale measures whether this machine's loopback TCP writes
// scale with threads, with no gateway involved: it opens --conns loopback
// connections, then writes --size bytes to every one of them, --rounds
// times, from 1 and then from 2 (up to --threads) goroutines, each with
// its own P, each writing its share of the connections with write(2). The
// readers read nothing (like wsbench --others mute); --rounds × --size
// must fit a socket buffer.
//
// If two threads do not write a round faster than one here, no fan-out
// server can on this machine either: the gateway's fan-out duration at
// GOMAXPROCS=2 against 1 (issue 17) is bounded by this.
//
//	go run ./bench/loopscale --conns 4000 --rounds 100
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	conns := flag.Int("conns", 4000, "loopback connections (each costs two descriptors)")
	rounds := flag.Int("rounds", 100, "writes to every connection per measurement")
	size := flag.Int("size", 200, "bytes per write")
	threads := flag.Int("threads", 2, "measure with 1 to this many threads")
	repeat := flag.Int("repeat", 2, "measurements per thread count, alternating")
	writev := flag.Bool("writev", false, "write with writev(2) of two buffers, as the gateway does, instead of write(2)")
	flag.Parse()
	if err := run(*conns, *rounds, *size, *threads, *repeat, *writev); err != nil {
		fmt.Fprintln(os.Stderr, "loopscale:", err)
		os.Exit(1)
	}
}

func run(conns, rounds, size, threads, repeat int, writev bool) error {
	if conns < 1 || rounds < 1 || size < 1 || threads < 1 || repeat < 1 || rounds*size > 64<<10 {
		return fmt.Errorf("want positive flags and --rounds × --size at most 64 KiB (a socket buffer)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	var fds []int
	var keep []net.Conn // both ends stay open until the end
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return fmt.Errorf("dial (raise ulimit -n?): %w", err)
		}
		s, err := ln.Accept()
		if err != nil {
			return err
		}
		keep = append(keep, c, s)
		rc, err := s.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
	}
	buf := make([]byte, size)
	half := size / 2
	write := func(fd int) error {
		if !writev {
			_, err := syscall.Write(fd, buf)
			return err
		}
		_, err := unix.Writev(fd, [][]byte{buf[:half], buf[half:]})
		return err
	}
	for range repeat {
		for t := 1; t <= threads; t++ {
			runtime.GOMAXPROCS(t)
			start := time.Now()
			for range rounds {
				var wg sync.WaitGroup
				per := (len(fds) + t - 1) / t
				for w := range t {
					part := fds[min(w*per, len(fds)):min((w+1)*per, len(fds))]
					wg.Go(func() {
						for _, fd := range part {
							if err := write(fd); err != nil {
								panic(err)
							}
						}
					})
				}
				wg.Wait()
			}
			d := time.Since(start)
			fmt.Printf("threads %d: %8.1f µs per round of %d writes, %.2f µs a write\n",
				t, float64(d.Microseconds())/float64(rounds), conns, float64(d.Microseconds())/float64(rounds*conns))
		}
	}
	return nil
}
