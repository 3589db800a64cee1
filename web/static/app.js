// The market page: ticker, trade tape, order book and candle chart of one
// unified symbol (BTC/USDT, BTC/USDT:USDT for a perpetual) on the exchange
// the user picks, fed by the gateway's native protocol through
// /marketgate.js and by its market-data REST where the gateway serves it
// (Binance spot and USD-M: the symbol list, the candle history).
//
// Trades, ticker and candles come in the normalized form, one schema for
// every venue; the book is the venue's native book stream kept by
// orderBook, which needs the raw form. The client's format is per
// connection, so the page holds two: `client` (normalized) and
// `bookClient` (raw). The chart is TradingView's Lightweight Charts
// (vendored in /static/vendor, loaded by index.html before this module).
import { connect, streamKey, exchangeSymbol } from '/marketgate.js';
import { themeToggle } from './theme.js';
import {
  REST_KLINES, REST_SYMBOLS, bp, cumulative, each, exchanges, fillLevels, fixedSymbols, fmtVol, isExchange, levelRows,
  moveSymbol, noticeBoard, price, tapeTrade, titleOf, trim, unlisted, watchClients,
} from './venues.js';

const TAPE_ROWS = 50;
const BOOK_ROWS = 50; // rendered per side; about 25 show, the rest scroll
const KLINE_LIMIT = 500;
const INTERVALS = ['1m', '5m', '15m', '1h', '4h', '1d'];
const MAX_SYMBOLS = 5000; // the most a /symbols answer may put in the picker's map

const $ = (id) => document.getElementById(id);
const el = {
  exchange: $('exchange'), symbol: $('symbol'), symfilter: $('symfilter'), symcount: $('symcount'), notice: $('notice'),
  comparelink: $('comparelink'), state: $('state'), dot: $('dot'), rate: $('rate'), latency: $('latency'),
  theme: $('theme'), venue: $('venue'), last: $('last'), bid: $('bid'), ask: $('ask'), tspread: $('tspread'),
  volume: $('volume'), tape: $('tape'), tapeinfo: $('tapeinfo'), bids: $('bids'), asks: $('asks'), spread: $('spread'),
  askbox: $('askbox'), bidbox: $('bidbox'), bookinfo: $('bookinfo'), bookstale: $('bookstale'),
  chart: $('chart'), chartinfo: $('chartinfo'), intervals: $('intervals'),
};

// rgba gives a #rrggbb colour an alpha; other colours are returned as they are.
const rgba = (c, a) => {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(c);
  return m ? `rgba(${parseInt(m[1], 16)},${parseInt(m[2], 16)},${parseInt(m[3], 16)},${a})` : c;
};
// decimals is the number of decimals a step such as "0.01000000" allows.
const decimals = (step) => {
  const t = trim(String(step ?? ''));
  const i = t.indexOf('.');
  return i < 0 ? 0 : t.length - i - 1;
};

// --- notices ---------------------------------------------------------------
// Problems with what was asked (an unknown exchange in the URL, a symbol
// the venue does not list) are said in the notice under the header.
const notice = noticeBoard(el.notice);

// --- state -----------------------------------------------------------------
const params = new URLSearchParams(location.search);
let exchange = 'binance';
if (params.has('exchange')) {
  const want = params.get('exchange');
  if (isExchange(want)) exchange = want;
  else notice('url', `Unknown exchange "${want}" in the address; showing Binance spot. Pick one of: ${exchanges.map((e) => e.name).join(', ')}.`);
}
let sym = moveSymbol(exchange, params.get('symbol') || 'BTC/USDT');
let interval = INTERVALS.includes(params.get('interval')) ? params.get('interval') : '1m';
let msgCount = 0;
// symbols are the venue's trading symbols, by unified symbol, once /symbols answered.
let symbols = new Map();
// page is what the browser tests read.
const page = window.marketPage = {
  exchange, sym, interval, trades: 0, tickers: 0, books: 0, bookChanges: 0, klines: 0, candles: 0,
  history: null, historyLoads: 0, symbols: 0, errors: [], closes: [], bookGaps: [], unlisted: null,
  seen: {}, // the exchange and symbol of the last normalized event of each class
};

// --- connections -----------------------------------------------------------
const client = window.mgClient = connect('/ws', { format: 'normalized' });
const bookClient = window.mgBookClient = connect('/ws');
page.closes = watchClients([client, bookClient], (text, s) => {
  el.state.textContent = text;
  el.state.title = s === 'disconnected' ? 'The gateway closed the connection; click to reconnect.' : '';
  el.dot.className = 'dot ' + s;
}, el.state);

// gen numbers each (exchange, symbol) shown: late answers of an earlier
// one are dropped.
let gen = 0;

// fail shows an error of the subscriptions of view generation g: a key the
// gateway refused (the venue does not list the symbol, or the gateway does
// not carry the exchange) in the notice, anything else in the status.
function fail(e, g = gen) {
  page.errors.push(e);
  if (page.errors.length > 100) page.errors.shift(); // the last 100, for the tests
  if (g !== gen) return;
  if (unlisted(e)) {
    page.unlisted = { exchange, sym, msg: e.msg };
    notice('symbol', `${sym} is not available on ${titleOf(exchange)}: ${e.msg}.`);
    return;
  }
  el.state.textContent = `${client.state} — ${e.code}: ${e.msg}`;
}
client.on('error', (e) => fail(e));
bookClient.on('error', (e) => fail(e));

// --- ticker and trades -----------------------------------------------------
// ticker is the venue's last ticker, merged: Bybit sends only what changed
// (linear) or no bid and ask at all (spot); the book's best levels stand
// in for those.
let ticker = {};

function showTop() {
  const top = book && book.state === 'live' ? { bid: book.best('bids')?.[0], ask: book.best('asks')?.[0] } : {};
  const bid = ticker.bid || top.bid, ask = ticker.ask || top.ask;
  el.bid.textContent = price(bid);
  el.ask.textContent = price(ask);
  const b = Number(bid), a = Number(ask);
  el.tspread.textContent = bid && ask && Number.isFinite(a - b) ? `${+(a - b).toPrecision(6)} (${bp(a - b, (a + b) / 2)})` : '–';
}

function onTrade(t, g) {
  if (g !== gen || t.type !== 'trade') return; // a message still in flight for the old view
  page.trades++;
  page.seen.trade = `${t.exchange} ${t.symbol}`;
  tapeTrade(el.tape, t, TAPE_ROWS);
  if (Number.isFinite(t.timestamp)) el.latency.textContent = Math.max(0, Date.now() - t.timestamp) + ' ms';
  if (!ticker.last) el.last.textContent = trim(t.price);
}

function onTicker(k, g) {
  if (g !== gen || k.type !== 'ticker') return;
  page.tickers++;
  page.seen.ticker = `${k.exchange} ${k.symbol}`;
  for (const f of ['bid', 'ask', 'last', 'volume']) if (k[f]) ticker[f] = k[f];
  if (ticker.last) el.last.textContent = trim(ticker.last);
  el.volume.textContent = fmtVol(ticker.volume);
  showTop();
}

// --- order book --------------------------------------------------------------
const bidRows = levelRows(el.bids, BOOK_ROWS);
const askRows = levelRows(el.asks, BOOK_ROWS); // asks[0] is the best ask, shown last (next to the spread)
el.asks.classList.add('rev');

let book = null;
let bookDirty = false;
let bookFailed = false; // the gateway refused the book stream
let askScrolled = false; // the asks box starts scrolled to the best ask

function drawBook() {
  requestAnimationFrame(drawBook);
  if (!bookDirty) return;
  bookDirty = false;
  if (!book) { // no book key for this view: nothing to show
    fillLevels(bidRows, [], [], 0);
    fillLevels(askRows, [], [], 0);
    el.bookinfo.textContent = '';
    el.bookstale.hidden = false;
    el.bookstale.textContent = 'unavailable';
    el.bookstale.className = 'badge stale';
    el.spread.textContent = `no book for ${sym} on ${titleOf(exchange)}`;
    return;
  }
  const bids = book.levels('bids', BOOK_ROWS), asks = book.levels('asks', BOOK_ROWS);
  const cb = cumulative(bids), ca = cumulative(asks);
  const max = Math.max(cb.at(-1) || 0, ca.at(-1) || 0);
  fillLevels(bidRows, bids, cb, max);
  fillLevels(askRows, asks, ca, max);
  if (!askScrolled && asks.length) { el.askbox.scrollTop = el.askbox.scrollHeight; askScrolled = true; }
  if (bids.length && asks.length) {
    const s = Number(asks[0][0]) - Number(bids[0][0]);
    const mid = (Number(asks[0][0]) + Number(bids[0][0])) / 2;
    el.spread.textContent = Number.isFinite(s) ? `spread ${+s.toPrecision(6)} (${bp(s, mid)})` : '–';
  } else {
    el.spread.textContent = bookFailed ? `no book for ${sym} on ${titleOf(exchange)}` : book.state === 'waiting' ? 'waiting for the book…' : '–';
  }
  const state = book.state;
  el.bookstale.hidden = state === 'live';
  el.bookstale.textContent = bookFailed ? 'unavailable'
    : state === 'stale' ? `stale${book.staleReason ? ': ' + book.staleReason : ''}`
      : book.stats.gaps > 0 ? 'resyncing' : 'waiting';
  el.bookstale.className = 'badge ' + (bookFailed ? 'stale' : state);
  el.bookinfo.textContent = book.lastUpdateId === null ? '' : `${book.depth('bids')}/${book.depth('asks')} levels · #${book.lastUpdateId}`;
  page.bookShown = { bids: bids.length, asks: asks.length, lastUpdateId: book.lastUpdateId, state };
  showTop();
}
requestAnimationFrame(drawBook);

function openBook(key, g) {
  if (book) book.close();
  askScrolled = false;
  bookFailed = false;
  bookDirty = true;
  if (!key) { book = window.mgBook = null; return; }
  const b = book = window.mgBook = bookClient.orderBook(key);
  b.on('change', () => {
    if (b !== book) return;
    msgCount++;
    page.bookChanges++;
    bookDirty = true;
  });
  b.on('snapshot', () => { page.books++; });
  b.on('gap', (gp) => { page.bookGaps.push(gp); });
  b.on('error', (e) => { if (b === book) { bookFailed = true; bookDirty = true; } fail(e, g); });
}

// --- candle chart --------------------------------------------------------------
const LWC = window.LightweightCharts;
const css = (name, fallback) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
let chart = null, candles = null, volume = null;

function chartColors() {
  return {
    layout: { background: { type: 'solid', color: css('--panel', '#151a21') }, textColor: css('--dim', '#7b8594'), attributionLogo: false },
    grid: { vertLines: { color: css('--line', '#222a33') }, horzLines: { color: css('--line', '#222a33') } },
    rightPriceScale: { borderColor: css('--line', '#222a33') },
    timeScale: { borderColor: css('--line', '#222a33'), timeVisible: true, secondsVisible: false },
  };
}
function seriesColors() {
  const up = css('--buy', '#3fb950'), down = css('--sell', '#f85149');
  return { upColor: up, downColor: down, borderUpColor: up, borderDownColor: down, wickUpColor: up, wickDownColor: down };
}

if (LWC) {
  chart = LWC.createChart(el.chart, { autoSize: true, ...chartColors(), crosshair: { mode: LWC.CrosshairMode.Normal } });
  candles = chart.addSeries(LWC.CandlestickSeries, { ...seriesColors(), priceLineVisible: true });
  volume = chart.addSeries(LWC.HistogramSeries, { priceFormat: { type: 'volume' }, priceScaleId: 'vol', lastValueVisible: false, priceLineVisible: false });
  chart.priceScale('vol').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });
} else {
  el.chartinfo.textContent = 'chart library not loaded';
}

function restyleChart() {
  if (!chart) return;
  chart.applyOptions(chartColors());
  candles.applyOptions(seriesColors());
  recolorVolume();
}

// volColor is a bar's volume colour: the candle's, faded.
const volColor = (up) => rgba(up ? css('--buy', '#3fb950') : css('--sell', '#f85149'), 0.4);
let bars = []; // the candles shown, oldest first: {time, open, high, low, close, volume}

function recolorVolume() {
  if (volume) volume.setData(bars.map((b) => ({ time: b.time, value: b.volume, color: volColor(b.close >= b.open) })));
}

// barOf turns a Binance REST kline (an array) or a normalized candle into
// a bar (time in seconds, as the chart takes it).
function barOf(k) {
  const a = Array.isArray(k) ? k : [k.start, k.open, k.high, k.low, k.close, k.volume];
  return { time: Math.floor(Number(a[0]) / 1000), open: +a[1], high: +a[2], low: +a[3], close: +a[4], volume: +a[5] };
}

// chartGen numbers each (view, interval) shown: late answers of an
// earlier one are dropped.
let chartGen = 0;
let klineSub = null;
let pending = null; // live bars that came before the history, applied after it

function applyBar(b) {
  const last = bars.at(-1);
  if (last && b.time < last.time) return; // an older bar: the chart only appends or updates the newest
  if (last && b.time === last.time) bars[bars.length - 1] = b;
  else bars.push(b);
  if (bars.length > KLINE_LIMIT * 2) bars.splice(0, bars.length - KLINE_LIMIT * 2);
  if (candles) {
    candles.update(b);
    volume.update({ time: b.time, value: b.volume, color: volColor(b.close >= b.open) });
  }
  page.candles = bars.length;
  page.lastBar = b;
}

function setPrecision() {
  const info = symbols.get(sym);
  if (!candles) return;
  if (info && info.tickSize) {
    const precision = decimals(info.tickSize);
    candles.applyOptions({ priceFormat: { type: 'price', precision, minMove: Number(info.tickSize) || 10 ** -precision } });
  } else {
    candles.applyOptions({ priceFormat: { type: 'price', precision: 2, minMove: 0.01 } });
  }
}

async function loadChart(iv, g) {
  const cg = ++chartGen;
  const x = exchange, s = sym;
  bars = [];
  pending = [];
  page.candles = 0;
  page.history = null;
  page.historyError = undefined;
  page.lastBar = null;
  if (candles) { candles.setData([]); volume.setData([]); }
  setPrecision();
  el.chartinfo.textContent = `${s} · ${iv} · loading…`;
  if (klineSub) klineSub.unsubscribe().catch(() => {});
  klineSub = null;
  let key;
  try {
    key = streamKey(x, 'candle', s, { interval: iv });
  } catch (e) {
    el.chartinfo.textContent = `${s} · ${iv} · ${e.message}`;
    page.history = 0;
    page.historyError = e.message;
    return;
  }
  klineSub = client.subscribe([key], (d) => {
    if (cg !== chartGen) return;
    each(d, (k) => {
      if (k.type !== 'candle') return;
      msgCount++;
      page.klines++;
      page.seen.candle = `${k.exchange} ${k.symbol}`;
      const b = barOf(k);
      if (!Number.isFinite(b.time) || !Number.isFinite(b.close)) return;
        if (pending) pending.push(b);
      else applyBar(b);
    });
  });
  klineSub.catch((e) => {
    if (cg !== chartGen) return;
    if (unlisted(e)) el.chartinfo.textContent = `${s} · ${iv} · not available on ${x}`;
    fail(e, g);
  });
  let hist = [];
  try {
    // The gateway serves candle history for Binance spot and USD-M only;
    // elsewhere the chart starts from the live candles.
    if (!REST_KLINES.has(x)) throw new Error(`the gateway serves no candle history for ${x}`);
    const u = `/api/v1/market/${x}/klines?symbol=${encodeURIComponent(exchangeSymbol(x, s))}&interval=${iv}&limit=${KLINE_LIMIT}`;
    const r = await fetch(u);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const body = await r.json();
    if (!Array.isArray(body)) throw new Error('not a klines array');
    hist = body.map(barOf).filter((b) => Number.isFinite(b.time) && Number.isFinite(b.close));
    page.history = hist.length;
  } catch (e) {
    if (cg !== chartGen) return;
    page.history = 0;
    page.historyError = String(e.message || e);
  }
  if (cg !== chartGen) return;
  page.historyLoads++;
  // Live bars that came while the history loaded go on top of it.
  bars = hist;
  if (candles) {
    candles.setData(bars);
    recolorVolume();
  }
  const live = pending;
  pending = null;
  for (const b of live) applyBar(b);
  page.candles = bars.length;
  el.chartinfo.textContent = `${s} · ${iv} · UTC` + (page.history === 0 ? ' · no history' : '');
  if (chart) chart.timeScale().scrollToRealTime();
}

// --- intervals -------------------------------------------------------------
function showInterval() {
  for (const b of el.intervals.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.interval === interval));
}
el.intervals.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-interval]');
  if (!b || b.dataset.interval === interval) return;
  interval = page.interval = b.dataset.interval;
  showInterval();
  remember();
  loadChart(interval, gen);
});

// --- symbols ---------------------------------------------------------------
// fillSymbols lists the symbols matching the filter box, the current one
// always included (also when the venue does not list it: the notice says so).
function fillSymbols() {
  const f = el.symfilter.value.trim().toUpperCase();
  const opts = [];
  let shown = 0;
  const list = symbols.size ? [...symbols.keys()] : fixedSymbols(exchange);
  if (!list.includes(sym)) list.unshift(sym);
  for (const k of list) {
    if (f && !k.includes(f) && k !== sym) continue;
    if (shown >= 500 && k !== sym) continue; // a long list stays usable; the filter finds the rest
    const o = document.createElement('option');
    o.value = k;
    const info = symbols.get(k);
    o.textContent = info ? `${k} (${info.symbol})` : k;
    opts.push(o);
    shown++;
  }
  el.symbol.replaceChildren(...opts);
  el.symbol.value = sym;
  const total = symbols.size || list.length;
  el.symcount.textContent = f ? `${shown - (!sym.includes(f) ? 1 : 0)} of ${total}` : `${total}`;
}

// loadSymbols fills the picker with the venue's list where the gateway
// serves it (/api/v1/market/<ex>/symbols: Binance spot and USD-M), with
// the fixed common list elsewhere or when that fails.
async function loadSymbols(x) {
  symbols = new Map();
  page.symbols = 0;
  page.symbolsError = undefined;
  fillSymbols();
  if (!REST_SYMBOLS.has(x)) return;
  const perp = exchanges.find((e) => e.name === x)?.market === 'perpetual';
  try {
    const r = await fetch(`/api/v1/market/${x}/symbols`);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const body = await r.json();
    const list = (Array.isArray(body.symbols) ? body.symbols : [])
      .filter((s) => s && typeof s.symbol === 'string' && typeof s.base === 'string' && typeof s.quote === 'string' &&
        (s.status === undefined || s.status === 'TRADING'))
      .slice(0, MAX_SYMBOLS)
      .map((s) => [`${s.base}/${s.quote}` + (perp ? `:${s.quote}` : ''), s])
      .sort((a, b) => a[0].localeCompare(b[0]));
    if (list.length === 0) throw new Error('no trading symbols');
    if (x !== exchange) return; // the user moved on meanwhile
    symbols = new Map(list);
    page.symbols = symbols.size;
    fillSymbols();
    setPrecision();
  } catch (e) {
    page.symbolsError = String(e.message || e); // the fixed list stays
  }
}
el.symfilter.addEventListener('input', fillSymbols);
el.symfilter.addEventListener('keydown', (ev) => {
  // Enter picks the first match.
  if (ev.key !== 'Enter' || el.symbol.options.length === 0) return;
  const first = [...el.symbol.options].find((o) => o.value !== sym) || el.symbol.options[0];
  el.symbol.value = first.value;
  el.symbol.dispatchEvent(new Event('change'));
});

// --- switching ---------------------------------------------------------------
let current = null; // the ticker and trade subscription of the view shown

function resetViews() {
  el.tape.replaceChildren();
  for (const k of ['last', 'bid', 'ask', 'tspread', 'volume']) el[k].textContent = '–';
  el.spread.textContent = '–';
  el.latency.textContent = '–';
  el.venue.textContent = titleOf(exchange);
  el.tapeinfo.textContent = `${sym} · ${exchange}`;
  ticker = {};
}

// remember puts the view in the address, so that it can be shared and
// survives a reload.
function remember() {
  const q = new URLSearchParams({ exchange, symbol: sym });
  if (interval !== '1m') q.set('interval', interval);
  history.replaceState(null, '', '?' + q);
  el.comparelink.href = '/compare?' + new URLSearchParams({ symbol: sym });
}

function show() {
  const g = ++gen;
  page.exchange = exchange;
  page.sym = sym;
  page.unlisted = null;
  page.seen = {};
  notice('symbol', '');
  resetViews();
  remember();
  if (current) current.unsubscribe().catch((e) => page.errors.push(e));
  current = null;
  let keys;
  try {
    keys = { trade: streamKey(exchange, 'trade', sym), ticker: streamKey(exchange, 'ticker', sym), book: streamKey(exchange, 'book', sym) };
  } catch (e) {
    // Not a symbol this venue can list (a perpetual on a spot venue…).
    notice('symbol', `${sym} cannot be shown on ${titleOf(exchange)}: ${e.message}.`);
    page.unlisted = { exchange, sym, msg: e.message };
    openBook(null, g);
    loadChart(interval, g);
    return;
  }
  const handlers = { [keys.trade]: onTrade, [keys.ticker]: onTicker };
  current = client.subscribe([keys.trade, keys.ticker], (data, meta) => {
    msgCount++;
    const h = handlers[meta.stream];
    if (h) each(data, (d) => h(d, g));
  });
  current.then(() => { if (g === gen) page.subscribed = `${exchange}|${sym}`; }, (e) => fail(e, g));
  openBook(keys.book, g);
  loadChart(interval, g);
}

el.symbol.addEventListener('change', () => {
  if (el.symbol.value === sym || !el.symbol.value) return;
  sym = el.symbol.value;
  show();
});

el.exchange.addEventListener('change', () => {
  if (el.exchange.value === exchange || !isExchange(el.exchange.value)) return;
  exchange = el.exchange.value;
  sym = moveSymbol(exchange, sym);
  notice('url', '');
  el.symfilter.value = '';
  show();
  loadSymbols(exchange);
});

themeToggle(el.theme, () => restyleChart());
// The page follows the system's theme too, while the toggle was not used.
matchMedia('(prefers-color-scheme: light)').addEventListener('change', () => restyleChart());

setInterval(() => { el.rate.textContent = String(msgCount); msgCount = 0; }, 1000);
el.exchange.replaceChildren(...exchanges.map((x) => new Option(x.title, x.name)));
el.exchange.value = exchange;
showInterval();
show();
loadSymbols(exchange);
window.marketReady = true;
