// Unit tests of getToken: the token goes first on every connection, the
// connection opens once the gateway accepts it, and each token is
// refreshed on the same connection before it expires.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../marketgate.js';
import { FakeSocket, lastSocket, setup } from './fake.js';

// authed connects a client whose getToken returns tok1, tok2, … (or
// runs fail(n) first, which may throw), and opens its first connection.
async function authed(t, clock, options = {}, fail = () => {}) {
  let n = 0;
  const getToken = t.mock.fn(async () => {
    n++;
    fail(n);
    return `tok${n}`;
  });
  const mg = connect('ws://127.0.0.1:8080/ws', { WebSocket: FakeSocket, pingInterval: 0, getToken, ...options });
  const events = { auth: [], error: [], close: [] };
  for (const k of Object.keys(events)) mg.on(k, (e) => events[k].push(e));
  await clock.settle();
  lastSocket().open();
  await clock.settle();
  return { mg, getToken, events };
}

test('the token goes first; the connection opens once it is accepted', async (t) => {
  const clock = setup(t);
  const { mg, events } = await authed(t, clock);
  const sub = mg.subscribe(['binance:btcusdt@trade'], () => {});
  await clock.settle();
  const ws = lastSocket();
  assert.deepEqual(ws.sent.map((c) => c.op), ['auth'], 'something was sent before the token was accepted');
  assert.equal(ws.sent[0].token, 'tok1');
  assert.equal(mg.state, 'connecting');
  ws.reply(ws.sent[0], { user: 'alice', expires: 1700000120, ttl: 120 });
  await clock.settle();
  assert.equal(mg.state, 'open');
  assert.deepEqual(events.auth, [{ user: 'alice', expires: 1700000120, ttl: 120 }]);
  const [cmd] = ws.commands('subscribe');
  assert.deepEqual(cmd.streams, ['binance:btcusdt@trade']);
  ws.reply(cmd, { streams: cmd.streams });
  await sub;
  mg.close();
});

test('a token is refreshed tokenRefreshLead before it expires, on the same connection', async (t) => {
  const cases = [
    // ttl in s, lead in ms, when the refresh is due in ms
    { name: 'default lead', ttl: 120, options: {}, due: 90000 },
    { name: 'at most half the life', ttl: 40, options: {}, due: 20000 },
    { name: 'a lead of its own', ttl: 300, options: { tokenRefreshLead: 60000 }, due: 240000 },
  ];
  for (const tc of cases) {
    await t.test(tc.name, async (t) => {
      const clock = setup(t);
      const { mg, getToken } = await authed(t, clock, tc.options);
      const ws = lastSocket();
      ws.reply(ws.sent[0], { user: 'u', expires: 0, ttl: tc.ttl });
      await clock.advance(tc.due - 100, 1000);
      assert.equal(getToken.mock.callCount(), 1, 'refreshed early');
      await clock.advance(150);
      assert.equal(getToken.mock.callCount(), 2, 'not refreshed when due');
      const auths = ws.commands('auth');
      assert.equal(auths.length, 2);
      assert.equal(auths[1].token, 'tok2');
      assert.equal(FakeSocket.made.length, 1, 'the refresh opened a new connection');
      assert.equal(mg.state, 'open');
      // The next refresh follows the new token's life.
      ws.reply(auths[1], { user: 'u', expires: 0, ttl: tc.ttl });
      await clock.advance(tc.due + 100, 1000);
      assert.equal(ws.commands('auth').length, 3);
      mg.close();
    });
  }
});

test('a refresh that fails is tried again 5 s later', async (t) => {
  const clock = setup(t);
  const { mg, getToken, events } = await authed(t, clock, {}, (n) => { if (n === 2) throw new Error('token service down'); });
  const ws = lastSocket();
  ws.reply(ws.sent[0], { user: 'u', expires: 0, ttl: 120 });
  await clock.advance(90000 + 50, 1000);
  assert.equal(getToken.mock.callCount(), 2);
  assert.deepEqual(events.error.map((e) => [e.code, e.msg]), [['token_failed', 'token service down']]);
  assert.equal(ws.commands('auth').length, 1);
  await clock.advance(5000);
  assert.equal(getToken.mock.callCount(), 3);
  assert.equal(ws.commands('auth').at(-1).token, 'tok3');
  assert.equal(mg.state, 'open');
  mg.close();
});

test('a first token that fails drops the connection and retries after the backoff', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 0.5);
  const { mg, events } = await authed(t, clock, {}, (n) => { if (n === 1) throw new Error('no'); });
  assert.equal(events.error[0].code, 'token_failed');
  assert.deepEqual(lastSocket().closedWith, { code: 4000, reason: 'no token' });
  assert.equal(events.close.at(-1).reconnect, true);
  await clock.advance(events.close.at(-1).delay + 1);
  assert.equal(FakeSocket.made.length, 2);
  lastSocket().open();
  await clock.settle();
  assert.equal(lastSocket().sent[0].token, 'tok2');
  mg.close();
});

test('getToken returning nothing leaves the connection anonymous', async (t) => {
  const clock = setup(t);
  const mg = connect('ws://127.0.0.1:8080/ws', { WebSocket: FakeSocket, pingInterval: 0, getToken: () => null });
  await clock.settle();
  lastSocket().open();
  await clock.settle();
  assert.equal(mg.state, 'open');
  assert.deepEqual(lastSocket().sent, []);
  mg.close();
});
