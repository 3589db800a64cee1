// Test helpers for the client's unit tests under node --test: a fake
// WebSocket the tests play the gateway's side of, and a clock that moves
// the mocked timers and performance.now() together. They stand in for the
// network only; the client under test is the real marketgate.js, and the
// Go tests (web/*_test.go) drive it against a real gateway in Chromium.

/**
 * FakeSocket is a WebSocket whose peer is the test: sent holds the
 * commands the client sent (parsed), and open, reply, push and drop act
 * as the gateway.
 */
export class FakeSocket {
  /** @type {FakeSocket[]} every socket made, oldest first */
  static made = [];

  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closedWith = null;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    FakeSocket.made.push(this);
  }

  send(data) {
    if (typeof data !== 'string') throw new TypeError('the client sends text frames only');
    this.sent.push(JSON.parse(data));
  }

  close(code, reason) {
    this.closedWith = { code, reason };
  }

  // --- the gateway's side ---

  open() {
    this.onopen?.({});
  }

  /** push sends the client a frame (an object, sent as JSON). */
  push(obj) {
    this.onmessage?.({ data: JSON.stringify(obj) });
  }

  /** reply answers the command cmd with result, or with error when given. */
  reply(cmd, result, error) {
    this.push(error ? { id: cmd.id, error } : { id: cmd.id, result });
  }

  /** drop closes the connection from the gateway's side. */
  drop(code = 1006, reason = '') {
    this.onclose?.({ code, reason });
  }

  /** commands returns the commands sent with op. */
  commands(op) {
    return this.sent.filter((c) => c.op === op);
  }
}

/** last returns the newest socket. */
export function lastSocket() {
  return FakeSocket.made[FakeSocket.made.length - 1];
}

/**
 * setup mocks setTimeout, setInterval and performance.now for test t and
 * resets the sockets; advance(ms) then moves time in small steps, letting
 * promises settle between them.
 */
export function setup(t) {
  FakeSocket.made = [];
  t.mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  let now = 1000;
  t.mock.method(performance, 'now', () => now);
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return {
    settle,
    async advance(ms, step = 50) {
      await settle();
      while (ms > 0) {
        const d = Math.min(step, ms);
        now += d;
        ms -= d;
        t.mock.timers.tick(d);
        await settle();
      }
    },
  };
}
