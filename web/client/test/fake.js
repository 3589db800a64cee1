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
 * setup fakes setTimeout, setInterval, their clears and performance.now
 * for test t (restored when it ends) and resets the sockets; advance(ms)
 * then moves time in small steps, running the timers due and letting
 * promises settle between them. It is written here rather than taken from
 * node:test's MockTimers so the tests run on every Node the package
 * supports.
 */
export function setup(t) {
  FakeSocket.made = [];
  let now = 1000;
  let nextId = 1;
  const timers = new Map(); // id -> {at, fn, every}
  const saved = {
    setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout,
    setInterval: globalThis.setInterval, clearInterval: globalThis.clearInterval,
  };
  const add = (fn, ms, every) => {
    const id = nextId++;
    const wait = Math.max(0, Number(ms) || 0);
    timers.set(id, { at: now + wait, fn, every: every ? Math.max(1, wait) : 0 });
    return id;
  };
  const clear = (id) => { timers.delete(id); };
  globalThis.setTimeout = (fn, ms) => add(fn, ms, false);
  globalThis.setInterval = (fn, ms) => add(fn, ms, true);
  globalThis.clearTimeout = clear;
  globalThis.clearInterval = clear;
  t.mock.method(performance, 'now', () => now);
  t.after(() => Object.assign(globalThis, saved));
  // run calls the timers due by now, earliest first.
  const run = () => {
    for (;;) {
      let due = null;
      for (const [id, tm] of timers) if (tm.at <= now && (!due || tm.at < due[1].at)) due = [id, tm];
      if (!due) return;
      const [id, tm] = due;
      if (tm.every) tm.at += tm.every;
      else timers.delete(id);
      tm.fn();
    }
  };
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return {
    settle,
    async advance(ms, step = 50) {
      await settle();
      while (ms > 0) {
        const d = Math.min(step, ms);
        now += d;
        ms -= d;
        run();
        await settle();
      }
    },
  };
}
