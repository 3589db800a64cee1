// The ops page: polls this node's control API (/api/v1/…) every two seconds
// and shows its nodes, upstreams, streams and clients, with charts of
// connections and message rate; its buttons pin and unpin streams, kick
// clients and drain the node. Everything shown is set as text, never as
// HTML: stream keys, origins and errors come from clients.
import { themeToggle } from './theme.js';
import { drawSeries } from './chart.js';

// POLL_MS is the time between the end of one refresh and the next: 2 s, or
// ?refresh=<seconds> (0.5 to 60).
const POLL_MS = ((r) => (Number.isFinite(r) && r > 0 ? Math.min(60, Math.max(0.5, r)) : 2) * 1000)(
  Number(new URLSearchParams(location.search).get('refresh')));
const TIMEOUT_MS = 5000;  // per request
const HISTORY = 150;      // chart points: five minutes at 2 s
const PAGE = 100;         // clients per page
const ARM_MS = 4000;      // a dangerous button waits this long for its confirming click
const tokenKey = 'marketgate.adminToken';

const $ = (id) => document.getElementById(id);
const el = {
  self: $('self'), state: $('state'), dot: $('dot'), notice: $('notice'), theme: $('theme'),
  drain: $('drain'), signout: $('signout'), login: $('login'), token: $('token'), loginerr: $('loginerr'),
  dash: $('dash'), conns: $('c-conns'), rate: $('c-rate'), streamsN: $('c-streams'), ups: $('c-ups'),
  nodesN: $('c-nodes'), connsChart: $('conns-chart'), rateChart: $('rate-chart'),
  connsInfo: $('conns-info'), rateInfo: $('rate-info'), streamsInfo: $('streams-info'), clientsInfo: $('clients-info'),
  nodes: $('nodes').tBodies[0], upstreams: $('upstreams').tBodies[0], streams: $('streams').tBodies[0],
  clients: $('clients').tBodies[0], pinform: $('pinform'), pinkey: $('pinkey'), prev: $('prev'), next: $('next'),
};

// ops is the page's state, also read by the browser tests.
const ops = window.opsPage = { polls: 0, failures: 0, self: '', clients: [], total: 0, streams: [], signedIn: false };
const history = { conns: [], rate: [] };
const armed = new Map(); // button key → time its confirmation expires
let offset = 0;
let timer = 0;
let chartsDirty = true;

// --- token -----------------------------------------------------------------
function token() { try { return sessionStorage.getItem(tokenKey) || ''; } catch { return ''; } }
function setToken(t) {
  try { if (t) sessionStorage.setItem(tokenKey, t); else sessionStorage.removeItem(tokenKey); } catch { /* storage off */ }
}

// --- API -------------------------------------------------------------------
class APIError extends Error {
  constructor(status, code, msg) { super(msg); this.status = status; this.code = code; }
}

// api calls the control API and returns its JSON answer, or throws an
// APIError with the answer's {"error":{"code","msg"}}. X-Marketgate-Admin
// tells a listener without a token that this is no cross-site request (a
// page on another origin cannot send it without a preflight).
async function api(method, path) {
  const headers = { Accept: 'application/json', 'X-Marketgate-Admin': '1' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const ac = new AbortController();
  const stop = setTimeout(() => ac.abort(), TIMEOUT_MS);
  let resp;
  try {
    resp = await fetch(path, { method, headers, signal: ac.signal, cache: 'no-store' });
  } catch {
    throw new APIError(0, 'unreachable', ac.signal.aborted ? 'the control listener did not answer in time' : 'the control listener is unreachable');
  } finally {
    clearTimeout(stop);
  }
  let body = null;
  try { body = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok) {
    throw new APIError(resp.status, body?.error?.code ?? `http_${resp.status}`, body?.error?.msg ?? resp.statusText);
  }
  return body;
}

// --- formatting ------------------------------------------------------------
function age(ts) {
  if (!ts) return '–';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(ts)) / 1000));
  if (!Number.isFinite(s)) return '–';
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor(s % 3600 / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + Math.floor(s % 86400 / 3600) + 'h';
}
function bytes(n) {
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + ' KiB';
  return n + ' B';
}
const rate = (v) => (v >= 100 ? Math.round(v) : +v.toFixed(1)).toLocaleString();

// --- rendering -------------------------------------------------------------
// cell returns a <td> holding text (or the given node), with class cls.
function cell(content, cls) {
  const td = document.createElement('td');
  if (content instanceof Node) td.append(content); else td.textContent = String(content ?? '–');
  if (cls) td.className = cls;
  return td;
}

// fill replaces tbody's rows with one per item, or a single row saying empty.
function fill(tbody, items, row, empty) {
  if (!items.length) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const td = cell(empty);
    td.colSpan = tbody.parentElement.tHead.rows[0].cells.length;
    tr.append(td);
    tbody.replaceChildren(tr);
    return;
  }
  tbody.replaceChildren(...items.map((it) => {
    const tr = document.createElement('tr');
    tr.append(...row(it));
    return tr;
  }));
}

// button makes a button; a dangerous one (confirm set) acts on the second
// click within ARM_MS and says so after the first.
function button(label, key, act, confirm) {
  const b = document.createElement('button');
  b.type = 'button';
  b.dataset.key = key;
  const isArmed = () => !!confirm && (armed.get(key) ?? 0) > Date.now();
  const show = () => { b.textContent = isArmed() ? confirm : label; b.classList.toggle('armed', isArmed()); };
  show();
  b.addEventListener('click', () => {
    if (confirm && !isArmed()) {
      armed.set(key, Date.now() + ARM_MS);
      show();
      setTimeout(() => { if (!isArmed()) { armed.delete(key); show(); } }, ARM_MS + 50);
      return;
    }
    armed.delete(key);
    show();
    b.disabled = true;
    act().finally(() => { b.disabled = false; });
  });
  return b;
}

function notice(msg, ok = false) {
  el.notice.textContent = msg;
  el.notice.classList.toggle('ok', ok);
  el.notice.hidden = !msg;
}

function status(state, text) {
  el.state.textContent = text;
  el.dot.className = 'dot ' + state;
}

// action runs a control call, reports its outcome and refreshes at once.
async function action(what, method, path) {
  try {
    await api(method, path);
    notice(`${what}: done`, true);
  } catch (e) {
    notice(`${what}: failed: ${e.message}`);
    if (e.status === 401) return showLogin('The token was refused.');
  }
  schedule(0);
}

function renderNodes(list, self) {
  ops.self = self;
  el.self.textContent = self || '–';
  el.nodesN.textContent = String(list.length);
  fill(el.nodes, list, (n) => [
    cell(n.id === self ? `${n.id} (this node)` : n.id, 'key'),
    cell(age(n.heartbeat) + ' ago'),
    cell(n.demand),
    cell(n.owns.length ? n.owns.join(', ') : '–', 'l'),
  ], 'no nodes');
}

function renderUpstreams(list) {
  const up = list.filter((u) => u.state === 'connected').length;
  el.ups.textContent = `${up} / ${list.length}`;
  fill(el.upstreams, list, (u) => {
    const pill = document.createElement('span');
    pill.className = 'pill ' + (u.state === 'connected' ? 'connected' : (u.state === 'idle' ? '' : 'bad'));
    pill.textContent = u.state;
    return [
      cell(u.exchange), cell(pill, 'l'), cell(u.streams), cell(u.pending_streams), cell(u.connections),
      cell(age(u.connected_since)), cell(u.reconnects),
      cell(u.lag_ms ? Math.round(u.lag_ms) + ' ms' : '–'),
      cell(u.last_error ? `${u.last_error} (${age(u.last_error_at)} ago)` : '–', 'l wrap'),
    ];
  }, 'no upstream feeds on this node');
}

function renderStreams(list) {
  ops.streams = list;
  const total = list.reduce((s, x) => s + x.messages_per_second, 0);
  el.rate.textContent = rate(total);
  el.streamsN.textContent = String(list.length);
  el.streamsInfo.textContent = `${list.filter((s) => s.pinned).length} pinned`;
  fill(el.streams, list, (s) => {
    const enc = encodeURIComponent(s.stream);
    const b = s.pinned
      ? button('Unpin', 'unpin:' + s.stream, () => action(`Unpin ${s.stream}`, 'DELETE', '/api/v1/streams/' + enc))
      : button('Pin', 'pin:' + s.stream, () => action(`Pin ${s.stream}`, 'PUT', '/api/v1/streams/' + enc));
    return [
      cell(s.stream, 'key'), cell(s.subscribers), cell(rate(s.messages_per_second)),
      cell(s.last_message ? age(s.last_message) + ' ago' : '–'), cell(s.owner || '–', 'l'),
      cell(s.pinned ? 'yes' : 'no'), cell(b),
    ];
  }, 'no streams: no client subscribes and none is pinned');
  return total;
}

function renderClients(page) {
  ops.clients = page.clients;
  ops.total = page.total;
  el.conns.textContent = String(page.total);
  const last = Math.min(page.total, offset + page.clients.length);
  el.clientsInfo.textContent = page.total ? `${page.clients.length ? offset + 1 : 0}–${last} of ${page.total}` : '';
  el.prev.disabled = offset === 0;
  el.next.disabled = last >= page.total;
  fill(el.clients, page.clients, (c) => {
    const streams = cell(c.streams.length ? `${c.streams.length}: ${c.streams.slice(0, 3).join(', ')}${c.streams.length > 3 ? ', …' : ''}` : '–', 'l wrap');
    streams.title = c.streams.join('\n');
    const acts = document.createElement('span');
    acts.append(button('Kick', 'kick:' + c.id, () => action(`Kick client ${c.id}`, 'DELETE', '/api/v1/clients/' + c.id), 'Confirm kick'));
    if (c.user) {
      // Every connection of the user, on every node of the cluster.
      acts.append(' ', button('Kick user', 'kickuser:' + c.user, () => action(`Kick user ${c.user}`, 'DELETE', '/api/v1/users/' + encodeURIComponent(c.user)), 'Confirm: all of this user'));
    }
    return [
      cell(c.id), cell(c.remote, 'l key'), cell(c.origin || '–', 'l wrap'), cell(c.protocol, 'l'), cell(c.user || '–', 'l key'), streams,
      cell(bytes(c.queue_bytes)), cell(c.drops), cell(age(c.connected_since)), cell(acts),
    ];
  }, 'no clients connected');
}

function drawCharts() {
  requestAnimationFrame(drawCharts);
  if (!chartsDirty || el.dash.hidden) return;
  chartsDirty = false;
  const span = Math.round(history.conns.length * POLL_MS / 1000);
  el.connsInfo.textContent = history.conns.length > 1 ? `last ${span}s` : 'collecting…';
  el.rateInfo.textContent = history.rate.length > 1 ? `this node's streams, last ${span}s` : 'collecting…';
  drawSeries(el.connsChart, history.conns, { floor: 0, fmt: (v) => String(Math.round(v)) });
  drawSeries(el.rateChart, history.rate, { floor: 0, colorVar: '--buy', fmt: rate });
}

function record(series, v) {
  series.push(v);
  if (series.length > HISTORY) series.splice(0, series.length - HISTORY);
  chartsDirty = true;
}

// --- polling ---------------------------------------------------------------
async function refresh() {
  const [nodes, ups, streams, clients] = await Promise.all([
    api('GET', '/api/v1/nodes'),
    api('GET', '/api/v1/upstreams'),
    api('GET', '/api/v1/streams'),
    api('GET', `/api/v1/clients?offset=${offset}&limit=${PAGE}`),
  ]);
  if (offset > 0 && clients.clients.length === 0 && clients.total > 0) {
    offset = Math.max(0, Math.floor((clients.total - 1) / PAGE) * PAGE); // the page emptied
  }
  renderNodes(nodes.nodes, nodes.self ?? '');
  renderUpstreams(ups.upstreams);
  const total = renderStreams(streams.streams);
  renderClients(clients);
  record(history.conns, clients.total);
  record(history.rate, total);
  ops.polls++;
}

async function poll() {
  timer = 0;
  if (document.hidden) return schedule(POLL_MS); // no load while nobody looks
  try {
    await refresh();
    ops.signedIn = true;
    showDash();
    status('open', `updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    ops.failures++;
    if (e.status === 401) return showLogin(token() ? 'The token was refused.' : '');
    if (e.status === 403) {
      status('closed', 'forbidden');
      return notice(`${e.message}. Open this page from the gateway's own host, or start it with --admin-token.`);
    }
    status('reconnecting', `${e.message} — retrying`);
  }
  schedule(POLL_MS);
}

function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(poll, ms);
}

function showDash() {
  el.login.hidden = true;
  el.dash.hidden = false;
  el.drain.hidden = false;
  el.signout.hidden = !token();
}

function showLogin(msg) {
  clearTimeout(timer);
  ops.signedIn = false;
  el.dash.hidden = true;
  el.drain.hidden = true;
  el.signout.hidden = true;
  el.login.hidden = false;
  el.loginerr.textContent = msg;
  status('closed', 'signed out');
  el.token.focus();
}

// --- controls --------------------------------------------------------------
el.login.addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken(el.token.value.trim());
  el.token.value = '';
  el.loginerr.textContent = '';
  notice('');
  schedule(0);
});
el.signout.addEventListener('click', () => { setToken(''); notice(''); showLogin(''); });
el.pinform.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const key = el.pinkey.value.trim();
  if (!key) return;
  el.pinkey.value = '';
  action(`Pin ${key}`, 'PUT', '/api/v1/streams/' + encodeURIComponent(key));
});
el.prev.addEventListener('click', () => { offset = Math.max(0, offset - PAGE); schedule(0); });
el.next.addEventListener('click', () => { offset += PAGE; schedule(0); });
el.drain.replaceWith(el.drain = Object.assign(button('Drain node', 'drain', async () => {
  try {
    await api('POST', '/api/v1/drain');
    notice('Draining: this node takes no new clients, hands its upstreams over, closes its clients with 1001 and stops.', true);
  } catch (e) {
    notice(`Drain: failed: ${e.message}`);
  }
}, 'Confirm drain'), { id: 'drain', className: 'danger', hidden: true }));
document.addEventListener('visibilitychange', () => { if (!document.hidden && ops.signedIn) schedule(0); });
window.addEventListener('resize', () => { chartsDirty = true; });
themeToggle(el.theme, () => { chartsDirty = true; });

requestAnimationFrame(drawCharts);
schedule(0);
window.opsReady = true;
