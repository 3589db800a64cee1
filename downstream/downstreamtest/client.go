// Package downstreamtest provides a WebSocket client for tests of the
// gateway's browser endpoints. It speaks through gobwas/ws, so tests can also
// write raw or malformed frames on its connection.
package downstreamtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Timeout is how long Next and ExpectClose wait before failing the test.
const Timeout = 5 * time.Second

// Client is a WebSocket client connection. It is not safe for concurrent
// use, except that Conn may be closed from any goroutine.
type Client struct {
	T  testing.TB
	nc net.Conn
	rd wsutil.Reader
}

// Dial connects to url (ws://…) and fails t if it cannot. The connection
// is closed when the test ends.
func Dial(t testing.TB, url string) *Client {
	t.Helper()
	c, err := TryDial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.T = t
	t.Cleanup(func() { c.nc.Close() })
	return c
}

// TryDial connects to url with extra handshake headers. A refused handshake
// returns an error that errors.Is ws.StatusError(httpStatus). The caller
// closes the connection and sets T before using the helpers that fail tests.
func TryDial(url string, header http.Header) (*Client, error) {
	d := ws.Dialer{Timeout: Timeout}
	if header != nil {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	nc, br, _, err := d.Dial(context.Background(), url)
	if err != nil {
		return nil, err
	}
	var src io.Reader = nc
	if br != nil {
		src = br // frames right behind the 101 sit in br
	}
	return &Client{nc: nc, rd: wsutil.Reader{Source: src, State: ws.StateClientSide, CheckUTF8: true}}, nil
}

// Conn returns the underlying connection, for raw frames and for closing.
func (c *Client) Conn() net.Conn { return c.nc }

// Close closes the connection without a close handshake.
func (c *Client) Close() error { return c.nc.Close() }

// Send writes s as one masked text message.
func (c *Client) Send(s string) {
	c.T.Helper()
	if err := wsutil.WriteClientText(c.nc, []byte(s)); err != nil {
		c.T.Fatalf("send: %v", err)
	}
}

// Next returns the next data message, failing the test after Timeout.
func (c *Client) Next() []byte {
	c.T.Helper()
	p, err := c.Read(Timeout)
	if err != nil {
		c.T.Fatalf("read: %v", err)
	}
	return p
}

// Read returns the next data message. Pings and pongs are skipped; a close
// frame returns a wsutil.ClosedError with the server's code and reason.
func (c *Client) Read(timeout time.Duration) ([]byte, error) {
	for {
		hdr, payload, err := c.NextFrame(timeout)
		if err != nil {
			return nil, err
		}
		switch {
		case hdr.OpCode == ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			return nil, wsutil.ClosedError{Code: code, Reason: reason}
		case hdr.OpCode.IsControl():
			continue
		}
		return payload, nil
	}
}

// NextFrame returns the next frame, or the whole next message for data
// frames, with its payload.
func (c *Client) NextFrame(timeout time.Duration) (ws.Header, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	hdr, err := c.rd.NextFrame()
	if err != nil {
		return hdr, nil, err
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(&c.rd); err != nil {
		return hdr, nil, err
	}
	return hdr, buf.Bytes(), nil
}

// ExpectClose reads until the server's close frame and returns its code.
func (c *Client) ExpectClose() ws.StatusCode {
	c.T.Helper()
	for {
		_, err := c.Read(Timeout)
		var ce wsutil.ClosedError
		if errors.As(err, &ce) {
			return ce.Code
		}
		if err != nil {
			c.T.Fatalf("read until close: %v", err)
		}
	}
}
