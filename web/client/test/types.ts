// Type tests of marketgate.d.ts, checked by tsc (test/tsconfig.json):
// each line marked @ts-expect-error must be an error, and every other
// line must compile, so a declaration that types a key wrongly fails.
import {
  connect, streamKey,
  type BinanceAggTradeEvent, type BinanceBookTickerEvent, type BinanceDepthUpdateEvent,
  type BinanceForceOrderEvent, type BinanceKlineEvent, type BinanceMarkPriceEvent,
  type BinanceMiniTickerEvent, type BinancePartialDepth, type BinanceTickerEvent,
  type BinanceTradeEvent, type BinanceWindowTickerEvent, type BinanceContinuousKlineEvent,
  type BinanceStreamKey, type BookMessage, type GatewayError, type NormalizedCandle,
  type NormalizedData, type NormalizedTrade, type StreamPayload, type PayloadFor,
} from '@marketgate/client';

/** Equal is true when A and B are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function expectType<T extends true>(): T | void {}

// Raw payloads by key.
expectType<Equal<StreamPayload<'binance:btcusdt@trade'>, BinanceTradeEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@aggTrade'>, BinanceAggTradeEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@kline_1m'>, BinanceKlineEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@kline_1h@+08:00'>, BinanceKlineEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@ticker'>, BinanceTickerEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@ticker_4h'>, BinanceWindowTickerEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@miniTicker'>, BinanceMiniTickerEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@bookTicker'>, BinanceBookTickerEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@depth'>, BinanceDepthUpdateEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@depth@100ms'>, BinanceDepthUpdateEvent>>();
expectType<Equal<StreamPayload<'binance:btcusdt@depth20@100ms'>, BinancePartialDepth>>();
expectType<Equal<StreamPayload<'binance:btcusdt@depth5'>, BinancePartialDepth>>();
expectType<Equal<StreamPayload<'binance:!miniTicker@arr'>, BinanceMiniTickerEvent[]>>();
expectType<Equal<StreamPayload<'binance:!ticker_1h@arr'>, BinanceWindowTickerEvent[]>>();
expectType<Equal<StreamPayload<'binance:btcusdt@book'>, BookMessage>>();
expectType<Equal<StreamPayload<'binance-futures:btcusdt@aggTrade'>, BinanceAggTradeEvent>>();
expectType<Equal<StreamPayload<'binance-futures:btcusdt@markPrice@1s'>, BinanceMarkPriceEvent>>();
expectType<Equal<StreamPayload<'binance-futures:!markPrice@arr'>, BinanceMarkPriceEvent[]>>();
expectType<Equal<StreamPayload<'binance-futures:btcusdt@forceOrder'>, BinanceForceOrderEvent>>();
expectType<Equal<StreamPayload<'binance-futures:!forceOrder@arr'>, BinanceForceOrderEvent>>();
expectType<Equal<StreamPayload<'binance-futures:btcusdt@depth10@500ms'>, BinanceDepthUpdateEvent>>();
expectType<Equal<StreamPayload<'binance-futures:btcusdt_perpetual@continuousKline_1m'>, BinanceContinuousKlineEvent>>();
expectType<Equal<StreamPayload<'binance-futures:!ticker@arr'>, BinanceTickerEvent[]>>();
expectType<Equal<StreamPayload<'okx:book:BTC-USDT'>, BookMessage>>();
expectType<Equal<StreamPayload<'bybit:book.50.BTCUSDT'>, BookMessage>>();
expectType<Equal<StreamPayload<'okx:trades:BTC-USDT'>, unknown>>();
expectType<Equal<StreamPayload<string>, unknown>>();
expectType<Equal<PayloadFor<'binance:btcusdt@trade', 'normalized'>, NormalizedTrade>>();
expectType<Equal<PayloadFor<'binance:btcusdt@kline_1m', 'normalized'>, NormalizedCandle>>();
expectType<Equal<PayloadFor<'binance:btcusdt@kline_1m@+08:00', 'normalized'>, BinanceKlineEvent>>();
expectType<Equal<PayloadFor<'binance:btcusdt@bookTicker', 'normalized'>, BinanceBookTickerEvent>>();
expectType<Equal<PayloadFor<'okx:trades:BTC-USDT', 'normalized'>, NormalizedData>>();

// Typed keys.
const good: BinanceStreamKey[] = ['binance:btcusdt@trade', 'binance:ethusdt@kline_1M', 'binance-futures:btcusdt@markPrice@1s', 'binance:!miniTicker@arr'];
// @ts-expect-error futures has no @trade stream
const noFuturesTrade: BinanceStreamKey = 'binance-futures:btcusdt@trade';
// @ts-expect-error symbols are lower case in Binance stream names
const upper: BinanceStreamKey = 'binance:BTCUSDT@trade';
// @ts-expect-error there is no 2m kline
const badInterval: BinanceStreamKey = 'binance:btcusdt@kline_2m';

// subscribe types its handler from literal keys.
const mg = connect('ws://127.0.0.1:8080/ws');
mg.subscribe(['binance:btcusdt@trade'], (t, meta) => {
  const price: string = t.p;
  const stream: 'binance:btcusdt@trade' = meta.stream;
  const seq: number = meta.seq;
  void price; void stream; void seq;
  // @ts-expect-error a trade has no k
  void t.k;
});
mg.subscribe(['binance:btcusdt@kline_1m', 'binance:btcusdt@bookTicker'], (d) => {
  const e: BinanceKlineEvent | BinanceBookTickerEvent = d;
  void e;
});
mg.subscribe(['okx:trades:BTC-USDT'], (d) => {
  // @ts-expect-error an OKX raw payload is unknown
  void d.price;
});
// An explicit type argument still works, as before.
mg.subscribe<{ custom: number }>(['okx:trades:BTC-USDT'], (d) => { const n: number = d.custom; void n; });
// A key from streamKey is typed.
const tk = streamKey('binance', 'trade', 'BTC/USDT');
mg.subscribe([tk], (t) => { const q: string = t.q; void q; });
const fk = streamKey('binance-futures', 'trade', 'BTC/USDT:USDT');
mg.subscribe([fk], (t) => { const a: number = t.a; void a; });
const ck = streamKey('binance', 'candle', 'BTC/USDT', { interval: '1h' });
mg.subscribe([ck], (k) => { const closed: boolean = k.k.x; void closed; });
const book = mg.orderBook(streamKey('binance', 'book', 'BTC/USDT'));
void book.levels('bids', 10);

// A normalized client gets the normalized form, and has no orderBook.
const norm = connect('ws://127.0.0.1:8080/ws', { format: 'normalized' });
norm.subscribe(['binance:btcusdt@trade'], (t) => { const side: 'buy' | 'sell' = t.side; void side; });
// @ts-expect-error orderBook needs the raw format
norm.orderBook('binance:btcusdt@book');

// The browser's WebSocket, and any class shaped like it, will do.
connect('ws://127.0.0.1:8080/ws', { WebSocket: globalThis.WebSocket });
class Fake {
  onopen = null; onmessage = null; onclose = null; onerror = null;
  send(_data: string) {}
  close() {}
}
connect('ws://127.0.0.1:8080/ws', { WebSocket: Fake });

// Error codes are a union, open to new ones.
mg.on('error', (e: GatewayError) => {
  if (e.code === 'invalid_stream') void e.streams;
});
void good; void noFuturesTrade; void upper; void badInterval;
