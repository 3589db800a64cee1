// Unit tests of the stream key builders: streamKey, exchangeSymbol,
// parseSymbol, candleIntervals, exchanges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { streamKey, exchangeSymbol, parseSymbol, candleIntervals, exchanges } from '../marketgate.js';

test('streamKey builds each venue\'s key', () => {
  const cases = [
    ['binance', 'trade', 'BTC/USDT', undefined, 'binance:btcusdt@trade'],
    ['binance', 'ticker', 'eth/usdt', undefined, 'binance:ethusdt@ticker'],
    ['binance', 'candle', 'ETH/USDT', { interval: '1h' }, 'binance:ethusdt@kline_1h'],
    ['binance', 'candle', 'ETH/USDT', undefined, 'binance:ethusdt@kline_1m'],
    ['binance', 'book', 'BTC/USDT', undefined, 'binance:btcusdt@book'],
    ['binance', 'book', 'BTC/USDT', { depth: 100 }, 'binance:btcusdt@book@100'],
    ['binance-futures', 'trade', 'BTC/USDT:USDT', undefined, 'binance-futures:btcusdt@aggTrade'],
    ['binance-futures', 'candle', 'BTC/USDT:USDT', { interval: '1M' }, 'binance-futures:btcusdt@kline_1M'],
    ['okx', 'trade', 'BTC/USDT', undefined, 'okx:trades:BTC-USDT'],
    ['okx', 'trade', 'BTC/USDT:USDT', undefined, 'okx:trades:BTC-USDT-SWAP'],
    ['okx', 'trade', 'BTC/USD:BTC', undefined, 'okx:trades:BTC-USD-SWAP'],
    ['okx', 'candle', 'BTC/USDT', { interval: '4h' }, 'okx:candle4H:BTC-USDT'],
    ['okx', 'book', 'BTC/USDT', { depth: 5 }, 'okx:book5:BTC-USDT'],
    ['bybit', 'ticker', 'BTC/USDT', undefined, 'bybit:tickers.BTCUSDT'],
    ['bybit', 'candle', 'BTC/USDT', { interval: '1d' }, 'bybit:kline.D.BTCUSDT'],
    ['bybit-linear', 'book', 'BTC/USDT:USDT', { depth: 50 }, 'bybit-linear:book.50.BTCUSDT'],
    ['bybit-linear', 'trade', 'ETH/USDC:USDC', undefined, 'bybit-linear:publicTrade.ETHPERP'],
  ];
  for (const [ex, cls, sym, opts, want] of cases) {
    assert.equal(streamKey(ex, cls, sym, opts), want, `streamKey(${ex}, ${cls}, ${sym}, ${JSON.stringify(opts)})`);
  }
});

test('streamKey refuses what a venue does not have, with a code', () => {
  const cases = [
    ['kraken', 'trade', 'BTC/USD', undefined, 'unknown_exchange'],
    ['toString', 'trade', 'BTC/USD', undefined, 'unknown_exchange'],
    ['binance', 'orders', 'BTC/USDT', undefined, 'unknown_class'],
    ['binance', 'trade', 'BTC/USDT:USDT', undefined, 'bad_symbol'], // a perpetual on spot
    ['binance-futures', 'trade', 'BTC/USDT', undefined, 'bad_symbol'], // a spot pair on futures
    ['binance-futures', 'trade', 'BTC/USDT:BTC', undefined, 'bad_symbol'], // inverse
    ['okx', 'trade', 'BTC/USDT:BTC', undefined, 'bad_symbol'],
    ['bybit-linear', 'trade', 'BTC/EUR:EUR', undefined, 'bad_symbol'],
    ['binance', 'trade', 'BTC/USDT:USDT-250328', undefined, 'bad_symbol'], // dated future
    ['binance', 'trade', 'BTCUSDT', undefined, 'bad_symbol'],
    ['binance-futures', 'candle', 'BTC/USDT:USDT', { interval: '1s' }, 'bad_interval'],
    ['bybit', 'candle', 'BTC/USDT', { interval: '8h' }, 'bad_interval'],
    ['binance', 'book', 'BTC/USDT', { depth: 7 }, 'bad_depth'],
  ];
  for (const [ex, cls, sym, opts, code] of cases) {
    assert.throws(() => streamKey(ex, cls, sym, opts), (e) => e.name === 'StreamKeyError' && e.code === code && e.message.length > 0,
      `streamKey(${ex}, ${cls}, ${sym}) should throw ${code}`);
  }
});

test('parseSymbol reads unified symbols', () => {
  assert.deepEqual(parseSymbol(' btc/usdt '), { unified: 'BTC/USDT', base: 'BTC', quote: 'USDT', settle: '' });
  assert.deepEqual(parseSymbol('BTC/USDT:USDT'), { unified: 'BTC/USDT:USDT', base: 'BTC', quote: 'USDT', settle: 'USDT' });
  assert.throws(() => parseSymbol(42), { code: 'bad_symbol' });
  assert.throws(() => parseSymbol('BTC/USDT:USDT-250328'), /dated futures/);
});

test('exchangeSymbol, candleIntervals and exchanges agree with streamKey', () => {
  assert.equal(exchangeSymbol('okx', 'BTC/USDT:USDT'), 'BTC-USDT-SWAP');
  assert.equal(exchangeSymbol('binance', 'BTC/USDT'), 'BTCUSDT');
  assert.deepEqual(exchanges.map((e) => e.name), ['binance', 'binance-futures', 'okx', 'bybit', 'bybit-linear']);
  assert.ok(Object.isFrozen(exchanges));
  for (const { name, market } of exchanges) {
    const sym = market === 'perpetual' ? 'BTC/USDT:USDT' : 'BTC/USDT';
    for (const iv of candleIntervals(name)) {
      assert.ok(streamKey(name, 'candle', sym, { interval: iv }).startsWith(name + ':'), `${name} ${iv}`);
    }
  }
  assert.ok(candleIntervals('binance').includes('1s'));
  assert.ok(!candleIntervals('binance-futures').includes('1s'));
});
