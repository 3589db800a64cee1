// marketgate.js: a browser client for the marketgate native protocol (/ws).
//
//   import { connect } from '/marketgate.js';
//   const client = connect('/ws');
//   client.on('gap', ({stream}) => resync(stream));
//   client.on('recovered', ({stream, recovered}) => note(stream, recovered));
//   client.on('close', ({code, reason, reconnect}) => tell(code, reason, reconnect));
//   const sub = await client.subscribe(['binance:btcusdt@trade'], (data, meta) => show(data, meta.seq));
//   sub.unsubscribe(); // this handler only; the stream is left when its last handler goes
//   const book = client.orderBook('binance:btcusdt@book');
//   // With tokens: getToken is called on every connection and before each
//   // token expires; the new token is sent on the open connection.
//   const authed = connect('/ws', { getToken: () => fetch('/token').then((r) => r.text()) });
//   book.on('change', () => draw(book.levels('bids', 25), book.levels('asks', 25), book.stale));
//
// No dependencies, no build step. See marketgate.d.ts for the API; the
// JSDoc types here are checked by tsc --strict --checkJs (tsconfig.json).

/**
 * @import { AuthEvent, BookKey, GapEvent, StreamKeyError, BookLevel, BookMessage, ConnectOptions, ConnectionState, EventMap, ExchangeInfo,
 *   GatewayError, MessageMeta, OrderBookEventMap, OrderBookOptions, OrderBookState, OrderBookStats,
 *   Position, StreamClass, StreamKeyOptions, SubscribeResult, UnifiedSymbol } from './marketgate.js'
 */

/**
 * Timer is what setTimeout returns, a number in browsers and an object in Node.
 * @typedef {ReturnType<typeof setTimeout>} Timer
 */

/**
 * Options are a client's options with every default filled in.
 * @typedef {{
 *   backoff: { min: number, max: number },
 *   pingInterval: number,
 *   pingTimeout: number,
 *   commandTimeout: number,
 *   maxPending: number,
 *   maxFrameBytes: number,
 *   maxCommandsPerSecond: number,
 *   format: 'raw' | 'normalized',
 *   getToken: (() => string | null | Promise<string | null>) | null,
 *   tokenRefreshLead: number,
 * }} Options
 */

/**
 * Handle is what a subscribe call's promise resolves to (a Subscription).
 * @typedef {{ readonly streams: string[], unsubscribe(): Promise<SubscribeResult> }} Handle
 */

/**
 * Waiter is a subscribe call waiting for the gateway: left counts the
 * commands of its streams still unanswered.
 * @typedef {{
 *   streams: string[], left: number, done: boolean, timer: Timer | null,
 *   resolve: () => void, reject: (e: GatewayError) => void,
 * }} Waiter
 */

/**
 * Sub is one subscribe call: its handler and the streams it still holds.
 * @typedef {{
 *   handler: (data: unknown, meta: MessageMeta) => void,
 *   streams: Set<string>, handle: Handle, waiter: Waiter | null,
 * }} Sub
 */

/**
 * Pending is a command in flight. onResult sees a subscribe reply before
 * its promise settles.
 * @typedef {{
 *   op: string, streams: string[], waiters: Waiter[], resub?: boolean,
 *   resolve: (result: any) => void, reject: (err: GatewayError) => void,
 *   timer?: Timer, onResult?: (result: any) => void,
 * }} Pending
 */

/**
 * Command is a command as sent to the gateway.
 * @typedef {{
 *   op: string, id?: number, streams?: string[], token?: string,
 *   format?: 'normalized', since?: Record<string, Position>,
 * }} Command
 */

/**
 * Socket is the part of a WebSocket the client uses, so tests can hand
 * it a small fake (options.WebSocket).
 * @typedef {{
 *   onopen: ((ev?: unknown) => void) | null,
 *   onmessage: ((ev: { data: unknown }) => void) | null,
 *   onclose: ((ev?: { code: number, reason: string }) => void) | null,
 *   onerror: ((ev?: unknown) => void) | null,
 *   send(data: string): void,
 *   close(code?: number, reason?: string): void,
 * }} Socket
 */

const DEFAULTS = {
  backoff: { min: 250, max: 10000 },
  pingInterval: 15000,
  pingTimeout: 10000,
  commandTimeout: 10000,
  maxPending: 256,
  maxFrameBytes: 4000, // the gateway closes native messages over 4 KiB with 1009
  maxCommandsPerSecond: 5, // the gateway closes a connection sending over 10 a second with 1008
  format: 'raw', // or 'normalized': one schema per class for every exchange
  getToken: null, // () => token or Promise<token>: authenticate every connection, refresh before expiry
  tokenRefreshLead: 30000, // refresh this long before the token expires (at most half its life)
};

// Close codes after which the client does not reconnect by itself: 1008 (an
// operator kicked the client, or it broke the flood or message-time limits),
// 1003 and 1009 (a binary or oversized message: retrying repeats the misuse),
// 4001-4003 (authentication refusals: 4001 a bad token, 4003 a token that
// expired; with getToken, 4003 reconnects with a fresh token) and 4029
// (the user holds all the connections its token allows). reconnect() opens
// the connection again.
const NO_RECONNECT = new Set([1003, 1008, 1009, 4001, 4002, 4003, 4029]);

// TOKEN_EXPIRED is the close code of a connection whose token expired.
const TOKEN_EXPIRED = 4003;

// SLOW_CONSUMER is the close code of a client that did not read fast
// enough: it reconnects, but after a delay that grows with every such close.
const SLOW_CONSUMER = 4008;

// SLOW_FORGET_MS is how long a connection must stay open for the slow
// consumer delay to start from its first step again.
const SLOW_FORGET_MS = 60000;

/**
 * connect returns a client that connects to url now and stays connected until close().
 * @param {string} url
 * @param {ConnectOptions} [options]
 */
export function connect(url, options = {}) {
  return new MarketgateClient(url, options);
}

/**
 * gatewayError makes an error object shaped as the gateway's.
 * @param {string} code
 * @param {string} msg
 * @param {string[]} [streams]
 * @returns {GatewayError}
 */
function gatewayError(code, msg, streams) {
  /** @type {GatewayError} */
  const e = { code, msg };
  if (streams) e.streams = streams;
  return e;
}

// report hands an exception thrown by application code to the page's error
// handling without breaking the client's own state.
/** @param {unknown} err */
function report(err) {
  setTimeout(() => { throw err; }, 0);
}

// callAll calls every listener of a set with arg; one that throws is
// reported and the others still run. The set may change meanwhile.
/**
 * @template T
 * @param {Set<(arg: T) => void>} listeners
 * @param {T} arg
 */
function callAll(listeners, arg) {
  for (const fn of [...listeners]) {
    try {
      fn(arg);
    } catch (e) {
      report(e);
    }
  }
}

// stopTimer cancels a timeout or interval, if any.
/** @param {Timer | ReturnType<typeof setInterval> | null | undefined} t */
function stopTimer(t) {
  if (t !== null && t !== undefined) clearTimeout(/** @type {any} */ (t)); // clears intervals too
}

// errorText is the message of a thrown value.
/** @param {unknown} e */
function errorText(e) {
  return String(e instanceof Error ? e.message : e);
}

/**
 * MarketgateClient is a client of the native protocol; see connect.
 */
export class MarketgateClient {
  /** @type {string} */
  #url;
  /** @type {Options} */
  #opts;
  /** @type {new (url: string) => Socket} */
  #WS;
  /** @type {Socket | null} */
  #ws = null;
  /** @type {ConnectionState | ''} */
  #state = '';
  #closed = false;
  #attempt = 0; // failed connections in a row: the reconnect delay grows with it
  #slow = 0; // slow consumer closes (4008) in a row
  #openedAt = 0; // performance.now() when the current connection opened, else 0
  /** @type {Timer | null} */
  #retryTimer = null;
  /** @type {ReturnType<typeof setInterval> | null} */
  #pingTimer = null;
  /** @type {Timer | null} */
  #pingDeadline = null;
  /** @type {Timer | null} */
  #refreshTimer = null; // the next token refresh (getToken)
  #nextId = 1;
  /** @type {{ [K in keyof EventMap]: Set<(arg: EventMap[K]) => void> }} */
  #listeners = { state: new Set(), gap: new Set(), error: new Set(), close: new Set(), recovered: new Set(), auth: new Set() };
  // stream -> Set of subscriptions {handler, streams, handle, waiter}, one per
  // subscribe call: the streams wanted, resubscribed after a reconnect. A
  // stream is left at the gateway when its last subscription lets it go.
  /** @type {Map<string, Set<Sub>>} */
  #streams = new Map();
  // stream -> {epoch, seq}: the stream's last position received, kept
  // across reconnects. seq is the cluster-wide position of the last message
  // (or of the subscribe reply, before any message); epoch comes from the
  // subscribe reply or a gap message, undefined while unknown. A stream
  // with both is resubscribed with "since" after a reconnect, to recover
  // what it missed.
  /** @type {Map<string, { epoch: string | undefined, seq: number }>} */
  #pos = new Map();
  // stream -> reason ('reconnect' | 'unrecovered'): streams whose next
  // message may follow a loss, and the gap reason it gets. A reconnect
  // sets 'reconnect'; a resubscription that recovered everything clears
  // it; one that could not sets 'unrecovered'.
  /** @type {Map<string, 'reconnect' | 'unrecovered'>} */
  #resync = new Map();
  // stream -> recovered (boolean): the outcome of the last resubscription
  // that asked to recover the stream, given to its next message's meta.
  /** @type {Map<string, boolean>} */
  #recovered = new Map();
  // subscribe commands refused with 'busy', waiting to be sent again:
  // {timer, waiters}. #busyTries counts such refusals in a row.
  /** @type {Set<{ timer: Timer | null, waiters: Waiter[] }>} */
  #retries = new Set();
  #busyTries = 0;
  // id -> {op, streams, waiters, resub, resolve, reject, timer}: commands in flight.
  /** @type {Map<number, Pending>} */
  #pending = new Map();
  // subscribe calls made while disconnected, settled by the resubscription.
  /** @type {Set<Waiter>} */
  #deferred = new Set();
  // frames waiting for the command rate limit, and the times of the sends
  // of the last second (at most maxCommandsPerSecond).
  /** @type {string[]} */
  #outbox = [];
  /** @type {number[]} */
  #sent = [];
  /** @type {Timer | null} */
  #outboxTimer = null;

  /**
   * @param {string} url
   * @param {ConnectOptions} [options]
   */
  constructor(url, options = {}) {
    this.#url = resolveURL(url);
    const { WebSocket: _, ...rest } = options;
    this.#opts = /** @type {Options} */ ({
      ...DEFAULTS,
      ...rest,
      backoff: { ...DEFAULTS.backoff, ...(options.backoff || {}) },
    });
    const WS = /** @type {(new (url: string) => Socket) | undefined} */ (options.WebSocket || globalThis.WebSocket);
    if (typeof WS !== 'function') throw new TypeError('marketgate: no WebSocket constructor');
    this.#WS = WS;
    // Connect once the caller has had the chance to add listeners.
    queueMicrotask(() => { if (!this.#closed) this.#open('connecting'); });
  }

  /** state is 'connecting' | 'open' | 'reconnecting' | 'disconnected' | 'closed'. */
  get state() { return this.#state || 'connecting'; }

  /** streams lists the streams the client keeps subscribed. */
  get streams() { return [...this.#streams.keys()]; }

  /**
   * position returns the stream's last position received, {epoch, seq},
   * or undefined when its epoch is not known (the stream cannot be
   * recovered then).
   */
  /**
   * @param {string} stream
   * @returns {Position | undefined}
   */
  position(stream) {
    const p = this.#pos.get(stream);
    if (!p || typeof p.epoch !== 'string' || p.epoch === '' || typeof p.seq !== 'number') return undefined;
    return { epoch: p.epoch, seq: p.seq };
  }

  /**
   * on adds a listener of event and returns a function that removes it.
   * @template {keyof EventMap} K
   * @param {K} event
   * @param {(arg: EventMap[K]) => void} fn
   * @returns {() => boolean}
   */
  on(event, fn) {
    /** @type {Set<(arg: EventMap[K]) => void> | undefined} */
    const set = Object.hasOwn(this.#listeners, event) ? /** @type {any} */ (this.#listeners[event]) : undefined;
    if (!set) throw new TypeError(`marketgate: unknown event ${event}`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /**
   * off removes a listener added by on.
   * @template {keyof EventMap} K
   * @param {K} event
   * @param {(arg: EventMap[K]) => void} fn
   */
  off(event, fn) {
    if (Object.hasOwn(this.#listeners, event)) /** @type {Set<(arg: EventMap[K]) => void>} */ (this.#listeners[event]).delete(fn);
  }

  /**
   * subscribe adds onMessage to streams and returns a promise for a handle
   * whose unsubscribe() removes this handler only. The promise itself has
   * unsubscribe() and streams too, so a caller may let go before the reply.
   * @param {readonly string[]} streams
   * @param {(data: any, meta: any) => void} onMessage
   * @returns {Promise<Handle> & Handle}
   */
  subscribe(streams, onMessage) {
    /** @type {(code: string, msg: string) => Promise<Handle> & Handle} */
    const fail = (code, msg) => withHandle(Promise.reject(gatewayError(code, msg)), EMPTY_HANDLE);
    if (this.#closed) return fail('closed', 'client closed');
    if (!Array.isArray(streams) || streams.length === 0 || !streams.every((s) => typeof s === 'string')) {
      return fail('bad_request', 'streams must be a non-empty list of strings');
    }
    if (typeof onMessage !== 'function') return fail('bad_request', 'onMessage must be a function');
    if (this.#pending.size + this.#deferred.size >= this.#opts.maxPending) {
      return fail('too_many_pending', 'too many commands awaiting a reply');
    }
    const list = [...new Set(streams)];
    /** @type {Sub} */
    const sub = { handler: onMessage, streams: new Set(list), handle: EMPTY_HANDLE, waiter: null };
    sub.handle = Object.freeze({
      get streams() { return [...sub.streams]; },
      unsubscribe: () => this.#release(sub),
    });
    for (const s of list) {
      let subs = this.#streams.get(s);
      if (!subs) {
        subs = new Set();
        this.#streams.set(s, subs);
      }
      subs.add(sub);
    }
    /** @type {Promise<Handle>} */
    const p = new Promise((resolve, reject) => {
      /** @type {Waiter} */
      const w = sub.waiter = { streams: list, left: 0, done: false, timer: null, resolve: () => {}, reject: () => {} };
      w.resolve = () => { if (!w.done) { w.done = true; stopTimer(w.timer); this.#deferred.delete(w); resolve(sub.handle); } };
      // A failed call is undone: its handler leaves every stream of the call.
      w.reject = (e) => {
        if (w.done) return;
        w.done = true;
        stopTimer(w.timer);
        this.#deferred.delete(w);
        this.#leave(this.#detach(sub, [...sub.streams])).catch(() => {});
        reject(e);
      };
      w.timer = setTimeout(() => w.reject(gatewayError('timeout', 'no reply from the gateway')), this.#opts.commandTimeout);
      if (this.#state === 'open') {
        this.#sendSubscribe(list, [w], false);
      } else {
        this.#deferred.add(w); // sent with the resubscription once connected
      }
    });
    return withHandle(p, sub.handle);
  }

  /**
   * unsubscribe stops delivering streams to every handler at once and
   * unsubscribes them at the gateway. A subscription handle's unsubscribe()
   * removes one handler only.
   * @param {readonly string[]} streams
   * @returns {Promise<SubscribeResult>}
   */
  unsubscribe(streams) {
    if (!Array.isArray(streams) || streams.length === 0) {
      return Promise.reject(gatewayError('bad_request', 'streams must be a non-empty list'));
    }
    const list = [...new Set(streams)];
    for (const s of list) this.#forget(s);
    if (this.#state !== 'open') return Promise.resolve({ streams: list });
    return this.#command({ op: 'unsubscribe', streams: list }).then(() => ({ streams: list }));
  }

  /**
   * list asks the gateway for this connection's streams.
   * @returns {Promise<SubscribeResult>}
   */
  list() {
    if (this.#state !== 'open') return Promise.reject(gatewayError('disconnected', 'not connected'));
    return this.#command({ op: 'list' });
  }

  /**
   * orderBook subscribes a book stream ("binance:btcusdt@book",
   * "binance:btcusdt@book@100", "okx:book:BTC-USDT", "bybit:book.50.BTCUSDT";
   * streamKey(exchange, 'book', symbol) makes them) and returns the book it keeps: see
   * OrderBook. close() lets the stream go.
   * @param {BookKey} key
   * @param {OrderBookOptions} [options]
   * @returns {OrderBook}
   */
  orderBook(key, options = {}) {
    // The normalized form drops the update ids a kept book checks.
    if (this.#opts.format === 'normalized') throw new Error("orderBook needs the client's format 'raw'");
    return new OrderBook(this, key, options);
  }

  /**
   * reconnect connects at once: after a close the client does not retry by
   * itself (state 'disconnected'), or to skip the wait while 'reconnecting'.
   * It does nothing while connecting or open, or once closed.
   */
  reconnect() {
    if (this.#closed || this.#ws) return;
    stopTimer(this.#retryTimer);
    this.#retryTimer = null;
    this.#open('reconnecting');
  }

  /** close closes the connection for good; pending promises reject with code "closed". */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    stopTimer(this.#retryTimer);
    stopTimer(this.#refreshTimer);
    this.#stopPing();
    this.#clearOutbox();
    const ws = this.#ws;
    this.#ws = null;
    if (ws) {
      detach(ws);
      try { ws.close(1000); } catch { /* already closing */ }
    }
    this.#cancelRetries();
    const err = gatewayError('closed', 'client closed');
    for (const p of this.#pending.values()) this.#settle(p, err);
    this.#pending.clear();
    for (const w of [...this.#deferred]) w.reject(err);
    this.#setState('closed');
  }

  // --- connection ---

  /** @param {ConnectionState} state */
  #open(state) {
    this.#setState(state);
    let ws;
    try {
      ws = new this.#WS(this.#url);
    } catch (e) {
      this.#emit('error', gatewayError('connect_failed', errorText(e)));
      this.#retryIn(this.#nextDelay());
      return;
    }
    this.#ws = ws;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (ev) => this.#onMessage(ws, ev);
    ws.onclose = (ev) => this.#onDrop(ws, ev ? ev.code : 1006, ev ? ev.reason : '');
    ws.onerror = () => {}; // a close event follows
  }

  /** @param {Socket} ws */
  #onOpen(ws) {
    if (ws !== this.#ws) return;
    this.#openedAt = performance.now();
    if (this.#opts.getToken) {
      // The token goes first; the state is 'open', and commands go out,
      // once the gateway has accepted it.
      this.#authenticate(ws, true);
      return;
    }
    this.#ready();
  }

  // authenticate gets a token from getToken and sends it on ws: first on a
  // new connection (which becomes 'open' when the token is accepted), then
  // before each token expires, on the same connection. A token the gateway
  // refuses closes the connection (4001). getToken returning '' or null
  // leaves a new connection anonymous.
  /**
   * @param {Socket} ws
   * @param {boolean} first
   */
  async #authenticate(ws, first) {
    stopTimer(this.#refreshTimer);
    this.#refreshTimer = null;
    const getToken = this.#opts.getToken;
    if (!getToken) return;
    let token;
    try {
      token = await getToken();
    } catch (e) {
      if (ws !== this.#ws || this.#closed) return;
      this.#emit('error', gatewayError('token_failed', errorText(e)));
      if (first) {
        try { ws.close(4000, 'no token'); } catch { /* ignore */ }
        this.#onDrop(ws, 4000, 'getToken failed');
      } else {
        // Try again soon; the gateway closes the connection (4003) if
        // the token expires meanwhile.
        this.#refreshTimer = setTimeout(() => this.#authenticate(ws, false), 5000);
      }
      return;
    }
    if (ws !== this.#ws || this.#closed) return;
    if (typeof token !== 'string' || token === '') {
      if (first) this.#ready();
      return;
    }
    const id = this.#nextId++;
    /** @type {Pending} */
    const p = {
      op: 'auth', streams: [], waiters: [],
      /** @param {{ user: string, expires: number, ttl: number } | undefined} r */
      resolve: (r) => {
        if (ws !== this.#ws) return;
        this.#scheduleRefresh(ws, r && r.ttl);
        this.#emit('auth', /** @type {AuthEvent} */ ({ user: r && r.user, expires: r && r.expires, ttl: r && r.ttl }));
        if (first) this.#ready();
      },
      // A refused token closes the connection: onDrop follows.
      reject: (err) => { if (err && err.code !== 'disconnected') this.#emit('error', err); },
    };
    p.timer = setTimeout(() => {
      if (this.#pending.get(id) === p) {
        this.#pending.delete(id);
        this.#drop(); // no answer to the token: the connection is of no use
      }
    }, this.#opts.commandTimeout);
    this.#pending.set(id, p);
    this.#send({ op: 'auth', id, token });
  }

  // scheduleRefresh arms the next token refresh: tokenRefreshLead before
  // the token's end, and at most half way through its life.
  /**
   * @param {Socket} ws
   * @param {number | undefined} ttl
   */
  #scheduleRefresh(ws, ttl) {
    stopTimer(this.#refreshTimer);
    this.#refreshTimer = null;
    if (ttl === undefined || !(ttl > 0)) return;
    const lead = Math.min(this.#opts.tokenRefreshLead, ttl * 1000 / 2);
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (ws === this.#ws && !this.#closed) this.#authenticate(ws, false);
    }, ttl * 1000 - lead);
  }

  // ready makes a connection 'open': resubscribes and sends what waited.
  #ready() {
    this.#setState('open');
    this.#busyTries = 0;
    this.#startPing();
    const waiters = [...this.#deferred];
    this.#deferred.clear();
    const streams = [...this.#streams.keys()];
    if (streams.length > 0) this.#sendSubscribe(streams, waiters, true);
  }

  // onDrop handles a lost connection: commands in flight are moved on, the
  // close is reported, and a reconnect is scheduled unless the code says not to.
  /**
   * @param {Socket} ws
   * @param {number} [code]
   * @param {string} [reason]
   */
  #onDrop(ws, code = 1006, reason = '') {
    if (ws !== this.#ws) return;
    detach(ws);
    this.#ws = null;
    const lived = this.#openedAt > 0 ? performance.now() - this.#openedAt : 0;
    this.#openedAt = 0;
    this.#stopPing();
    this.#clearOutbox();
    stopTimer(this.#refreshTimer);
    this.#refreshTimer = null;
    // Events of every stream may be lost until it is resubscribed (and
    // are not, for those the resubscription recovers). A loss not yet
    // reported keeps its reason.
    for (const s of this.#streams.keys()) if (!this.#resync.has(s)) this.#resync.set(s, 'reconnect');
    this.#cancelRetries();
    const pend = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pend) {
      stopTimer(p.timer);
      if (p.op === 'subscribe') {
        // Its streams are resubscribed on the next connection; so are the callers waiting.
        for (const w of p.waiters) if (!w.done) this.#deferred.add(w);
      } else if (p.op === 'unsubscribe') {
        p.resolve({}); // the next connection does not carry those streams
      } else {
        p.reject(gatewayError('disconnected', 'connection lost'));
      }
    }
    if (this.#closed) return;
    const again = !NO_RECONNECT.has(code) || (code === TOKEN_EXPIRED && !!this.#opts.getToken);
    const delay = again ? this.#dropDelay(code, lived) : undefined;
    // A client closed for not reading fast enough does not ask for what it
    // missed: the replay would overflow its queue again. Its streams start
    // afresh after the reconnect (a 'reconnect' gap).
    if (code === SLOW_CONSUMER) this.#pos.clear();
    this.#emit('close', again ? { code, reason, reconnect: true, delay } : { code, reason, reconnect: false });
    if (this.#closed || this.#ws) return; // a listener closed the client, or reconnected it
    if (again) {
      this.#retryIn(/** @type {number} */ (delay));
    } else {
      stopTimer(this.#retryTimer);
      this.#setState('disconnected');
    }
  }

  // dropDelay is how long to wait before reconnecting after a connection
  // that lived for lived ms closed with code. A connection that lived for
  // the longest backoff counts as working: the next wait starts from the
  // minimum again. After a slow consumer close the wait is never short, and
  // doubles with each such close, up to the longest backoff.
  /**
   * @param {number} code
   * @param {number} lived
   * @returns {number}
   */
  #dropDelay(code, lived) {
    const { min, max } = this.#opts.backoff;
    if (lived >= max) this.#attempt = 0;
    if (lived >= SLOW_FORGET_MS) this.#slow = 0;
    if (code !== SLOW_CONSUMER) return this.#nextDelay();
    const cap = Math.min(max, Math.max(min, max / 8) * 2 ** Math.min(this.#slow, 30));
    this.#slow++;
    return cap / 2 + Math.random() * cap / 2; // equal jitter: at least half the step
  }

  // nextDelay is the next wait between failed connections: exponential
  // from min to max with full jitter.
  #nextDelay() {
    const { min, max } = this.#opts.backoff;
    const cap = Math.min(max, min * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.max(0, Math.random() * cap); // full jitter
  }

  /** @param {number} delay */
  #retryIn(delay) {
    if (this.#closed) return;
    this.#setState('reconnecting');
    stopTimer(this.#retryTimer);
    this.#retryTimer = setTimeout(() => { this.#retryTimer = null; this.#open('reconnecting'); }, delay);
  }

  // drop abandons a connection that seems dead without waiting for the
  // browser to notice.
  #drop() {
    const ws = this.#ws;
    if (!ws) return;
    try { ws.close(4000, 'ping timeout'); } catch { /* ignore */ }
    this.#onDrop(ws, 4000, 'ping timeout');
  }

  #startPing() {
    this.#stopPing();
    const iv = this.#opts.pingInterval;
    if (!(iv > 0)) return;
    this.#pingTimer = setInterval(() => {
      if (this.#state !== 'open' || this.#pingDeadline !== null) return;
      this.#pingDeadline = setTimeout(() => this.#drop(), this.#opts.pingTimeout);
      this.#command({ op: 'ping' }).catch(() => {});
    }, iv);
  }

  #stopPing() {
    stopTimer(this.#pingTimer);
    stopTimer(this.#pingDeadline);
    this.#pingTimer = null;
    this.#pingDeadline = null;
  }

  // --- commands ---

  // send queues a command for the connection; false when the queue is full.
  // Commands leave at most maxCommandsPerSecond in any second, so that a
  // burst (a resubscription in many chunks, many subscribe calls at once)
  // never trips the gateway's flood limit.
  /**
   * @param {Command} obj
   * @returns {boolean}
   */
  #send(obj) {
    if (this.#outbox.length >= this.#opts.maxPending) return false;
    this.#outbox.push(JSON.stringify(obj));
    if (this.#outboxTimer === null) this.#flush();
    return true;
  }

  #flush() {
    this.#outboxTimer = null;
    const limit = Math.max(1, this.#opts.maxCommandsPerSecond);
    while (this.#outbox.length > 0 && this.#ws) {
      const now = performance.now();
      while (this.#sent.length > 0 && now - this.#sent[0] >= 1000) this.#sent.shift();
      if (this.#sent.length >= limit) {
        this.#outboxTimer = setTimeout(() => this.#flush(), 1000 - (now - this.#sent[0]) + 1);
        return;
      }
      const frame = /** @type {string} */ (this.#outbox.shift());
      try { this.#ws.send(frame); } catch { /* the connection is closing: onclose follows */ }
      this.#sent.push(now);
    }
  }

  // clearOutbox drops what a lost connection did not send: the commands'
  // promises are settled by onDrop.
  #clearOutbox() {
    stopTimer(this.#outboxTimer);
    this.#outboxTimer = null;
    this.#outbox = [];
  }

  // command sends one command and returns a promise for its result.
  /**
   * @param {Command} cmd
   * @param {Partial<Pending>} [extra]
   * @returns {Promise<any>}
   */
  #command(cmd, extra = {}) {
    return new Promise((resolve, reject) => {
      if (this.#state !== 'open' || !this.#ws) {
        reject(gatewayError('disconnected', 'not connected'));
        return;
      }
      const id = this.#nextId++;
      /** @type {Pending} */
      const p = { op: cmd.op, streams: cmd.streams || [], waiters: [], resub: false, ...extra, resolve, reject };
      p.timer = setTimeout(() => {
        if (this.#pending.get(id) === p) {
          this.#pending.delete(id);
          this.#settle(p, gatewayError('timeout', 'no reply from the gateway'));
        }
      }, this.#opts.commandTimeout);
      this.#pending.set(id, p);
      if (!this.#send({ ...cmd, id })) {
        this.#pending.delete(id);
        stopTimer(p.timer);
        reject(gatewayError('too_many_pending', 'too many commands waiting to be sent'));
      }
    });
  }

  // sendSubscribe subscribes streams in as few commands as fit the
  // gateway's frame limit (one, unless the list is very long). A
  // resubscription (resub) asks to recover, with "since", every stream
  // that may have lost messages and whose position is known. retry says
  // the streams are those of one command sent before (refused, to be sent
  // again): its waiters count the new commands instead of that one.
  /**
   * @param {string[]} streams
   * @param {Waiter[]} waiters
   * @param {boolean} resub
   * @param {boolean} [retry]
   */
  #sendSubscribe(streams, waiters, resub, retry = false) {
    const since = resub ? this.#since(streams) : null;
    const chunks = this.#chunks(streams, since);
    for (const w of waiters) {
      const n = chunks.filter((c) => w.streams.some((s) => c.includes(s))).length;
      w.left = retry ? w.left - 1 + n : n;
      if (w.left <= 0) w.resolve(); // nothing of it left to send
    }
    for (const chunk of chunks) {
      const ws = waiters.filter((w) => w.streams.some((s) => chunk.includes(s)));
      /** @type {Command} */
      const cmd = { op: 'subscribe', streams: chunk };
      if (this.#opts.format === 'normalized') cmd.format = 'normalized';
      /** @type {Record<string, Position> | null} */
      let asked = null;
      if (since) {
        for (const s of chunk) {
          if (since[s]) (asked ||= {})[s] = since[s];
        }
        if (asked) cmd.since = asked;
      }
      /** @param {any} result */
      const onResult = (result) => this.#onSubscribed(chunk, asked, result);
      this.#command(cmd, { waiters: ws, resub, onResult })
        .then(() => {
          this.#busyTries = 0;
          for (const w of ws) if (--w.left <= 0) w.resolve();
        }, (err) => this.#subscribeFailed(chunk, ws, resub, err));
    }
  }

  // since returns the positions to recover streams from: those of the
  // streams that may have lost messages (see #resync) and whose position
  // is known; null when there are none.
  /**
   * @param {string[]} streams
   * @returns {Record<string, Position> | null}
   */
  #since(streams) {
    /** @type {Record<string, Position> | null} */
    let since = null;
    for (const s of streams) {
      if (!this.#resync.has(s)) continue;
      const p = this.position(s);
      if (p) (since ||= {})[s] = p;
    }
    return since;
  }

  // onSubscribed takes a subscribe reply's positions and, for the streams
  // it asked to recover (asked), whether they were: a recovered stream
  // keeps its position, as the messages it missed follow, and its next
  // message is no gap; one that was not starts again from the reply's
  // position, and its next message (flagged gap:true by the gateway) is a
  // gap of reason 'unrecovered'. It runs before the reply's promise
  // settles, so before any message that follows the reply.
  /**
   * @param {string[]} chunk
   * @param {Record<string, Position> | null} asked
   * @param {any} result
   */
  #onSubscribed(chunk, asked, result) {
    const positions = result && typeof result.positions === 'object' && result.positions || {};
    const recovered = result && typeof result.recovered === 'object' && result.recovered || {};
    const outcomes = [];
    for (const s of chunk) {
      if (!this.#streams.has(s)) continue; // let go meanwhile
      const p = positions[s];
      const pos = p && typeof p.epoch === 'string' && p.epoch !== '' && typeof p.seq === 'number'
        ? { epoch: p.epoch, seq: p.seq } : null;
      if (!asked || !asked[s]) {
        // A stream already flowing keeps its own position: its messages
        // are more recent than, or as recent as, the reply's.
        const cur = this.#pos.get(s);
        if (pos && (!cur || cur.epoch !== pos.epoch || typeof cur.seq !== 'number')) this.#pos.set(s, pos);
        continue;
      }
      const ok = recovered[s] === true;
      if (ok) {
        if (this.#resync.get(s) === 'reconnect') this.#resync.delete(s);
      } else {
        if (pos) this.#pos.set(s, pos);
        else this.#pos.delete(s);
        this.#resync.set(s, 'unrecovered');
      }
      this.#recovered.set(s, ok);
      outcomes.push({ stream: s, recovered: ok });
    }
    for (const o of outcomes) this.#emit('recovered', o);
  }

  // chunks splits streams into lists that each fit one command, with the
  // positions of since, under the gateway's frame limit.
  /**
   * @param {string[]} streams
   * @param {Record<string, Position> | null} [since]
   * @returns {string[][]}
   */
  #chunks(streams, since = null) {
    const base = since ? 80 : 64;
    const chunks = [];
    let cur = [];
    let size = base;
    for (const s of streams) {
      let n = JSON.stringify(s).length + 1;
      if (since && since[s]) n += JSON.stringify(s).length + JSON.stringify(since[s]).length + 2;
      if (cur.length > 0 && size + n > this.#opts.maxFrameBytes) {
        chunks.push(cur);
        cur = [];
        size = base;
      }
      cur.push(s);
      size += n;
    }
    if (cur.length > 0) chunks.push(cur);
    return chunks;
  }

  // retryBusy sends a subscribe command that the gateway refused with
  // 'busy' (too many subscribes waiting for history on the connection, or
  // on the node) or 'unavailable' (the node is starting and cannot check
  // the streams yet) again after a backoff that grows with each such refusal
  // in a row. The wait ends with the connection: the next one
  // resubscribes everything anyway.
  /**
   * @param {string[]} chunk
   * @param {Waiter[]} waiters
   * @param {boolean} resub
   */
  #retryBusy(chunk, waiters, resub) {
    const { min, max } = this.#opts.backoff;
    const cap = Math.min(max, min * 2 ** Math.min(this.#busyTries, 30));
    this.#busyTries++;
    /** @type {{ timer: Timer | null, waiters: Waiter[] }} */
    const r = { waiters, timer: null };
    r.timer = setTimeout(() => {
      this.#retries.delete(r);
      if (this.#state !== 'open') {
        for (const w of waiters) if (!w.done) this.#deferred.add(w);
        return;
      }
      const rest = chunk.filter((s) => this.#streams.has(s));
      this.#sendSubscribe(rest, waiters.filter((w) => !w.done), resub, true);
    }, cap / 2 + Math.random() * cap / 2);
    this.#retries.add(r);
  }

  // cancelRetries stops the waits of retryBusy; their callers wait for
  // the next connection's resubscription.
  #cancelRetries() {
    for (const r of this.#retries) {
      stopTimer(r.timer);
      for (const w of r.waiters) if (!w.done) this.#deferred.add(w);
    }
    this.#retries.clear();
  }

  /**
   * @param {string[]} chunk
   * @param {Waiter[]} waiters
   * @param {boolean} resub
   * @param {GatewayError} err
   */
  #subscribeFailed(chunk, waiters, resub, err) {
    if (err && err.code === 'disconnected' && !this.#closed) {
      for (const w of waiters) if (!w.done) this.#deferred.add(w); // sent again once connected
      return;
    }
    if (err && (err.code === 'busy' || err.code === 'unavailable') && !this.#closed) {
      this.#retryBusy(chunk, waiters, resub);
      return;
    }
    if (err && (err.code === 'disconnected' || err.code === 'closed')) {
      for (const w of waiters) w.reject(gatewayError('closed', 'client closed'));
      return;
    }
    if (err && err.code === 'timeout') {
      for (const w of waiters) w.reject(err);
      return;
    }
    const named = err && err.code === 'invalid_stream' && Array.isArray(err.streams) && err.streams.length
      ? err.streams : null;
    const bad = new Set(named || chunk);
    const affected = waiters.filter((w) => w.streams.some((s) => bad.has(s)));
    const others = waiters.filter((w) => !affected.includes(w));
    // Streams the gateway calls invalid are of no use to any subscription,
    // and a refused resubscription leaves its streams off this connection
    // for all of them. Other refusals concern the calls that failed only:
    // the streams other subscriptions hold stay as they are.
    if (named || resub) for (const s of bad) this.#forget(s);
    // A command is applied whole or not at all: rejecting a call undoes it.
    for (const w of affected) w.reject(err);
    if (affected.length === 0) this.#emit('error', err);
    const rest = chunk.filter((s) => this.#streams.has(s));
    if ((resub || others.length > 0) && rest.length > 0 && this.#state === 'open') {
      this.#sendSubscribe(rest, others, resub, true);
    } else {
      for (const w of others) w.reject(err);
    }
  }

  /**
   * @param {Pending} p
   * @param {GatewayError} err
   */
  #settle(p, err) {
    stopTimer(p.timer);
    p.reject(err);
  }

  // forget drops stream from every subscription, without telling the gateway.
  /** @param {string} stream */
  #forget(stream) {
    const subs = this.#streams.get(stream);
    if (subs) for (const sub of subs) sub.streams.delete(stream);
    this.#streams.delete(stream);
    this.#pos.delete(stream);
    this.#resync.delete(stream);
    this.#recovered.delete(stream);
  }

  // detach takes sub off streams and returns those that no subscription
  // wants any more, which it forgets.
  /**
   * @param {Sub} sub
   * @param {string[]} streams
   * @returns {string[]}
   */
  #detach(sub, streams) {
    const gone = [];
    for (const s of streams) {
      if (!sub.streams.delete(s)) continue;
      const subs = this.#streams.get(s);
      if (!subs) continue;
      subs.delete(sub);
      if (subs.size === 0) {
        this.#forget(s);
        gone.push(s);
      }
    }
    return gone;
  }

  // release is a subscription handle's unsubscribe(): its handler gets no
  // more messages at once, and the streams it was the last to want are
  // unsubscribed at the gateway. A call still waiting for a connection
  // resolves now, with nothing left to send.
  /**
   * @param {Sub} sub
   * @returns {Promise<SubscribeResult>}
   */
  #release(sub) {
    const mine = [...sub.streams];
    const gone = this.#detach(sub, mine);
    const w = sub.waiter;
    if (w && !w.done && this.#deferred.has(w)) w.resolve();
    return this.#leave(gone).then(() => ({ streams: mine }));
  }

  // leave unsubscribes streams at the gateway, in commands under its frame
  // limit. Nothing is sent while disconnected: the next connection does not
  // carry them.
  /**
   * @param {string[]} streams
   * @returns {Promise<unknown>}
   */
  #leave(streams) {
    if (streams.length === 0 || this.#state !== 'open' || !this.#ws) return Promise.resolve();
    return Promise.all(this.#chunks(streams).map((c) => this.#command({ op: 'unsubscribe', streams: c })));
  }

  // --- incoming ---

  /**
   * @param {Socket} ws
   * @param {{ data: unknown }} ev
   */
  #onMessage(ws, ev) {
    if (ws !== this.#ws) return;
    if (this.#pingDeadline !== null) {
      stopTimer(this.#pingDeadline); // any message is a sign of life
      this.#pingDeadline = null;
    }
    let msg;
    try {
      msg = JSON.parse(/** @type {string} */ (ev.data));
    } catch {
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if (typeof msg.stream === 'string') {
      if (msg.error) this.#onStreamError(msg);
      else this.#onData(msg);
      return;
    }
    if ('id' in msg) {
      const p = this.#pending.get(msg.id);
      if (!p) {
        if (msg.error) this.#emit('error', msg.error);
        return;
      }
      this.#pending.delete(msg.id);
      stopTimer(p.timer);
      if (msg.error) {
        p.reject(msg.error);
        return;
      }
      if (p.onResult) {
        try {
          p.onResult(msg.result);
        } catch (e) {
          report(e);
        }
      }
      p.resolve(msg.result);
    }
  }

  /** @param {any} msg */
  #onStreamError(msg) {
    const subs = this.#streams.get(msg.stream);
    this.#forget(msg.stream); // the gateway no longer sends it
    if (subs) this.#emit('error', { stream: msg.stream, ...msg.error });
  }

  // onData delivers a data message and keeps the stream's position. A
  // message is a gap when it is the first after a loss the client knows of
  // (a reconnect not recovered), when the gateway flags it, or when its
  // seq does not follow the stream's position; a latest value
  // ("latest":true, sent on subscribe) is never a 'seq' gap: its seq is
  // the position in the reply.
  /** @param {any} msg */
  #onData(msg) {
    const { stream, seq } = msg;
    const subs = this.#streams.get(stream);
    if (!subs) return; // unsubscribed meanwhile
    const cur = this.#pos.get(stream);
    const prev = cur ? cur.seq : undefined;
    const latest = msg.latest === true;
    /** @type {GapEvent['reason'] | null} */
    let reason = null;
    if (this.#resync.has(stream)) {
      reason = this.#resync.get(stream) || 'reconnect';
      this.#resync.delete(stream);
    } else if (msg.gap === true) {
      reason = 'gap';
    } else if (!latest && typeof prev === 'number' && seq !== prev + 1) {
      reason = 'seq';
    }
    if (typeof seq === 'number') {
      // A gap may start a new epoch: the message names it, else it is unknown.
      let epoch = cur ? cur.epoch : undefined;
      if (msg.gap === true) epoch = typeof msg.epoch === 'string' && msg.epoch !== '' ? msg.epoch : undefined;
      this.#pos.set(stream, { epoch, seq });
    }
    const gap = reason !== null;
    if (reason !== null) this.#emit('gap', { stream, seq, prevSeq: prev, reason });
    /** @type {MessageMeta} */
    const meta = { stream, seq, gap, latest };
    if (this.#recovered.has(stream)) {
      meta.recovered = this.#recovered.get(stream);
      this.#recovered.delete(stream);
    }
    for (const sub of [...subs]) {
      if (!sub.streams.has(stream)) continue; // let go by an earlier handler of this message
      try {
        sub.handler(msg.data, meta);
      } catch (e) {
        report(e);
      }
    }
  }

  // --- events ---

  /** @param {ConnectionState} s */
  #setState(s) {
    if (this.#state === s) return;
    this.#state = s;
    this.#emit('state', s);
  }

  /**
   * @template {keyof EventMap} K
   * @param {K} event
   * @param {EventMap[K]} arg
   */
  #emit(event, arg) {
    callAll(/** @type {Set<(arg: EventMap[K]) => void>} */ (this.#listeners[event]), arg);
  }
}

// EMPTY_HANDLE is the handle of a subscribe call refused before it started.
/** @type {Handle} */
const EMPTY_HANDLE = Object.freeze({ get streams() { return []; }, unsubscribe: () => Promise.resolve({ streams: [] }) });

// withHandle gives the promise of a subscribe call its handle's
// unsubscribe() and streams, so a caller can let go before the reply.
/**
 * @param {Promise<Handle>} p
 * @param {Handle} handle
 * @returns {Promise<Handle> & Handle}
 */
function withHandle(p, handle) {
  Object.defineProperty(p, 'streams', { get: () => handle.streams });
  Object.defineProperty(p, 'unsubscribe', { value: handle.unsubscribe, writable: true, configurable: true, enumerable: true });
  return /** @type {Promise<Handle> & Handle} */ (p);
}

// detach stops a socket's events reaching the client.
/** @param {Socket} ws */
function detach(ws) {
  ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
}

// resolveURL accepts ws:, wss:, http:, https: and paths relative to the page.
/**
 * @param {string} url
 * @returns {string}
 */
function resolveURL(url) {
  const base = globalThis.location ? globalThis.location.href : undefined;
  const u = new URL(String(url), base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

// --- order books ---

// canonical spells a non-negative decimal string without leading zeros
// in its integer part or trailing zeros in its fraction ("0100.5000" ->
// "100.5", "0.00" -> "0"), so that two spellings of one price are one
// level; null when s is not such a number.
/**
 * @param {unknown} s
 * @returns {string | null}
 */
function canonical(s) {
  if (typeof s !== 'string' || !/^\d+(\.\d*)?$/.test(s)) return null;
  let [int, frac = ''] = s.split('.');
  int = int.replace(/^0+(?=\d)/, '');
  frac = frac.replace(/0+$/, '');
  return frac ? int + '.' + frac : int;
}

// compareDecimal orders two canonical decimal strings by value, exactly
// (no floating point): <0, 0 or >0.
/**
 * @param {string} a
 * @param {string} b
 * @returns {number}
 */
function compareDecimal(a, b) {
  const ia = a.indexOf('.'), ib = b.indexOf('.');
  const la = ia < 0 ? a.length : ia, lb = ib < 0 ? b.length : ib;
  if (la !== lb) return la - lb; // no leading zeros: a longer integer part is larger
  const intA = a.slice(0, la), intB = b.slice(0, lb);
  if (intA !== intB) return intA < intB ? -1 : 1;
  const fa = ia < 0 ? '' : a.slice(ia + 1), fb = ib < 0 ? '' : b.slice(ib + 1);
  if (fa === fb) return 0;
  return fa < fb ? -1 : 1; // digit strings: a prefix is the smaller fraction
}

// BookSide is one side of a book: levels by canonical price, and the
// prices in best-first order (bids descending, asks ascending), kept
// sorted by binary insertion.
class BookSide {
  /** @param {boolean} descending */
  constructor(descending) {
    this.desc = descending;
    /** @type {Map<string, BookLevel>} */
    this.levels = new Map(); // canonical price -> [price, qty] as the exchange spells them
    /** @type {string[]} */
    this.order = []; // canonical prices, best first
    /** @type {BookLevel[] | null} */
    this.cache = null; // the levels as an array, best first, until the next change
  }

  clear() {
    this.levels.clear();
    this.order = [];
    this.cache = null;
  }

  // cmp orders canonical prices a and b best first on this side.
  /**
   * @param {string} a
   * @param {string} b
   */
  #cmp(a, b) {
    const c = compareDecimal(a, b);
    return this.desc ? -c : c;
  }

  // index is where canonical price k is, or would be inserted.
  /** @param {string} k */
  #index(k) {
    let lo = 0, hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#cmp(this.order[mid], k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // set applies one level [price, qty]: a quantity of zero deletes it.
  // It returns false for a level that is not a pair of decimal strings.
  /**
   * @param {unknown} level
   * @returns {boolean}
   */
  set(level) {
    if (!Array.isArray(level) || level.length < 2) return false;
    const [p, q] = level;
    const k = canonical(p);
    const qc = canonical(q);
    if (k === null || qc === null) return false;
    this.cache = null;
    if (qc === '0') {
      if (this.levels.delete(k)) this.order.splice(this.#index(k), 1);
      return true;
    }
    if (!this.levels.has(k)) this.order.splice(this.#index(k), 0, k);
    this.levels.set(k, /** @type {BookLevel} */ ([p, q])); // a new pair: arrays handed out before keep their values
    return true;
  }

  /** @returns {BookLevel[]} */
  all() {
    if (!this.cache) this.cache = this.order.map((k) => /** @type {BookLevel} */ (this.levels.get(k)));
    return this.cache;
  }

  /**
   * @param {number} n
   * @returns {BookLevel[]}
   */
  top(n) {
    if (this.cache) return this.cache.slice(0, n);
    /** @type {BookLevel[]} */
    const out = [];
    const m = Math.min(n, this.order.length);
    for (let i = 0; i < m; i++) out.push(/** @type {BookLevel} */ (this.levels.get(this.order[i])));
    return out;
  }
}

// BOOK_EVENTS are the events an OrderBook emits.
const BOOK_EVENTS = ['snapshot', 'update', 'change', 'stale', 'gap', 'error'];

// BOOK_KEY matches the gateway's book streams, which all speak the same
// protocol: Binance's <symbol>@book[@N], OKX's book[N]:<instId>, Bybit's
// book[.N].<symbol> (book/procedure.go, book/inband.go).
const BOOK_KEY = /^[a-z0-9-]+:(?:[^:@]+@book(?:@\d+)?|book\d*:[A-Z0-9-]+|book\.(?:\d+\.)?[A-Z0-9-]+)$/;

/**
 * OrderBook is a book kept from a book stream (client.orderBook(key)):
 * each snapshot replaces it, each update continues it (U must be the
 * previous u + 1; a quantity of zero deletes a level). A break in the
 * sequence, a lost message or a snapshot refused leaves the book empty
 * ('waiting') and resubscribes the stream for a new snapshot. A stale
 * message from the gateway, or a lost connection, marks it stale; it keeps
 * its levels until the next snapshot (or, after a reconnect that lost
 * nothing, the next update).
 */
export class OrderBook {
  /** @type {MarketgateClient} */
  #client;
  /** @type {BookKey} */
  #key;
  /** @type {Required<OrderBookOptions>} */
  #opts;
  #bids = new BookSide(true);
  #asks = new BookSide(false);
  /** @type {number | null} */
  #lastUpdateId = null;
  /** @type {OrderBookState} */
  #state = 'waiting';
  #staleReason = '';
  /** @type {(Promise<Handle> & Handle) | null} */
  #sub = null;
  /** @type {() => void} */
  #offState = () => {};
  /** @type {{ [K in keyof OrderBookEventMap]: Set<(arg: OrderBookEventMap[K]) => void> }} */
  #listeners = { snapshot: new Set(), update: new Set(), change: new Set(), stale: new Set(), gap: new Set(), error: new Set() };
  /** @type {(book: OrderBook) => void} */
  #resolveReady = () => {};
  /** @type {(err: GatewayError) => void} */
  #rejectReady = () => {};
  #lastResync = -Infinity;
  /** @type {Timer | null} */
  #resyncTimer = null;
  /** @type {OrderBookStats} */
  #stats = { snapshots: 0, updates: 0, gaps: 0, resyncs: 0, ignored: 0 };

  /**
   * @param {MarketgateClient} client
   * @param {BookKey} key
   * @param {OrderBookOptions} [options]
   */
  constructor(client, key, options = {}) {
    if (typeof key !== 'string' || !BOOK_KEY.test(key)) {
      throw new TypeError(`marketgate: ${key} is not a book stream (binance:<symbol>@book[@N], okx:book[N]:<instId>, bybit:book[.N].<symbol>)`);
    }
    this.#client = client;
    this.#key = key;
    this.#opts = { resyncInterval: 1000, ...options };
    /** @type {Promise<OrderBook>} resolves at the first snapshot */
    this.ready = new Promise((resolve, reject) => { this.#resolveReady = resolve; this.#rejectReady = reject; });
    this.ready.catch(() => {}); // a caller that never awaits it sees no unhandled rejection
    // A lost connection marks the book stale until messages flow again.
    this.#offState = client.on('state', (s) => {
      if (s !== 'open' && s !== 'connecting' && this.#state === 'live') this.#markStale('disconnected');
    });
    this.#subscribe();
  }

  /** key is the book stream. */
  get key() { return this.#key; }
  /** state is 'waiting' (no book yet, or discarded), 'live', 'stale' or 'closed'. */
  get state() { return this.#state; }
  /** stale is true while the book shown may be out of date. */
  get stale() { return this.#state === 'stale'; }
  /** staleReason is the gateway's reason, or 'disconnected'; '' when not stale. */
  get staleReason() { return this.#state === 'stale' ? this.#staleReason : ''; }
  /** lastUpdateId is the snapshot's lastUpdateId or the last update's u; null while waiting. */
  get lastUpdateId() { return this.#lastUpdateId; }
  /** bids are the levels [price, qty], best (highest) first. Do not change them. */
  get bids() { return this.#bids.all(); }
  /** asks are the levels [price, qty], best (lowest) first. Do not change them. */
  get asks() { return this.#asks.all(); }
  /** stats counts snapshots, updates, gaps, resyncs, and updates ignored while waiting. */
  get stats() { return { ...this.#stats }; }

  /** levels returns the best n levels of side ('bids' | 'asks'), best first. */
  /**
   * @param {string} side
   * @param {number} [n]
   * @returns {BookLevel[]}
   */
  levels(side, n = Infinity) {
    const s = this.#side(side);
    return n === Infinity ? s.all().slice() : s.top(Math.max(0, n | 0));
  }

  /** best returns the best level of side, or undefined when it has none. */
  /**
   * @param {string} side
   * @returns {BookLevel | undefined}
   */
  best(side) {
    return this.#side(side).top(1)[0];
  }

  /** depth returns how many levels side has. */
  /**
   * @param {string} side
   * @returns {number}
   */
  depth(side) {
    return this.#side(side).order.length;
  }

  /**
   * on adds a listener of event and returns a function that removes it.
   * @template {keyof OrderBookEventMap} K
   * @param {K} event
   * @param {(arg: OrderBookEventMap[K]) => void} fn
   * @returns {() => boolean}
   */
  on(event, fn) {
    /** @type {Set<(arg: OrderBookEventMap[K]) => void> | undefined} */
    const set = Object.hasOwn(this.#listeners, event) ? /** @type {any} */ (this.#listeners[event]) : undefined;
    if (!set) throw new TypeError(`marketgate: unknown book event ${event}`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /**
   * off removes a listener added by on.
   * @template {keyof OrderBookEventMap} K
   * @param {K} event
   * @param {(arg: OrderBookEventMap[K]) => void} fn
   */
  off(event, fn) {
    if (Object.hasOwn(this.#listeners, event)) /** @type {Set<(arg: OrderBookEventMap[K]) => void>} */ (this.#listeners[event]).delete(fn);
  }

  /** close lets the stream go (unsubscribed when nothing else holds it); the book is done. */
  close() {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    stopTimer(this.#resyncTimer);
    this.#offState();
    const sub = this.#sub;
    this.#sub = null;
    if (sub) sub.unsubscribe().catch(() => {});
    this.#rejectReady({ code: 'closed', msg: 'order book closed' });
    for (const set of Object.values(this.#listeners)) set.clear();
  }

  /**
   * @param {string} side
   * @returns {BookSide}
   */
  #side(side) {
    if (side === 'bids' || side === 'bid' || side === 'b') return this.#bids;
    if (side === 'asks' || side === 'ask' || side === 'a') return this.#asks;
    throw new TypeError(`marketgate: unknown book side ${side}`);
  }

  #subscribe() {
    const sub = this.#client.subscribe([this.#key], (/** @type {unknown} */ data, /** @type {MessageMeta} */ meta) => {
      if (this.#sub === sub) this.#onMessage(data, meta);
    });
    this.#sub = sub;
    sub.catch((e) => {
      if (this.#sub !== sub || this.#state === 'closed') return;
      this.#emit('error', e);
      this.#rejectReady(e);
    });
  }

  // onMessage applies one message of the stream.
  /**
   * @param {any} d
   * @param {MessageMeta} meta
   */
  #onMessage(d, meta) {
    if (this.#state === 'closed' || d === null || typeof d !== 'object') return;
    if (d.type === 'snapshot') {
      this.#onSnapshot(d);
      return;
    }
    // Messages were lost before this one (flagged by the gateway, or not
    // recovered after a reconnect): the book cannot be continued.
    if (meta && (meta.gap || meta.recovered === false)) {
      this.#gap({ reason: 'stream', seq: meta.seq });
      return;
    }
    if (d.type === 'update') this.#onUpdate(d);
    else if (d.type === 'stale') this.#markStale(typeof d.reason === 'string' ? d.reason : 'stale');
  }

  /** @param {any} d */
  #onSnapshot(d) {
    const id = Number(d.lastUpdateId);
    if (!Number.isSafeInteger(id) || !Array.isArray(d.bids) || !Array.isArray(d.asks)) {
      this.#gap({ reason: 'invalid', seq: undefined });
      return;
    }
    this.#bids.clear();
    this.#asks.clear();
    for (const l of d.bids) this.#bids.set(l);
    for (const l of d.asks) this.#asks.set(l);
    this.#lastUpdateId = id;
    this.#stats.snapshots++;
    this.#state = 'live';
    this.#staleReason = '';
    if (d.gap === true) this.#emit('gap', { reason: 'resync', lastUpdateId: id });
    this.#emit('snapshot', { lastUpdateId: id, gap: d.gap === true, bids: this.#bids.order.length, asks: this.#asks.order.length });
    this.#emit('change', this);
    this.#resolveReady(this); // the first snapshot settles ready; later calls do nothing
  }

  /** @param {any} d */
  #onUpdate(d) {
    if (this.#state === 'waiting') {
      this.#stats.ignored++; // before the first snapshot, or after a gap: the next snapshot replaces all
      return;
    }
    const last = /** @type {number} */ (this.#lastUpdateId);
    const U = Number(d.U), u = Number(d.u);
    if (U !== last + 1 || !(u >= U - 1) || !Array.isArray(d.b) || !Array.isArray(d.a)) {
      this.#gap({ reason: 'sequence', expected: last + 1, U, u });
      return;
    }
    let ok = true;
    for (const l of d.b) ok = this.#bids.set(l) && ok;
    for (const l of d.a) ok = this.#asks.set(l) && ok;
    if (!ok) {
      this.#gap({ reason: 'invalid', expected: last + 1, U, u });
      return;
    }
    this.#lastUpdateId = u;
    this.#stats.updates++;
    if (this.#state === 'stale' && this.#staleReason === 'disconnected') {
      this.#state = 'live'; // the reconnect lost nothing: the book goes on
      this.#staleReason = '';
    }
    this.#emit('update', d);
    this.#emit('change', this);
  }

  /** @param {string} reason */
  #markStale(reason) {
    if (this.#state === 'closed') return;
    if (this.#state === 'waiting') {
      this.#staleReason = reason; // nothing shown yet: the next snapshot decides
      this.#emit('stale', { reason });
      return;
    }
    this.#state = 'stale';
    this.#staleReason = reason;
    this.#emit('stale', { reason });
    this.#emit('change', this);
  }

  // gap discards the book and asks for a new snapshot: the stream is
  // unsubscribed and subscribed again, at most once per resyncInterval.
  /** @param {import('./marketgate.js').BookGapEvent} info */
  #gap(info) {
    this.#stats.gaps++;
    this.#bids.clear();
    this.#asks.clear();
    this.#lastUpdateId = null;
    this.#state = 'waiting';
    this.#emit('gap', info);
    this.#emit('change', this);
    this.#resync();
  }

  #resync() {
    if (this.#resyncTimer !== null || this.#state === 'closed') return;
    const wait = Math.max(0, this.#lastResync + this.#opts.resyncInterval - performance.now());
    this.#resyncTimer = setTimeout(() => {
      this.#resyncTimer = null;
      if (this.#state !== 'waiting') return; // a snapshot came meanwhile
      this.#lastResync = performance.now();
      this.#stats.resyncs++;
      const old = this.#sub;
      this.#sub = null;
      // Unsubscribe, then subscribe: the gateway handles them in order and
      // starts the new subscription with a snapshot.
      if (old) old.unsubscribe().catch(() => {});
      this.#subscribe();
    }, wait);
  }

  /**
   * @template {keyof OrderBookEventMap} K
   * @param {K} event
   * @param {OrderBookEventMap[K]} arg
   */
  #emit(event, arg) {
    callAll(/** @type {Set<(arg: OrderBookEventMap[K]) => void>} */ (this.#listeners[event]), arg);
  }
}

// --- stream keys: a venue's native key from a unified symbol ---
//
// streamKey builds the key of one class of data (trade, ticker, candle,
// book) of one unified symbol (BASE/QUOTE, BASE/QUOTE:SETTLE for a
// perpetual) on one exchange, so a page can let the user pick the venue
// and subscribe the same thing everywhere; with the format 'normalized'
// (book: the raw form, through orderBook) the data is then the same schema
// on every venue. The tables follow the gateway's grammars
// (upstream/binance, upstream/okx, upstream/bybit, book/) and the streams
// normalize/ has a normalized form for.

// KEY_VENUES describes each exchange the gateway carries: its title,
// whether it lists perpetuals (its symbols then need :SETTLE) or spot
// pairs (okx: both), its candle intervals by unified name, and how it
// spells symbols and keys.
/**
 * @typedef {(cls: StreamClass, sym: string, iv: string, depth: number) => string} KeyMaker
 * @typedef {{
 *   title: string, market: 'spot' | 'perpetual' | 'both',
 *   intervals: Record<string, string>,
 *   symbol: (s: UnifiedSymbol) => string,
 *   key: KeyMaker,
 * }} Venue
 */
/** @type {Record<string, Venue>} */
const KEY_VENUES = {
  binance: {
    title: 'Binance spot', market: 'spot',
    intervals: Object.fromEntries(['1s', '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'].map((i) => [i, i])),
    symbol: (s) => s.base + s.quote,
    key: binanceKey('@trade'),
  },
  'binance-futures': {
    title: 'Binance USD-M futures', market: 'perpetual',
    intervals: Object.fromEntries(['1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'].map((i) => [i, i])),
    symbol: (s) => s.base + s.quote,
    key: binanceKey('@aggTrade'), // USD-M has no @trade stream
  },
  okx: {
    title: 'OKX', market: 'both',
    // 6H and longer close on UTC+8 boundaries; their "…utc" variants have
    // no normalized form.
    intervals: {
      '1s': '1s', '1m': '1m', '3m': '3m', '5m': '5m', '15m': '15m', '30m': '30m', '1h': '1H', '2h': '2H', '4h': '4H',
      '6h': '6H', '12h': '12H', '1d': '1D', '3d': '3D', '1w': '1W', '1M': '1M',
    },
    // An OKX swap settles in its quote when that is USDT or USDC, else in
    // its base (inverse), as normalize/ reads instIds back.
    symbol: (s) => {
      if (!s.settle) return `${s.base}-${s.quote}`;
      const settle = s.quote === 'USDT' || s.quote === 'USDC' ? s.quote : s.base;
      if (s.settle !== settle) throw keyError('bad_symbol', `okx has no ${s.unified}: its ${s.base}-${s.quote}-SWAP settles in ${settle} (${s.base}/${s.quote}:${settle})`);
      return `${s.base}-${s.quote}-SWAP`;
    },
    key: (cls, sym, iv, depth) => ({
      trade: () => `trades:${sym}`,
      ticker: () => `tickers:${sym}`,
      candle: () => `candle${iv}:${sym}`,
      book: () => `book${depth || ''}:${sym}`,
    })[cls](),
  },
  bybit: {
    title: 'Bybit spot', market: 'spot',
    intervals: bybitIntervals(),
    symbol: (s) => s.base + s.quote,
    key: bybitKey,
  },
  'bybit-linear': {
    title: 'Bybit linear perpetuals', market: 'perpetual',
    intervals: bybitIntervals(),
    // USDT perpetuals are BASEUSDT, USDC ones BASEPERP.
    symbol: (s) => {
      if (s.quote === 'USDT') return s.base + 'USDT';
      if (s.quote === 'USDC') return s.base + 'PERP';
      throw keyError('bad_symbol', `bybit-linear has no ${s.unified}: its perpetuals settle in USDT or USDC`);
    },
    key: bybitKey,
  },
};

/** @returns {Record<string, string>} */
function bybitIntervals() {
  return {
    '1m': '1', '3m': '3', '5m': '5', '15m': '15', '30m': '30', '1h': '60', '2h': '120', '4h': '240',
    '6h': '360', '12h': '720', '1d': 'D', '1w': 'W', '1M': 'M',
  };
}

/**
 * @param {string} trade
 * @returns {KeyMaker}
 */
function binanceKey(trade) {
  return (cls, sym, iv, depth) => {
    const s = sym.toLowerCase();
    return ({
      trade: () => s + trade,
      ticker: () => s + '@ticker', // 24 h; its normalized form is the ticker
      candle: () => `${s}@kline_${iv}`,
      book: () => s + '@book' + (depth ? '@' + depth : ''),
    })[cls]();
  };
}

/** @type {KeyMaker} */
function bybitKey(cls, sym, iv, depth) {
  return ({
    trade: () => `publicTrade.${sym}`,
    ticker: () => `tickers.${sym}`,
    candle: () => `kline.${iv}.${sym}`,
    book: () => `book.${depth ? depth + '.' : ''}${sym}`,
  })[cls]();
}

/**
 * KEY_CLASSES are the classes streamKey knows.
 * @type {readonly string[]}
 */
const KEY_CLASSES = ['trade', 'ticker', 'candle', 'book'];

/**
 * BOOK_DEPTHS are the top-N views a book key may ask for (book.Views).
 * @type {readonly unknown[]}
 */
const BOOK_DEPTHS = [5, 10, 20, 50, 100, 500, 1000];

/**
 * keyError makes a StreamKeyError.
 * @param {StreamKeyError['code']} code
 * @param {string} msg
 * @returns {StreamKeyError}
 */
function keyError(code, msg) {
  const e = /** @type {StreamKeyError} */ (new Error(msg));
  e.name = 'StreamKeyError';
  e.code = code;
  return e;
}

/**
 * exchanges lists the exchanges streamKey knows, in the gateway's order:
 * name (the key's prefix), title, and market: 'spot' (symbols BASE/QUOTE),
 * 'perpetual' (BASE/QUOTE:SETTLE) or 'both'.
 * @type {readonly ExchangeInfo[]}
 */
export const exchanges = Object.freeze(Object.entries(KEY_VENUES).map(([name, v]) =>
  Object.freeze(/** @type {ExchangeInfo} */ ({ name, title: v.title, market: v.market }))));

/**
 * parseSymbol reads a unified symbol, BASE/QUOTE or BASE/QUOTE:SETTLE
 * (letters and digits; lower case is taken as upper). It throws a
 * StreamKeyError (code 'bad_symbol') for anything else, dated futures
 * (…:SETTLE-YYMMDD) included.
 * @param {unknown} symbol
 * @returns {UnifiedSymbol}
 */
export function parseSymbol(symbol) {
  if (typeof symbol !== 'string') throw keyError('bad_symbol', `a unified symbol is a string such as "BTC/USDT", not ${typeof symbol}`);
  const u = symbol.trim().toUpperCase();
  const m = /^([A-Z0-9]{1,20})\/([A-Z0-9]{1,20})(?::([A-Z0-9]{1,20}))?$/.exec(u);
  if (!m) {
    const dated = /^[A-Z0-9]+\/[A-Z0-9]+:[A-Z0-9]+-\d{6}$/.test(u) ? ' (dated futures have no key here)' : '';
    throw keyError('bad_symbol', `${JSON.stringify(symbol)} is not a unified symbol: want BASE/QUOTE (e.g. BTC/USDT) or BASE/QUOTE:SETTLE for a perpetual (e.g. BTC/USDT:USDT)${dated}`);
  }
  return { unified: u, base: m[1], quote: m[2], settle: m[3] || '' };
}

// venueOf returns exchange's entry of KEY_VENUES, or throws.
/**
 * @param {unknown} exchange
 * @returns {Venue}
 */
function venueOf(exchange) {
  const v = typeof exchange === 'string' && Object.hasOwn(KEY_VENUES, exchange) ? KEY_VENUES[exchange] : null;
  if (!v) throw keyError('unknown_exchange', `unknown exchange ${JSON.stringify(exchange)}; known: ${Object.keys(KEY_VENUES).join(', ')}`);
  return v;
}

/**
 * exchangeSymbol returns how exchange spells the unified symbol in its
 * keys and REST calls: exchangeSymbol('binance', 'BTC/USDT') is 'BTCUSDT',
 * exchangeSymbol('okx', 'BTC/USDT:USDT') 'BTC-USDT-SWAP'. It throws a
 * StreamKeyError when the exchange cannot list such a symbol (a perpetual
 * on a spot exchange, a spot pair on a perpetuals one).
 * @param {string} exchange
 * @param {string} symbol
 * @returns {string}
 */
export function exchangeSymbol(exchange, symbol) {
  const v = venueOf(exchange);
  const s = parseSymbol(symbol);
  if (v.market === 'spot' && s.settle) {
    throw keyError('bad_symbol', `${exchange} lists spot pairs (${s.base}/${s.quote}), not the perpetual ${s.unified}`);
  }
  if (v.market === 'perpetual') {
    if (!s.settle) throw keyError('bad_symbol', `${exchange} lists perpetuals: ${s.unified}:${s.quote}, not ${s.unified}`);
    if (s.settle !== s.quote) throw keyError('bad_symbol', `${exchange} lists linear perpetuals, settled in their quote: ${s.base}/${s.quote}:${s.quote}, not ${s.unified}`);
  }
  return v.symbol(s);
}

/**
 * candleIntervals returns the candle intervals streamKey takes for
 * exchange, by unified name ('1m', '1h', '1d', '1M' a month).
 * @param {string} exchange
 * @returns {string[]}
 */
export function candleIntervals(exchange) {
  return Object.keys(venueOf(exchange).intervals);
}

/**
 * streamKey returns the stream key of class cls ('trade', 'ticker',
 * 'candle' or 'book') of the unified symbol on exchange:
 *
 *   streamKey('okx', 'trade', 'BTC/USDT')                    // 'okx:trades:BTC-USDT'
 *   streamKey('bybit-linear', 'book', 'BTC/USDT:USDT')       // 'bybit-linear:book.BTCUSDT'
 *   streamKey('binance', 'candle', 'ETH/USDT', { interval: '1h' }) // 'binance:ethusdt@kline_1h'
 *
 * options.interval is a candle's unified interval (default '1m'; see
 * candleIntervals); options.depth a book's top-N view (5, 10, 20, 50, 100,
 * 500 or 1000; default: the whole book the gateway keeps). trade, ticker
 * and candle keys have a normalized form; book keys are for orderBook (the
 * raw form). It throws a StreamKeyError whose code is 'unknown_exchange',
 * 'unknown_class', 'bad_symbol', 'bad_interval' or 'bad_depth' and whose
 * message says what is wanted. Whether the exchange lists the symbol is
 * for the gateway to say (invalid_stream "unknown symbol").
 * @param {string} exchange
 * @param {StreamClass} cls
 * @param {string} symbol
 * @param {StreamKeyOptions} [options]
 * @returns {string}
 */
export function streamKey(exchange, cls, symbol, options = {}) {
  const v = venueOf(exchange);
  if (!KEY_CLASSES.includes(cls)) throw keyError('unknown_class', `unknown class ${JSON.stringify(cls)}; known: ${KEY_CLASSES.join(', ')}`);
  const sym = exchangeSymbol(exchange, symbol);
  let iv = '';
  if (cls === 'candle') {
    const want = options.interval ?? '1m';
    iv = Object.hasOwn(v.intervals, want) ? v.intervals[want] : '';
    if (!iv) throw keyError('bad_interval', `${exchange} has no ${JSON.stringify(want)} candles; it has ${Object.keys(v.intervals).join(' ')}`);
  }
  let depth = 0;
  if (cls === 'book' && options.depth !== undefined && options.depth !== null && options.depth !== 0) {
    if (!BOOK_DEPTHS.includes(options.depth)) throw keyError('bad_depth', `no book view of depth ${JSON.stringify(depth)}; want one of ${BOOK_DEPTHS.join(', ')} (or none: the whole book)`);
    depth = options.depth;
  }
  return `${exchange}:${v.key(cls, sym, iv, depth)}`;
}
