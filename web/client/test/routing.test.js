// Unit tests of message routing: which handlers get a message, with what
// meta; gaps by seq and by flag; per-handler unsubscribe with the stream
// left only when its last handler goes; stream errors; the command rate
// limit; and resubscription with "since" after a reconnect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../marketgate.js';
import { FakeSocket, lastSocket, setup } from './fake.js';

const TRADE = 'binance:btcusdt@trade';
const BOOK_TICKER = 'binance:btcusdt@bookTicker';

// open connects a client and opens its connection.
async function open(clock, options = {}) {
  const mg = connect('ws://127.0.0.1:8080/ws', { WebSocket: FakeSocket, pingInterval: 0, ...options });
  const events = { gap: [], error: [], recovered: [] };
  for (const k of Object.keys(events)) mg.on(k, (e) => events[k].push(e));
  await clock.settle();
  lastSocket().open();
  await clock.settle();
  return { mg, events, ws: lastSocket() };
}

// answer replies to every subscribe command not answered yet, with
// positions {epoch, seq} per stream.
function answer(ws, positions = {}, done = new Set()) {
  for (const c of ws.commands('subscribe')) {
    if (done.has(c.id)) continue;
    done.add(c.id);
    const pos = Object.fromEntries(c.streams.filter((s) => positions[s]).map((s) => [s, positions[s]]));
    const recovered = c.since ? Object.fromEntries(Object.keys(c.since).map((s) => [s, true])) : undefined;
    ws.reply(c, { streams: c.streams, positions: pos, ...(recovered && { recovered }) });
  }
  return done;
}

test('each handler gets its streams\' messages, with meta', async (t) => {
  const clock = setup(t);
  const { mg, ws, events } = await open(clock);
  const got = { a: [], b: [] };
  const a = mg.subscribe([TRADE, BOOK_TICKER], (d, meta) => got.a.push([d.n, meta]));
  const b = mg.subscribe([TRADE], (d, meta) => got.b.push([d.n, meta]));
  await clock.settle();
  answer(ws, { [TRADE]: { epoch: 'e1', seq: 10 }, [BOOK_TICKER]: { epoch: 'e1', seq: 3 } });
  await Promise.all([a, b]);
  assert.deepEqual(mg.position(TRADE), { epoch: 'e1', seq: 10 });

  ws.push({ stream: TRADE, seq: 11, data: { n: 1 } });
  ws.push({ stream: BOOK_TICKER, seq: 4, data: { n: 2 }, latest: true });
  ws.push({ stream: 'binance:ethusdt@trade', seq: 1, data: { n: 3 } }); // not subscribed: dropped
  assert.deepEqual(got.a, [
    [1, { stream: TRADE, seq: 11, gap: false, latest: false }],
    [2, { stream: BOOK_TICKER, seq: 4, gap: false, latest: true }],
  ]);
  assert.deepEqual(got.b, [[1, { stream: TRADE, seq: 11, gap: false, latest: false }]]);

  // A seq that skips, and a message the gateway flags, are gaps.
  ws.push({ stream: TRADE, seq: 13, data: { n: 4 } });
  ws.push({ stream: TRADE, seq: 14, data: { n: 5 }, gap: true, epoch: 'e2' });
  assert.deepEqual(events.gap, [
    { stream: TRADE, seq: 13, prevSeq: 11, reason: 'seq' },
    { stream: TRADE, seq: 14, prevSeq: 13, reason: 'gap' },
  ]);
  assert.equal(got.b.at(-1)[1].gap, true);
  assert.deepEqual(mg.position(TRADE), { epoch: 'e2', seq: 14 });
  mg.close();
});

test('a handle lets go of its handler; a stream is left when its last handler goes', async (t) => {
  const clock = setup(t);
  const { mg, ws } = await open(clock);
  const got = { a: 0, b: 0 };
  const a = mg.subscribe([TRADE, BOOK_TICKER], () => got.a++);
  const b = mg.subscribe([TRADE], () => got.b++);
  await clock.settle();
  answer(ws);
  const [ha] = await Promise.all([a, b]);
  assert.deepEqual(ha.streams, [TRADE, BOOK_TICKER]);

  const left = ha.unsubscribe();
  await clock.settle();
  const [un] = ws.commands('unsubscribe');
  assert.deepEqual(un.streams, [BOOK_TICKER], 'only the stream no other handler holds is left');
  ws.reply(un, { streams: un.streams });
  assert.deepEqual(await left, { streams: [TRADE, BOOK_TICKER] });
  assert.deepEqual(mg.streams, [TRADE]);
  ws.push({ stream: TRADE, seq: 1, data: {} });
  assert.deepEqual(got, { a: 0, b: 1 });
  assert.deepEqual(await ha.unsubscribe(), { streams: [] }, 'a second unsubscribe does nothing');
  mg.close();
});

test('a handler may let go before the reply; the promise is the handle', async (t) => {
  const clock = setup(t);
  const { mg, ws } = await open(clock);
  const p = mg.subscribe([TRADE], () => assert.fail('delivered after unsubscribe'));
  assert.deepEqual(p.streams, [TRADE]);
  const left = p.unsubscribe();
  assert.deepEqual(mg.streams, []);
  await clock.settle();
  answer(ws);
  const [un] = ws.commands('unsubscribe');
  assert.deepEqual(un.streams, [TRADE]);
  ws.reply(un, { streams: un.streams });
  assert.deepEqual(await left, { streams: [TRADE] });
  ws.push({ stream: TRADE, seq: 1, data: {} });
  mg.close();
});

test('a stream error takes the stream from every handler', async (t) => {
  const clock = setup(t);
  const { mg, ws, events } = await open(clock);
  const p = mg.subscribe([TRADE, BOOK_TICKER], () => {});
  await clock.settle();
  answer(ws);
  const h = await p;
  ws.push({ stream: TRADE, error: { code: 'upstream_error', msg: 'exchange refused the stream' } });
  assert.deepEqual(events.error, [{ stream: TRADE, code: 'upstream_error', msg: 'exchange refused the stream' }]);
  assert.deepEqual(h.streams, [BOOK_TICKER]);
  assert.deepEqual(mg.streams, [BOOK_TICKER]);
  mg.close();
});

test('a refused subscribe rejects its call and undoes it', async (t) => {
  const clock = setup(t);
  const { mg, ws } = await open(clock);
  const p = mg.subscribe(['binance:nosuch@trade'], () => {});
  await clock.settle();
  const [cmd] = ws.commands('subscribe');
  ws.reply(cmd, null, { code: 'invalid_stream', msg: 'unknown symbol', streams: ['binance:nosuch@trade'] });
  await assert.rejects(p, { code: 'invalid_stream', msg: 'unknown symbol' });
  assert.deepEqual(mg.streams, []);
  await assert.rejects(mg.subscribe([], () => {}), { code: 'bad_request' });
  await assert.rejects(mg.subscribe([TRADE], 'not a function'), { code: 'bad_request' });
  mg.close();
  await assert.rejects(mg.subscribe([TRADE], () => {}), { code: 'closed' });
});

test('a subscribe refused as unavailable (the node is starting) is sent again after a backoff', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 1 - 1e-9); // the top of each jitter range
  const { mg, ws, events } = await open(clock, { backoff: { min: 200, max: 10000 } });
  const p = mg.subscribe([TRADE], () => {});
  await clock.settle();
  const unavailable = { code: 'unavailable', msg: 'not available yet, try again shortly', streams: [TRADE] };
  ws.reply(ws.commands('subscribe')[0], null, unavailable);
  await clock.advance(190);
  assert.equal(ws.commands('subscribe').length, 1, 'sent again before the backoff');
  await clock.advance(20);
  assert.equal(ws.commands('subscribe').length, 2, 'not sent again after the first backoff');
  ws.reply(ws.commands('subscribe')[1], null, unavailable);
  await clock.advance(390); // the wait doubles with each refusal in a row
  assert.equal(ws.commands('subscribe').length, 2, 'sent again before the doubled backoff');
  await clock.advance(20);
  const [, , third] = ws.commands('subscribe');
  assert.deepEqual(third.streams, [TRADE]);
  ws.reply(third, { streams: [TRADE], positions: {} });
  await p;
  assert.deepEqual(mg.streams, [TRADE]);
  assert.deepEqual(events.error, [], 'unavailable is retried, not reported');
  mg.close();
});

test('commands beyond maxCommandsPerSecond wait for the next second', async (t) => {
  const clock = setup(t);
  const { mg, ws } = await open(clock, { maxCommandsPerSecond: 5 });
  const calls = [];
  for (let i = 0; i < 7; i++) calls.push(mg.subscribe([`binance:s${i}usdt@trade`], () => {}));
  await clock.settle();
  assert.equal(ws.sent.length, 5);
  await clock.advance(990, 10);
  assert.equal(ws.sent.length, 5);
  await clock.advance(20, 10);
  assert.equal(ws.sent.length, 7);
  mg.close();
  for (const r of await Promise.allSettled(calls)) assert.equal(r.reason.code, 'closed');
});

test('after a reconnect, streams are resubscribed from their positions', async (t) => {
  const clock = setup(t);
  t.mock.method(Math, 'random', () => 0);
  const { mg, ws, events } = await open(clock);
  const got = [];
  const p = mg.subscribe([TRADE, BOOK_TICKER], (d, meta) => got.push(meta));
  await clock.settle();
  answer(ws, { [TRADE]: { epoch: 'e1', seq: 5 } }); // BOOK_TICKER's position stays unknown
  await p;
  ws.push({ stream: TRADE, seq: 6, data: {} });
  ws.drop(1006);
  await clock.advance(1);
  const ws2 = lastSocket();
  assert.notEqual(ws2, ws);
  ws2.open();
  await clock.settle();
  const [resub] = ws2.commands('subscribe');
  assert.deepEqual(resub.streams, [TRADE, BOOK_TICKER]);
  assert.deepEqual(resub.since, { [TRADE]: { epoch: 'e1', seq: 6 } });
  answer(ws2);
  await clock.settle();
  assert.deepEqual(events.recovered, [{ stream: TRADE, recovered: true }]);
  ws2.push({ stream: TRADE, seq: 7, data: {} });
  ws2.push({ stream: BOOK_TICKER, seq: 9, data: {} });
  assert.deepEqual(got.slice(1), [
    { stream: TRADE, seq: 7, gap: false, latest: false, recovered: true },
    { stream: BOOK_TICKER, seq: 9, gap: true, latest: false },
  ]);
  assert.deepEqual(events.gap, [{ stream: BOOK_TICKER, seq: 9, prevSeq: undefined, reason: 'reconnect' }]);
  mg.close();
});

test('a normalized client asks for the normalized format and has no order books', async (t) => {
  const clock = setup(t);
  const { mg, ws } = await open(clock, { format: 'normalized' });
  const p = mg.subscribe([TRADE], () => {});
  await clock.settle();
  assert.equal(ws.commands('subscribe')[0].format, 'normalized');
  assert.throws(() => mg.orderBook('binance:btcusdt@book'), /format 'raw'/);
  mg.close();
  await assert.rejects(p, { code: 'closed' });
});
