// The market page: ticker, trade tape, order book and candle chart of one
// symbol, fed by the gateway's native protocol through /marketgate.js and
// by its market-data REST (/api/v1/market/binance/…): the symbol list, the
// candle history. The chart is TradingView's Lightweight Charts (vendored
// in /static/vendor, loaded by index.html before this module).
import { connect } from '/marketgate.js';
import { themeToggle } from './theme.js';

const TAPE_ROWS = 50;
const BOOK_ROWS = 50; // rendered per side; about 25 show, the rest scroll
const KLINE_LIMIT = 500;
const INTERVALS = ['1m', '5m', '15m', '1h', '4h', '1d'];
const REST = '/api/v1/market/binance';

const $ = (id) => document.getElementById(id);
const el = {
  symbol: $('symbol'), symfilter: $('symfilter'), symcount: $('symcount'),
  state: $('state'), dot: $('dot'), rate: $('rate'), latency: $('latency'),
  theme: $('theme'), last: $('last'), change: $('change'), high: $('high'), low: $('low'),
  volume: $('volume'), tape: $('tape'), bids: $('bids'), asks: $('asks'), spread: $('spread'),
  askbox: $('askbox'), bidbox: $('bidbox'), bookinfo: $('bookinfo'), bookstale: $('bookstale'),
  chart: $('chart'), chartinfo: $('chartinfo'), intervals: $('intervals'),
};

// trim drops the trailing zeros of the exchange's fixed-point strings.
const trim = (s) => (typeof s === 'string' && s.includes('.')) ? s.replace(/0+$/, '').replace(/\.$/, '') : String(s ?? '–');
// price shows a price to 8 significant digits, as the chart's axis does.
const price = (s) => (Number.isFinite(Number(s)) ? String(+Number(s).toPrecision(8)) : '–');
const fmtVol = (v) => {
  const n = Number(v);
  if (!Number.isFinite(n)) return '–';
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'B';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(2) + 'K';
  return String(+n.toFixed(n >= 100 ? 1 : n >= 1 ? 3 : 5));
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
const tickerStreams = (s) => [`binance:${s}@trade`, `binance:${s}@miniTicker`];
const bookKey = (s) => `binance:${s}@book`;
const klineKey = (s, iv) => `binance:${s}@kline_${iv}`;

// --- state -----------------------------------------------------------------
const params = new URLSearchParams(location.search);
let sym = el.symbol.value;
let interval = INTERVALS.includes(params.get('interval')) ? params.get('interval') : '1m';
let msgCount = 0;
// symbols are the exchange's trading symbols, by lower-case name, once /symbols answered.
let symbols = new Map();
// page is what the browser tests read.
const page = window.marketPage = {
  sym, interval, trades: 0, tickers: 0, books: 0, bookChanges: 0, klines: 0, candles: 0,
  history: null, historyLoads: 0, symbols: 0, errors: [], closes: [], bookGaps: [],
};

// --- connection ------------------------------------------------------------
const client = window.mgClient = connect('/ws');
// lastClose is why the connection last closed, shown until it opens again.
let lastClose = null;
function showState(s) {
  let text = s;
  if (lastClose && (s === 'reconnecting' || s === 'disconnected') && lastClose.code !== 1006) {
    text += ` — ${lastClose.reason || 'closed'} (${lastClose.code})`;
  }
  el.state.textContent = text;
  el.state.title = s === 'disconnected' ? 'The gateway closed the connection; click to reconnect.' : '';
  el.dot.className = 'dot ' + s;
}
client.on('state', (s) => {
  if (s === 'open') lastClose = null;
  showState(s);
});
client.on('close', (c) => {
  lastClose = c;
  page.closes.push({ code: c.code, reason: c.reason, reconnect: c.reconnect });
  showState(client.state);
});
// After a close the client does not retry by itself (a kick), the user may.
el.state.addEventListener('click', () => { if (client.state === 'disconnected') client.reconnect(); });
showState(client.state);
const fail = (e) => {
  page.errors.push(e);
  el.state.textContent = `${client.state} — ${e.code}: ${e.msg}`;
};
client.on('error', fail);

// --- ticker and trades -----------------------------------------------------
function onTrade(t, forSym) {
  if (forSym !== sym) return; // a message still in flight for the old symbol
  msgCount++;
  page.trades++;
  const side = t.m ? 'sell' : 'buy'; // m: the buyer is the maker, so the taker sold
  const tr = document.createElement('tr');
  tr.className = side;
  const cells = [new Date(t.T ?? t.E).toLocaleTimeString(), trim(t.p), trim(t.q)];
  for (const c of cells) { const td = document.createElement('td'); td.textContent = c; tr.append(td); }
  el.tape.prepend(tr);
  while (el.tape.rows.length > TAPE_ROWS) el.tape.deleteRow(-1);
  if (Number.isFinite(t.E)) el.latency.textContent = Math.max(0, Date.now() - t.E) + ' ms';
}

function onTicker(k, forSym) {
  if (forSym !== sym) return;
  msgCount++;
  page.tickers++;
  el.last.textContent = trim(k.c);
  el.high.textContent = price(k.h);
  el.low.textContent = price(k.l);
  el.volume.textContent = fmtVol(k.v);
  const c = Number(k.c), o = Number(k.o);
  if (Number.isFinite(c) && Number.isFinite(o) && o !== 0) {
    const pct = (c - o) / o * 100;
    el.change.textContent = (pct >= 0 ? '+' : '') + pct.toFixed(2) + '%';
    el.change.className = pct >= 0 ? 'buy' : 'sell';
  }
}

// --- order book --------------------------------------------------------------
// rowsOf keeps BOOK_ROWS row elements in box, made once and updated in place.
function rowsOf(box) {
  const rows = [];
  for (let i = 0; i < BOOK_ROWS; i++) {
    const row = document.createElement('div');
    row.className = 'lvl';
    row.hidden = true;
    const p = document.createElement('span'), q = document.createElement('span'), c = document.createElement('span');
    row.append(p, q, c);
    rows.push({ row, p, q, c, w: '' });
  }
  box.replaceChildren(...rows.map((r) => r.row));
  return rows;
}
const bidRows = rowsOf(el.bids);
const askRows = rowsOf(el.asks); // asks[0] is the best ask, shown last (next to the spread)
el.asks.classList.add('rev');

// fill writes levels into rows; the bar is each level's cumulative size
// against the larger side's total over the rows shown.
function fill(rows, levels, cum, max) {
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const l = levels[i];
    if (!l) { if (!r.row.hidden) r.row.hidden = true; continue; }
    r.row.hidden = false;
    const p = trim(l[0]), q = trim(l[1]), c = fmtVol(cum[i]);
    if (r.p.textContent !== p) r.p.textContent = p;
    if (r.q.textContent !== q) r.q.textContent = q;
    if (r.c.textContent !== c) r.c.textContent = c;
    const w = (max > 0 ? Math.min(100, cum[i] / max * 100) : 0).toFixed(1) + '%';
    if (r.w !== w) { r.row.style.setProperty('--w', w); r.w = w; }
  }
}

const cumulative = (levels) => {
  const out = new Array(levels.length);
  let s = 0;
  for (let i = 0; i < levels.length; i++) { s += Number(levels[i][1]) || 0; out[i] = s; }
  return out;
};

let book = null;
let bookDirty = false;
let bookFailed = false; // the gateway refused the book stream
let askScrolled = false; // the asks box starts scrolled to the best ask

function drawBook() {
  requestAnimationFrame(drawBook);
  if (!bookDirty || !book) return;
  bookDirty = false;
  const bids = book.levels('bids', BOOK_ROWS), asks = book.levels('asks', BOOK_ROWS);
  const cb = cumulative(bids), ca = cumulative(asks);
  const max = Math.max(cb.at(-1) || 0, ca.at(-1) || 0);
  fill(bidRows, bids, cb, max);
  fill(askRows, asks, ca, max);
  if (!askScrolled && asks.length) { el.askbox.scrollTop = el.askbox.scrollHeight; askScrolled = true; }
  if (bids.length && asks.length) {
    const s = Number(asks[0][0]) - Number(bids[0][0]);
    const mid = (Number(asks[0][0]) + Number(bids[0][0])) / 2;
    el.spread.textContent = Number.isFinite(s)
      ? `spread ${+s.toPrecision(6)} (${(s / mid * 1e4).toFixed(2)} bp)` : '–';
  } else {
    el.spread.textContent = bookFailed ? 'no book stream' : book.state === 'waiting' ? 'waiting for the book…' : '–';
  }
  const state = book.state;
  el.bookstale.hidden = state === 'live';
  el.bookstale.textContent = bookFailed ? 'unavailable'
    : state === 'stale' ? `stale${book.staleReason ? ': ' + book.staleReason : ''}`
      : book.stats.gaps > 0 ? 'resyncing' : 'waiting';
  el.bookstale.className = 'badge ' + (bookFailed ? 'stale' : state);
  el.bookinfo.textContent = book.lastUpdateId === null ? '' : `${book.depth('bids')}/${book.depth('asks')} levels · #${book.lastUpdateId}`;
  page.bookShown = { bids: bids.length, asks: asks.length, lastUpdateId: book.lastUpdateId, state };
}
requestAnimationFrame(drawBook);

function openBook(s) {
  if (book) book.close();
  askScrolled = false;
  const b = book = window.mgBook = client.orderBook(bookKey(s));
  b.on('change', () => {
    if (b !== book) return;
    msgCount++;
    page.bookChanges++;
    bookDirty = true;
  });
  b.on('snapshot', () => { page.books++; });
  b.on('gap', (g) => { page.bookGaps.push(g); });
  b.on('error', (e) => { if (b === book) { bookFailed = true; bookDirty = true; } fail(e); });
  bookFailed = false;
  bookDirty = true;
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

// barOf turns a Binance kline, as an array from /klines or as the k object
// of a kline event, into a bar (time in seconds, as the chart takes it).
function barOf(k) {
  const a = Array.isArray(k) ? k : [k.t, k.o, k.h, k.l, k.c, k.v];
  return { time: Math.floor(Number(a[0]) / 1000), open: +a[1], high: +a[2], low: +a[3], close: +a[4], volume: +a[5] };
}

// chartGen numbers each (symbol, interval) shown: late answers of an
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

async function loadChart(s, iv) {
  const gen = ++chartGen;
  bars = [];
  pending = [];
  page.candles = 0;
  page.history = null;
  page.lastBar = null;
  if (candles) { candles.setData([]); volume.setData([]); }
  const info = symbols.get(s);
  if (candles && info) {
    const precision = decimals(info.tickSize);
    candles.applyOptions({ priceFormat: { type: 'price', precision, minMove: Number(info.tickSize) || 10 ** -precision } });
  }
  el.chartinfo.textContent = `${s.toUpperCase()} · ${iv} · loading…`;
  if (klineSub) klineSub.unsubscribe().catch(() => {});
  klineSub = client.subscribe([klineKey(s, iv)], (d) => {
    if (gen !== chartGen || !d || !d.k) return;
    msgCount++;
    page.klines++;
    const b = barOf(d.k);
    if (pending) pending.push(b);
    else applyBar(b);
  });
  klineSub.catch((e) => { if (gen === chartGen) fail(e); });
  let history = [];
  try {
    const u = `${REST}/klines?symbol=${encodeURIComponent(s.toUpperCase())}&interval=${iv}&limit=${KLINE_LIMIT}`;
    const r = await fetch(u);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const body = await r.json();
    if (!Array.isArray(body)) throw new Error('not a klines array');
    history = body.map(barOf).filter((b) => Number.isFinite(b.time) && Number.isFinite(b.close));
    page.history = history.length;
  } catch (e) {
    if (gen !== chartGen) return;
    page.history = 0;
    page.historyError = String(e.message || e);
  }
  if (gen !== chartGen) return;
  page.historyLoads++;
  bars = history;
  if (candles) {
    candles.setData(bars);
    recolorVolume();
  }
  const live = pending;
  pending = null;
  for (const b of live) applyBar(b);
  page.candles = bars.length;
  el.chartinfo.textContent = `${s.toUpperCase()} · ${iv} · UTC` + (page.history === 0 ? ' · no history' : '');
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
  loadChart(sym, interval);
});

// --- symbols ---------------------------------------------------------------
// fillSymbols lists the symbols matching the filter box, the current one
// always included.
function fillSymbols() {
  if (symbols.size === 0) return;
  const f = el.symfilter.value.trim().toLowerCase();
  const opts = [];
  let shown = 0;
  for (const [k, s] of symbols) {
    if (f && !k.includes(f) && !(s.base || '').toLowerCase().startsWith(f) && k !== sym) continue;
    if (shown >= 500 && k !== sym) continue; // a long list stays usable; the filter finds the rest
    const o = document.createElement('option');
    o.value = k;
    o.textContent = s.base && s.quote ? `${s.symbol} (${s.base}/${s.quote})` : s.symbol;
    opts.push(o);
    shown++;
  }
  el.symbol.replaceChildren(...opts);
  el.symbol.value = sym;
  el.symcount.textContent = f ? `${shown - (symbols.has(sym) && !sym.includes(f) ? 1 : 0)} of ${symbols.size}` : `${symbols.size}`;
}

async function loadSymbols() {
  try {
    const r = await fetch(`${REST}/symbols`);
    if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
    const body = await r.json();
    const list = (Array.isArray(body.symbols) ? body.symbols : [])
      .filter((s) => s && typeof s.symbol === 'string' && (s.status === undefined || s.status === 'TRADING'))
      .sort((a, b) => a.symbol.localeCompare(b.symbol));
    if (list.length === 0) throw new Error('no trading symbols');
    symbols = new Map(list.map((s) => [s.symbol.toLowerCase(), s]));
    page.symbols = symbols.size;
    fillSymbols();
    if (symbols.has(sym) && candles) {
      const info = symbols.get(sym);
      const precision = decimals(info.tickSize);
      candles.applyOptions({ priceFormat: { type: 'price', precision, minMove: Number(info.tickSize) || 10 ** -precision } });
    }
  } catch (e) {
    page.symbolsError = String(e.message || e); // the fixed list in the page stays
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
let current = null; // the ticker and trade subscription of the symbol shown

function resetViews() {
  el.tape.replaceChildren();
  for (const k of ['last', 'change', 'high', 'low', 'volume']) el[k].textContent = '–';
  el.spread.textContent = '–';
  el.change.className = '';
  el.latency.textContent = '–';
}

function subscribe(s) {
  const [trade, ticker] = tickerStreams(s);
  const handlers = { [trade]: onTrade, [ticker]: onTicker };
  current = client.subscribe([trade, ticker], (data, meta) => handlers[meta.stream]?.(data, s));
  current.then(() => { page.subscribed = s; }, fail);
  openBook(s);
  loadChart(s, interval);
}

el.symbol.addEventListener('change', () => {
  if (el.symbol.value === sym || !el.symbol.value) return;
  sym = page.sym = el.symbol.value;
  resetViews();
  current.unsubscribe().catch((e) => page.errors.push(e));
  subscribe(sym);
});

themeToggle(el.theme, () => restyleChart());
// The page follows the system's theme too, while the toggle was not used.
matchMedia('(prefers-color-scheme: light)').addEventListener('change', () => restyleChart());

setInterval(() => { el.rate.textContent = String(msgCount); msgCount = 0; }, 1000);
showInterval();
resetViews();
subscribe(sym);
loadSymbols();
window.marketReady = true;
