// What the market page and the side-by-side page share about venues: the
// symbol lists, moving a unified symbol from one venue to another, reading
// the normalized form, formatting, and the state of several connections
// shown as one.
import { exchanges, parseSymbol } from '/marketgate.js';

export { exchanges };

/** REST_SYMBOLS are the exchanges whose symbol list the gateway serves (/api/v1/market/<ex>/symbols). */
export const REST_SYMBOLS = new Set(['binance', 'binance-futures']);

/** REST_KLINES are the exchanges whose candle history the gateway serves (/api/v1/market/<ex>/klines). */
export const REST_KLINES = new Set(['binance', 'binance-futures']);

// COMMON_BASES are the bases of the fixed lists: the gateway serves no
// symbol list for OKX and Bybit, so the picker offers these common ones
// there (and for Binance when /symbols fails); a symbol a venue does not
// list gets the gateway's "unknown symbol", shown as such.
const COMMON_BASES = ['BTC', 'ETH', 'SOL', 'XRP', 'BNB', 'DOGE'];

/** fixedSymbols returns the common unified symbols offered on exchange when its list is not served. */
export function fixedSymbols(exchange) {
  const x = exchanges.find((e) => e.name === exchange);
  const spot = COMMON_BASES.map((b) => `${b}/USDT`);
  const perp = COMMON_BASES.map((b) => `${b}/USDT:USDT`);
  if (!x) return [];
  return x.market === 'spot' ? spot : x.market === 'perpetual' ? perp : [...spot, ...perp];
}

/** isExchange reports whether name is an exchange the client knows. */
export const isExchange = (name) => exchanges.some((e) => e.name === name);

/** titleOf returns an exchange's human name. */
export const titleOf = (name) => exchanges.find((e) => e.name === name)?.title ?? name;

/**
 * moveSymbol returns the unified symbol that stands for symbol on
 * exchange: the same pair, with the settle asset added for a perpetuals
 * venue (its quote) and dropped for a spot one; OKX lists both and takes
 * it as it is. A symbol that does not parse is returned unchanged (its
 * key then says why).
 */
export function moveSymbol(exchange, symbol) {
  let s;
  try { s = parseSymbol(symbol); } catch { return symbol; }
  const market = exchanges.find((e) => e.name === exchange)?.market;
  if (market === 'spot') return `${s.base}/${s.quote}`;
  if (market === 'perpetual') return `${s.base}/${s.quote}:${s.settle || s.quote}`;
  return s.unified;
}

/** each calls fn with every event of a normalized message's data (OKX and Bybit send arrays). */
export function each(data, fn) {
  if (Array.isArray(data)) for (const d of data) fn(d);
  else if (data) fn(data);
}

/** trim drops the trailing zeros of an exchange's fixed-point string. */
export const trim = (s) => (typeof s === 'string' && s.includes('.')) ? s.replace(/0+$/, '').replace(/\.$/, '') : String(s ?? '–');

/** price shows a price to 8 significant digits, as the chart's axis does. */
export const price = (s) => (s !== undefined && s !== '' && Number.isFinite(Number(s)) ? String(+Number(s).toPrecision(8)) : '–');

/** fmtVol shows a quantity with K, M and B. */
export const fmtVol = (v) => {
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(n)) return '–';
  if (n >= 1e9) return (n / 1e9).toFixed(2) + 'B';
  if (n >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (n >= 1e3) return (n / 1e3).toFixed(2) + 'K';
  return String(+n.toFixed(n >= 100 ? 1 : n >= 1 ? 3 : 5));
};

/** tapeTrade puts a normalized trade at the top of tape (a table body), coloured by the taker's side, keeping max rows. */
export function tapeTrade(tape, t, max) {
  const tr = document.createElement('tr');
  tr.className = t.side === 'sell' ? 'sell' : 'buy';
  for (const c of [new Date(t.timestamp).toLocaleTimeString(), trim(t.price), trim(t.amount)]) {
    const td = document.createElement('td');
    td.textContent = c;
    tr.append(td);
  }
  tape.prepend(tr);
  while (tape.rows.length > max) tape.deleteRow(-1);
}

/** levelRows makes n order-book level rows in box, to be updated in place by fillLevels. */
export function levelRows(box, n) {
  const rows = [];
  for (let i = 0; i < n; i++) {
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

/** cumulative returns the running total of the levels' sizes. */
export function cumulative(levels) {
  const out = new Array(levels.length);
  let s = 0;
  for (let i = 0; i < levels.length; i++) { s += Number(levels[i][1]) || 0; out[i] = s; }
  return out;
}

/**
 * fillLevels writes levels into rows (from levelRows), touching only what
 * changed; the bar is each level's cumulative size (cum) against max, the
 * larger side's total over the rows shown.
 */
export function fillLevels(rows, levels, cum, max) {
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

/** bp is d as basis points of ref, two decimals. */
export const bp = (d, ref) => (Number.isFinite(d) && ref > 0 ? (d / ref * 1e4).toFixed(2) + ' bp' : '–');

// STATE_RANK orders connection states from best to worst.
const STATE_RANK = ['open', 'connecting', 'reconnecting', 'disconnected', 'closed'];

/**
 * watchClients shows several clients as one connection state: the worst
 * of theirs, with the last close's code and reason while it is not open.
 * show(text, state) is called on every change; after a close the client
 * does not retry by itself (a kick), a click on clickable reconnects it.
 * It returns the list of closes, for the page's tests.
 */
export function watchClients(clients, show, clickable) {
  const closes = [];
  let lastClose = null;
  const worst = () => clients.map((c) => c.state).sort((a, b) => STATE_RANK.indexOf(b) - STATE_RANK.indexOf(a))[0];
  const render = () => {
    const s = worst();
    let text = s;
    if (lastClose && (s === 'reconnecting' || s === 'disconnected') && lastClose.code !== 1006) {
      text += ` — ${lastClose.reason || 'closed'} (${lastClose.code})`;
    }
    show(text, s);
  };
  for (const c of clients) {
    c.on('state', (s) => {
      if (s === 'open' && clients.every((x) => x.state === 'open')) lastClose = null;
      render();
    });
    c.on('close', (e) => {
      lastClose = e;
      closes.push({ code: e.code, reason: e.reason, reconnect: e.reconnect });
      render();
    });
  }
  clickable.addEventListener('click', () => {
    for (const c of clients) if (c.state === 'disconnected') c.reconnect();
  });
  render();
  return closes;
}

/**
 * unlisted reports whether a gateway error says the exchange does not list
 * the symbol (or the gateway does not carry the exchange): the key was
 * refused, not the connection.
 */
export const unlisted = (e) => e && e.code === 'invalid_stream';

/**
 * noticeBoard returns notice(topic, text), which says problems with what
 * was asked in box, by topic, until they no longer hold (an empty text
 * takes the topic's back); box is hidden while there is none.
 */
export function noticeBoard(box) {
  const notices = new Map();
  return (topic, text) => {
    if (text) notices.set(topic, text);
    else notices.delete(topic);
    box.textContent = [...notices.values()].join(' ');
    box.hidden = notices.size === 0;
  };
}
