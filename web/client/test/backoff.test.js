// Unit tests of reconnecting: the backoff between failed connections, its
// reset after a connection that worked, the longer waits after slow
// consumer closes (4008), the close codes that stop reconnecting, and the
// ping timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../marketgate.js';
import { FakeSocket, lastSocket, setup } from './fake.js';

const URL = 'ws://127.0.0.1:8080/ws';

// client connects a client to the fake gateway and records its close events.
function client(options = {}) {
  const mg = connect(URL, { WebSocket: FakeSocket, pingInterval: 0, ...options });
  const closes = [];
  mg.on('close', (e) => closes.push(e));
  return { mg, closes };
}

test('failed connections back off exponentially, capped, with full jitter', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 1 - 1e-9); // the top of each jitter range
  const { mg, closes } = client();
  await clock.settle();
  const want = [250, 500, 1000, 2000, 4000, 8000, 10000, 10000];
  for (const step of want) {
    const ws = lastSocket();
    ws.drop(1006);
    const e = closes.at(-1);
    assert.equal(e.reconnect, true);
    assert.equal(Math.round(e.delay), step);
    assert.equal(mg.state, 'reconnecting');
    const n = FakeSocket.made.length;
    await clock.advance(e.delay - 5);
    assert.equal(FakeSocket.made.length, n, `reconnected before the ${step} ms wait ended`);
    await clock.advance(10);
    assert.equal(FakeSocket.made.length, n + 1, `no reconnect after the ${step} ms wait`);
  }
  // A connection that stays open for the longest backoff worked: the next
  // wait starts from the shortest again.
  lastSocket().open();
  await clock.advance(10000);
  lastSocket().drop(1001, 'going away');
  assert.equal(Math.round(closes.at(-1).delay), 250);
  mg.close();
});

test('full jitter can reconnect at once', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 0);
  const { mg, closes } = client();
  await clock.settle();
  lastSocket().drop(1006);
  assert.equal(closes[0].delay, 0);
  await clock.advance(1);
  assert.equal(FakeSocket.made.length, 2);
  mg.close();
});

test('slow consumer closes wait at least half a step that doubles each time', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 0); // the bottom of each range: half the step
  const { mg, closes } = client();
  await clock.settle();
  // Steps start at max(min, max/8) = 1250 and double up to max = 10000.
  for (const want of [625, 1250, 2500, 5000, 5000]) {
    lastSocket().open();
    await clock.advance(100);
    lastSocket().drop(4008, 'slow consumer');
    assert.equal(closes.at(-1).delay, want);
    await clock.advance(want + 1);
  }
  // A connection that held for a minute forgets the slow closes.
  lastSocket().open();
  await clock.advance(60000, 1000);
  lastSocket().drop(4008, 'slow consumer');
  assert.equal(closes.at(-1).delay, 625);
  mg.close();
});

test('closes that retrying would repeat do not reconnect by themselves', async (t) => {
  for (const code of [1003, 1008, 1009, 4001, 4002, 4003, 4029]) {
    await t.test(`code ${code}`, async (t) => {
      const clock = setup(t);
      const { mg, closes } = client();
      const states = [];
      mg.on('state', (s) => states.push(s));
      await clock.settle();
      lastSocket().open();
      lastSocket().drop(code, 'no');
      assert.deepEqual(closes.at(-1), { code, reason: 'no', reconnect: false });
      assert.equal(mg.state, 'disconnected');
      await clock.advance(60000, 1000);
      assert.equal(FakeSocket.made.length, 1, 'reconnected by itself');
      mg.reconnect();
      assert.equal(FakeSocket.made.length, 2);
      assert.equal(mg.state, 'reconnecting');
      assert.deepEqual(states, ['connecting', 'open', 'disconnected', 'reconnecting']);
      mg.close();
    });
  }
});

test('an expired token (4003) reconnects when getToken can bring a new one', async (t) => {
  const clock = setup(t);
  const { mg, closes } = client({ getToken: () => 'tok' });
  await clock.settle();
  lastSocket().open();
  await clock.settle();
  lastSocket().drop(4003, 'token expired');
  assert.equal(closes.at(-1).reconnect, true);
  assert.equal(mg.state, 'reconnecting');
  mg.close();
});

test('a connection that answers no ping is dropped and reconnected', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 0.5);
  const { mg, closes } = client({ pingInterval: 15000, pingTimeout: 10000 });
  await clock.settle();
  const ws = lastSocket();
  ws.open();
  await clock.advance(15000);
  const pings = ws.commands('ping');
  assert.equal(pings.length, 1);
  ws.reply(pings[0], {}); // any frame is a sign of life
  await clock.advance(15000);
  assert.equal(ws.commands('ping').length, 2);
  assert.equal(ws.closedWith, null);
  await clock.advance(10000);
  assert.deepEqual(ws.closedWith, { code: 4000, reason: 'ping timeout' });
  assert.equal(closes.at(-1).code, 4000);
  assert.equal(closes.at(-1).reconnect, true);
  assert.equal(mg.state, 'reconnecting');
  mg.close();
  assert.equal(mg.state, 'closed');
});
