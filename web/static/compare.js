// The side-by-side page (/compare): one unified symbol on three venues at
// once — Binance, OKX and Bybit, spot or perpetual — each with its last
// price, best bid and ask, spread, top of the book and last trades, live;
// a summary table sets them against each other (the best bid and ask
// across venues, each last price against their mean, and whether one
// venue's bid is above another's ask).
//
// Trades and tickers come in the normalized form (one schema for the three
// venues); the books are the venues' native top-10 book streams kept by
// orderBook, which needs the raw form: the page holds two connections.
import { connect, streamKey, parseSymbol } from '/marketgate.js';
import { themeToggle } from './theme.js';
import {
  bp, cumulative, each, fillLevels, fixedSymbols, levelRows, moveSymbol, noticeBoard, price, tapeTrade, titleOf, unlisted, watchClients,
} from './venues.js';

/** VENUES are the venues side by side, by market. */
const VENUES = { spot: ['binance', 'okx', 'bybit'], perpetual: ['binance-futures', 'okx', 'bybit-linear'] };
const TAPE_ROWS = 12;
const BOOK_ROWS = 10;

const $ = (id) => document.getElementById(id);
const el = {
  symbol: $('csymbol'), market: $('market'), notice: $('notice'), state: $('state'), dot: $('dot'), rate: $('rate'),
  theme: $('theme'), sumrows: $('sumrows'), sumsym: $('sumsym'), cross: $('cross'), venues: $('venues'),
  tpl: $('venuetpl'), marketlink: $('marketlink'),
};

// --- notices (bad input in the address) ------------------------------------
const notice = noticeBoard(el.notice);

// --- what to show ------------------------------------------------------------
const params = new URLSearchParams(location.search);
let market = 'spot';
let pair = 'BTC/USDT'; // BASE/QUOTE; each venue's symbol adds the settle asset for perpetuals
{
  const want = params.get('symbol');
  if (want) {
    try {
      const s = parseSymbol(want);
      pair = `${s.base}/${s.quote}`;
      if (s.settle) market = 'perpetual';
    } catch (e) {
      notice('url', `${e.message}. Showing BTC/USDT.`);
    }
  }
  const m = params.get('market');
  if (m !== null) {
    if (Object.hasOwn(VENUES, m)) market = m;
    else notice('market', `Unknown market "${m}" in the address: want spot or perpetual. Showing ${market}.`);
  }
}

// page is what the browser tests read.
const page = window.comparePage = { pair, market, venues: {}, errors: [], renders: 0 };

// --- connections -----------------------------------------------------------
const client = window.mgClient = connect('/ws', { format: 'normalized' });
const bookClient = window.mgBookClient = connect('/ws');
let msgCount = 0;
page.closes = watchClients([client, bookClient], (text, s) => {
  el.state.textContent = text;
  el.state.title = s === 'disconnected' ? 'The gateway closed the connection; click to reconnect.' : '';
  el.dot.className = 'dot ' + s;
}, el.state);
// keep records the last 100 errors, for the tests.
const keep = (e) => { page.errors.push(e); if (page.errors.length > 100) page.errors.shift(); };
client.on('error', keep);
bookClient.on('error', keep);

// --- one venue -----------------------------------------------------------------
// Venue is one exchange's column: its subscriptions, what they told, and
// its elements.
class Venue {
  constructor(exchange, symbol) {
    this.exchange = exchange;
    this.symbol = symbol;
    this.ticker = {};
    this.lastTrade = null;
    this.trades = 0;
    this.error = '';
    this.dirty = true;
    const node = el.tpl.content.firstElementChild.cloneNode(true);
    this.node = node;
    const q = (c) => node.querySelector('.' + c);
    this.e = {
      title: q('vtitle'), badge: q('vbadge'), error: q('verror'), last: q('vlast'), bid: q('vbid'), ask: q('vask'),
      spread: q('vspread'), asks: q('vasks'), bids: q('vbids'), mid: q('vmid'), tape: q('vtape'),
    };
    node.dataset.exchange = exchange;
    node.setAttribute('aria-label', `${titleOf(exchange)}, ${symbol}`);
    this.e.title.textContent = `${titleOf(exchange)} `;
    const s = document.createElement('span');
    s.className = 'dim';
    s.textContent = symbol;
    this.e.title.append(s);
    this.bidRows = levelRows(this.e.bids, BOOK_ROWS);
    this.askRows = levelRows(this.e.asks, BOOK_ROWS);
    this.stat = page.venues[exchange] = { symbol, trades: 0, tickers: 0, last: null, bid: null, ask: null, book: 'waiting', error: '' };
    this.start();
  }

  start() {
    let keys;
    try {
      keys = { trade: streamKey(this.exchange, 'trade', this.symbol), ticker: streamKey(this.exchange, 'ticker', this.symbol),
        book: streamKey(this.exchange, 'book', this.symbol, { depth: BOOK_ROWS }) };
    } catch (e) {
      this.fail(e.message);
      return;
    }
    this.keys = keys;
    this.sub = client.subscribe([keys.trade, keys.ticker], (data, meta) => {
      msgCount++;
      each(data, (d) => (meta.stream === keys.trade ? this.onTrade(d) : this.onTicker(d)));
    });
    this.sub.catch((e) => this.fail(unlisted(e) ? `not available here: ${e.msg}` : `${e.code}: ${e.msg}`));
    this.book = bookClient.orderBook(keys.book);
    this.book.on('change', () => { msgCount++; this.dirty = true; });
    this.book.on('error', (e) => this.fail(unlisted(e) ? `not available here: ${e.msg}` : `${e.code}: ${e.msg}`));
  }

  fail(msg) {
    if (this.error) return;
    this.error = this.stat.error = msg;
    this.e.error.textContent = `${this.symbol} on ${titleOf(this.exchange)}: ${msg}`;
    this.e.error.hidden = false;
    this.dirty = true;
  }

  onTrade(t) {
    if (t.type !== 'trade') return;
    this.trades++;
    this.stat.trades++;
    this.lastTrade = t;
    tapeTrade(this.e.tape, t, TAPE_ROWS);
    this.dirty = true;
  }

  onTicker(k) {
    if (k.type !== 'ticker') return;
    this.stat.tickers++;
    // Bybit sends only what changed (linear) or no bid and ask (spot).
    for (const f of ['bid', 'ask', 'last', 'volume']) if (k[f]) this.ticker[f] = k[f];
    this.dirty = true;
  }

  /** top is the venue's last price and best bid and ask: the book's when it is live, else the ticker's. */
  top() {
    const live = this.book && this.book.state === 'live';
    const bid = live ? this.book.best('bids')?.[0] : this.ticker.bid;
    const ask = live ? this.book.best('asks')?.[0] : this.ticker.ask;
    const last = this.ticker.last || this.lastTrade?.price;
    const n = (v) => (v !== undefined && v !== '' && Number.isFinite(Number(v)) ? Number(v) : null);
    return { last: n(last), bid: n(bid), ask: n(ask), lastText: last, bidText: bid, askText: ask };
  }

  render() {
    if (!this.dirty) return;
    this.dirty = false;
    const t = this.top();
    Object.assign(this.stat, { last: t.last, bid: t.bid, ask: t.ask, book: this.book ? this.book.state : 'none' });
    this.e.last.textContent = price(t.lastText);
    this.e.bid.textContent = price(t.bidText);
    this.e.ask.textContent = price(t.askText);
    this.e.spread.textContent = t.bid !== null && t.ask !== null ? bp(t.ask - t.bid, (t.ask + t.bid) / 2) : '–';
    const b = this.book;
    if (b) {
      const bids = b.levels('bids', BOOK_ROWS), asks = b.levels('asks', BOOK_ROWS);
      const cb = cumulative(bids), ca = cumulative(asks);
      const max = Math.max(cb.at(-1) || 0, ca.at(-1) || 0);
      fillLevels(this.bidRows, bids, cb, max);
      fillLevels(this.askRows, asks, ca, max);
      this.e.mid.textContent = bids.length && asks.length
        ? `spread ${+(Number(asks[0][0]) - Number(bids[0][0])).toPrecision(6)}` : this.error ? 'no book' : 'waiting for the book…';
      const state = this.error ? 'unavailable' : b.state;
      this.e.badge.hidden = state === 'live';
      this.e.badge.textContent = state === 'stale' && b.staleReason ? `stale: ${b.staleReason}` : state;
      this.e.badge.className = 'badge vbadge ' + (state === 'waiting' ? 'waiting' : '');
    } else {
      this.e.badge.hidden = false;
      this.e.badge.textContent = 'unavailable';
      this.e.mid.textContent = 'no book';
    }
  }

  close() {
    if (this.sub) this.sub.unsubscribe().catch(() => {});
    if (this.book) this.book.close();
    this.node.remove();
  }
}

// --- the summary ---------------------------------------------------------------
// summarize compares the venues: the highest bid and the lowest ask are
// marked best, each last price is set against the venues' mean, and a bid
// on one venue above the ask on another (a crossed market between venues)
// is said in words.
function summarize() {
  const tops = venues.map((v) => ({ v, ...v.top() }));
  const lasts = tops.filter((t) => t.last !== null).map((t) => t.last);
  const mean = lasts.length ? lasts.reduce((a, b) => a + b, 0) / lasts.length : null;
  const withBid = tops.filter((t) => t.bid !== null), withAsk = tops.filter((t) => t.ask !== null);
  const bestBid = withBid.length > 1 ? withBid.reduce((a, b) => (b.bid > a.bid ? b : a)) : null;
  const bestAsk = withAsk.length > 1 ? withAsk.reduce((a, b) => (b.ask < a.ask ? b : a)) : null;
  const trs = tops.map((t) => {
    const tr = document.createElement('tr');
    tr.dataset.exchange = t.v.exchange;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = titleOf(t.v.exchange);
    tr.append(th);
    const diff = t.last !== null && mean !== null && lasts.length > 1 ? t.last - mean : null;
    const cells = [
      [price(t.lastText), ''],
      [diff === null ? '–' : `${diff >= 0 ? '+' : ''}${+diff.toPrecision(6)} (${bp(diff, mean)})`, diff === null ? '' : diff >= 0 ? 'up' : 'down'],
      [price(t.bidText), bestBid && t === bestBid ? 'best' : ''],
      [price(t.askText), bestAsk && t === bestAsk ? 'best' : ''],
      [t.bid !== null && t.ask !== null ? bp(t.ask - t.bid, (t.ask + t.bid) / 2) : '–', ''],
      [t.v.error ? 'unavailable' : String(t.v.trades), t.v.error ? 'warn' : ''],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      if (cls === 'best') {
        const s = document.createElement('span');
        s.className = 'sr';
        s.textContent = ' (best across venues)';
        td.append(s);
      }
      tr.append(td);
    }
    return tr;
  });
  el.sumrows.replaceChildren(...trs);
  let cross = 'Waiting for prices from at least two venues…';
  if (lasts.length > 1) {
    const hi = Math.max(...lasts), lo = Math.min(...lasts);
    cross = `Last prices differ by ${+(hi - lo).toPrecision(6)} (${bp(hi - lo, mean)}) between venues.`;
  }
  el.cross.className = 'cross';
  if (bestBid && bestAsk && bestBid.v !== bestAsk.v) {
    if (bestBid.bid > bestAsk.ask) {
      const gap = bestBid.bid - bestAsk.ask;
      cross += ` Crossed: ${titleOf(bestBid.v.exchange)} bids ${price(bestBid.bidText)}, above ${titleOf(bestAsk.v.exchange)}'s ask of ${price(bestAsk.askText)} (+${+gap.toPrecision(6)}, ${bp(gap, bestAsk.ask)}).`;
      el.cross.className = 'cross crossed';
    } else {
      cross += ` Best bid on ${titleOf(bestBid.v.exchange)}, best ask on ${titleOf(bestAsk.v.exchange)}.`;
    }
  }
  el.cross.textContent = cross;
  page.summary = { mean, bestBid: bestBid?.v.exchange ?? null, bestAsk: bestAsk?.v.exchange ?? null, text: cross };
}

// --- switching and drawing -----------------------------------------------------
let venues = [];

function show() {
  for (const v of venues) v.close();
  page.venues = {};
  page.pair = pair;
  page.market = market;
  // A perpetual settles in its quote (linear) on the three venues.
  const symbol = market === 'perpetual' ? `${pair}:${parseSymbol(pair).quote}` : pair;
  venues = VENUES[market].map((x) => new Venue(x, symbol));
  el.venues.replaceChildren(...venues.map((v) => v.node));
  el.sumsym.textContent = market === 'perpetual' ? `${pair} perpetual` : pair;
  for (const b of el.market.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.market === market));
  if (![...el.symbol.options].some((o) => o.value === pair)) {
    const o = document.createElement('option');
    o.value = o.textContent = pair;
    el.symbol.prepend(o);
  }
  el.symbol.value = pair;
  const q = new URLSearchParams({ symbol });
  history.replaceState(null, '', '?' + q);
  el.marketlink.href = '/?' + new URLSearchParams({ exchange: VENUES[market][0], symbol: moveSymbol(VENUES[market][0], pair) });
}

function draw() {
  for (const v of venues) v.render();
  summarize();
  page.renders++;
}
// Prices change many times a second: the page draws four times a second,
// which is also what a reader can follow.
setInterval(draw, 250);
setInterval(() => { el.rate.textContent = String(msgCount); msgCount = 0; }, 1000);

el.symbol.addEventListener('change', () => {
  if (!el.symbol.value || el.symbol.value === pair) return;
  pair = el.symbol.value;
  notice('url', '');
  show();
});
el.market.addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-market]');
  if (!b || b.dataset.market === market) return;
  market = b.dataset.market;
  notice('market', '');
  show();
});

// The pairs offered are the market page's common ones (as spot pairs);
// show adds one a URL asks for.
el.symbol.replaceChildren(...fixedSymbols(VENUES.spot[0]).map((p) => new Option(p, p)));
themeToggle(el.theme);
show();
window.compareReady = true;
