// The market page: ticker, trade tape, order book and price chart of one
// symbol, fed by the gateway's native protocol through /marketgate.js.
import { connect } from '/marketgate.js';
import { themeToggle } from './theme.js';
import { drawSeries } from './chart.js';

const TAPE_ROWS = 50;
const BOOK_LEVELS = 10;
const CHART_POINTS = 300;

const $ = (id) => document.getElementById(id);
const el = {
  symbol: $('symbol'), state: $('state'), dot: $('dot'), rate: $('rate'), latency: $('latency'),
  theme: $('theme'), last: $('last'), change: $('change'), high: $('high'), low: $('low'),
  volume: $('volume'), tape: $('tape'), bids: $('bids'), asks: $('asks'), spread: $('spread'),
  chart: $('chart'), chartinfo: $('chartinfo'),
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
  return n.toFixed(2);
};
const streamsFor = (sym) => [`binance:${sym}@trade`, `binance:${sym}@miniTicker`, `binance:${sym}@depth20@100ms`];

// --- theme -----------------------------------------------------------------
themeToggle(el.theme, () => { chartDirty = true; });

// --- state -----------------------------------------------------------------
let sym = el.symbol.value;
let prices = []; // recent trade prices, at most CHART_POINTS
let chartDirty = true;
let msgCount = 0;
const page = window.marketPage = { sym, trades: 0, tickers: 0, books: 0, errors: [], closes: [] };

function resetViews() {
  el.tape.replaceChildren();
  el.bids.replaceChildren();
  el.asks.replaceChildren();
  for (const k of ['last', 'change', 'high', 'low', 'volume', 'spread']) el[k].textContent = '–';
  el.change.className = '';
  el.latency.textContent = '–';
  prices = [];
  chartDirty = true;
}

// --- handlers --------------------------------------------------------------
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
  const p = Number(t.p);
  if (Number.isFinite(p)) {
    prices.push(p);
    if (prices.length > CHART_POINTS) prices.splice(0, prices.length - CHART_POINTS);
    chartDirty = true;
  }
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

function bookRows(body, levels, max) {
  const rows = [];
  for (const [p, q] of levels) {
    const tr = document.createElement('tr');
    const a = document.createElement('td'); a.textContent = trim(p);
    const b = document.createElement('td'); b.textContent = trim(q);
    tr.append(a, b);
    tr.style.setProperty('--w', (max > 0 ? Math.min(100, Number(q) / max * 100) : 0).toFixed(1) + '%');
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function onDepth(d, forSym) {
  if (forSym !== sym) return;
  msgCount++;
  page.books++;
  const bids = (d.bids || []).slice(0, BOOK_LEVELS);
  const asks = (d.asks || []).slice(0, BOOK_LEVELS);
  const max = Math.max(0, ...bids.map((l) => Number(l[1]) || 0), ...asks.map((l) => Number(l[1]) || 0));
  bookRows(el.bids, bids, max);
  bookRows(el.asks, asks.slice().reverse(), max); // best ask next to the spread
  if (bids.length && asks.length) {
    const s = Number(asks[0][0]) - Number(bids[0][0]);
    el.spread.textContent = 'spread ' + (Number.isFinite(s) ? +s.toPrecision(6) : '–');
  }
}

// --- chart -----------------------------------------------------------------
function drawChart() {
  requestAnimationFrame(drawChart);
  if (!chartDirty) return;
  chartDirty = false;
  el.chartinfo.textContent = prices.length ? `last ${prices.length} trades` : 'waiting for trades…';
  drawSeries(el.chart, prices);
}
window.addEventListener('resize', () => { chartDirty = true; });
requestAnimationFrame(drawChart);

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
client.on('error', (e) => {
  page.errors.push(e);
  el.state.textContent = `${client.state} — ${e.code}: ${e.msg}`;
});

// current is the subscription of the symbol shown.
let current = null;

function subscribe(s) {
  const [trade, ticker, depth] = streamsFor(s);
  const handlers = { [trade]: onTrade, [ticker]: onTicker, [depth]: onDepth };
  current = client.subscribe([trade, ticker, depth], (data, meta) => handlers[meta.stream]?.(data, s));
  current.then(() => { page.subscribed = s; },
    (e) => { page.errors.push(e); el.state.textContent = `${client.state} — ${e.code}: ${e.msg}`; });
}

el.symbol.addEventListener('change', () => {
  sym = page.sym = el.symbol.value;
  resetViews();
  current.unsubscribe().catch((e) => page.errors.push(e));
  subscribe(sym);
});

setInterval(() => { el.rate.textContent = String(msgCount); msgCount = 0; }, 1000);
resetViews();
subscribe(sym);
window.marketReady = true;
