// Type declarations for marketgate.js, the browser client of the marketgate
// native WebSocket protocol (/ws), published as @marketgate/client.
//
// Subscribing a literal key types its messages: the data of
// "binance:btcusdt@trade" is a BinanceTradeEvent, that of
// "binance-futures:btcusdt@markPrice" a BinanceMarkPriceEvent (see
// StreamPayload); a client connected with format 'normalized' gets the
// normalized form instead (NormalizedPayload).

/**
 * A stream key, "<exchange>:<exchange stream name>", e.g. "binance:btcusdt@trade".
 * Any string is accepted; literal keys of the Binance grammars
 * (BinanceStreamKey) and book keys (BookKey) also type their messages.
 */
export type StreamKey = string;

/**
 * 'disconnected': the gateway closed the connection with a code the client
 * does not retry by itself (see CloseEvent); reconnect() connects again.
 * 'closed': close() was called; the client is done.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'disconnected' | 'closed';

/**
 * A stream's position for the whole cluster: the seq of its last message in
 * the numbering epoch. The epoch changes only when the stream's history was
 * lost for good.
 */
export interface Position {
  epoch: string;
  seq: number;
}

/**
 * An error as the gateway sends it (bad_request, unknown_op, invalid_stream,
 * too_many_streams, upstream_error, forbidden: the token does not allow the
 * streams, or no longer does), or one of the client's own (token_failed:
 * getToken threw) (a
 * subscribe refused with busy is sent again after a backoff, not rejected):
 * timeout, disconnected, closed, too_many_pending, connect_failed.
 */
export interface GatewayError {
  code: GatewayErrorCode;
  msg: string;
  /** The offending streams, where the gateway names them. */
  streams?: StreamKey[];
  /** Set on an upstream_error notice: the stream that failed and is no longer subscribed. */
  stream?: StreamKey;
}

export interface MessageMeta {
  stream: StreamKey;
  /** The stream's position of the message for the whole cluster (every node numbers it alike), +1 per message of the stream. */
  seq: number;
  /** True when events may have been lost just before this message (a 'gap' event was emitted for it). */
  gap: boolean;
  /**
   * True for the stream's latest value, sent right after the subscribe reply
   * for streams whose newest message supersedes the old (tickers, book
   * ticker, partial depth, klines); its seq is the reply's position, and it
   * is never a 'seq' gap.
   */
  latest: boolean;
  /**
   * Set on the first message after a resubscription that asked to recover
   * the stream (see RecoveredEvent): true when nothing was lost (this is the
   * first missed message, or the first live one), false when the loss could
   * not be filled (gap is then true). Absent on other messages.
   */
  recovered?: boolean;
}

export interface GapEvent {
  stream: StreamKey;
  seq: number;
  /** The stream's position before this message (the previous message's seq, or the subscribe reply's), if known. */
  prevSeq?: number;
  /**
   * 'gap': the gateway flagged the message with gap:true;
   * 'seq': seq did not follow the previous one by 1;
   * 'reconnect': first message after the client reconnected and
   * resubscribed without asking to recover the stream (its position, or
   * its epoch, was not known);
   * 'unrecovered': first message after a resubscription that asked to
   * recover the stream and could not (history too short, epoch changed).
   * After a recovered resubscription there is no gap event.
   */
  reason: 'gap' | 'seq' | 'reconnect' | 'unrecovered';
}

/**
 * The outcome, per stream, of a resubscription after a reconnect that
 * asked to recover the stream from its last position ("since"). Emitted
 * when the gateway replies, before the stream's next message.
 */
export interface RecoveredEvent {
  stream: StreamKey;
  /**
   * true: every message missed follows, in order, before live ones, and no
   * gap is reported. false: they cannot be; the next message is a gap of
   * reason 'unrecovered'.
   */
  recovered: boolean;
}

export interface SubscribeResult {
  streams: StreamKey[];
}

/**
 * The handle of one subscribe call. Each call is its own subscription,
 * even with the same handler: two calls with one function deliver each
 * message to it twice, and each handle lets go of its own.
 */
export interface Subscription extends SubscribeResult {
  /** The streams this handle still receives (a stream may be taken away by a stream error or MarketgateClient.unsubscribe). */
  readonly streams: StreamKey[];
  /**
   * Removes this handler from its streams at once. A stream is unsubscribed
   * at the gateway only when no other subscription wants it; while others
   * do, they go on receiving it. Resolves with the streams the handle held
   * once the gateway has confirmed (at once when nothing needs sending or
   * the client is not connected); rejects only as a command does (timeout).
   * A second call does nothing and resolves with no streams.
   */
  unsubscribe(): Promise<SubscribeResult>;
}

/**
 * What subscribe returns: a promise for the Subscription that is also the
 * Subscription, so a caller (a component being torn down) can let go before
 * the gateway has answered.
 */
export interface PendingSubscription extends Promise<Subscription> {
  readonly streams: StreamKey[];
  unsubscribe(): Promise<SubscribeResult>;
}

/**
 * A connection closed by the gateway, the network, or the client's ping
 * timeout (code 4000). Close codes the gateway sends are in the README.
 */
export interface CloseEvent {
  /** The close code; 1006 when the connection failed or was cut without a close frame. */
  code: number;
  reason: string;
  /**
   * Whether the client reconnects by itself. It does not after 1008 (kicked
   * by an operator, or over the command or message-time limits), 1003 and
   * 1009 (a binary or oversized message), 4001 (a token refused), 4003 (the
   * token expired; with getToken the client does reconnect, with a fresh
   * token) and 4029 (the user holds every connection its token allows);
   * the state is then 'disconnected' until reconnect() is called.
   */
  reconnect: boolean;
  /**
   * When reconnect is true: the wait in ms before the next attempt. It
   * grows with failed attempts in a row, and after 4008 (slow consumer) it
   * is at least half of a step that doubles with each 4008, up to backoff.max.
   */
  delay?: number;
}

export interface ConnectOptions {
  /**
   * Reconnect backoff in ms: exponential from min to max, with full jitter.
   * A connection that stayed open for max ms starts the next wait from min
   * again; one that closed sooner counts as a failure. After a 4008 close
   * the wait is between half and all of a step starting at max(min, max/8)
   * and doubling with each 4008, up to max. Default {min: 250, max: 10000}.
   */
  backoff?: { min?: number; max?: number };
  /** Interval in ms of the app-level {"op":"ping"} keepalive; 0 disables it. Default 15000. */
  pingInterval?: number;
  /** A connection that brings nothing within this many ms of a ping is dropped and reconnected. Default 10000. */
  pingTimeout?: number;
  /** Pending command promises are rejected with code "timeout" after this many ms. Default 10000. */
  commandTimeout?: number;
  /**
   * format is 'raw' (the default: the exchanges' events byte for byte) or
   * 'normalized' (one schema per class for every exchange: trade, ticker,
   * candle, book_snapshot/book_update; see NormalizedEvent). It applies to
   * every subscribe of the client.
   */
  format?: 'raw' | 'normalized';
  /** Commands awaiting a reply at most; beyond it calls reject with code "too_many_pending". Default 256. */
  maxPending?: number;
  /** Largest command the client sends, in bytes; longer stream lists are split. Default 4000 (the gateway's limit is 4 KiB). */
  maxFrameBytes?: number;
  /**
   * Commands (pings included) sent in any one second at most; more wait their turn.
   * Default 5: the gateway closes a connection that sends over 10 a second with 1008.
   */
  maxCommandsPerSecond?: number;
  /**
   * getToken returns a connection token (a JWT), or a promise of one. It is
   * called on every connection, whose first command is then
   * {"op":"auth","token":…} (the state becomes 'open', and subscriptions go
   * out, once the gateway accepts it), and again before each token expires
   * (tokenRefreshLead), the new token being sent on the same connection.
   * '' or null leaves the connection anonymous. A throw is reported as an
   * error with code "token_failed": on a new connection it is dropped and
   * tried again after the backoff; a refresh is tried again 5 s later.
   */
  getToken?: () => string | null | Promise<string | null>;
  /** How long before a token expires it is refreshed, in ms; at most half the token's life. Default 30000. */
  tokenRefreshLead?: number;
  /**
   * WebSocket constructor to use instead of globalThis.WebSocket: on Node
   * 20 (which has none), e.g. the ws package's; in tests, a fake.
   */
  WebSocket?: new (url: string) => WebSocketLike;
}

/**
 * The part of a WebSocket the client uses: the browser's, Node 22's and
 * the ws package's all have it.
 */
export interface WebSocketLike {
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A token the gateway accepted (getToken). */
export interface AuthEvent {
  /** The token's sub. */
  user: string;
  /** The token's exp, in Unix seconds. */
  expires: number;
  /** Seconds until then. */
  ttl: number;
}

/**
 * A message handler: data is the exchange's event (or its normalized
 * form), meta says which stream and where in it.
 */
export type MessageHandler<T = unknown, K extends StreamKey = StreamKey> = (data: T, meta: MessageMeta & { stream: K }) => void;

/** The wire form a client asks for: the exchanges' own events, or one schema per class. */
export type Format = 'raw' | 'normalized';

/**
 * What a message of stream K carries on a client of format F: the raw
 * payload (StreamPayload) or, with 'normalized', the normalized form
 * (NormalizedPayload).
 */
export type PayloadFor<K extends string, F extends Format = 'raw'> = F extends 'normalized' ? NormalizedPayload<K> : StreamPayload<K>;

export interface EventMap {
  state: ConnectionState;
  gap: GapEvent;
  error: GatewayError;
  /** Each closed connection (not emitted by close()). */
  close: CloseEvent;
  /** Each stream a resubscription asked to recover, with the outcome. */
  recovered: RecoveredEvent;
  /** Each token the gateway accepted: at connect and at each refresh. */
  auth: AuthEvent;
}

/**
 * A client of the native protocol; F is its format ('raw' unless connect
 * was given format: 'normalized'), which decides the type of the data
 * its handlers get.
 */
export declare class MarketgateClient<F extends Format = 'raw'> {
  constructor(url: string, options?: ConnectOptions & { format?: F });
  readonly state: ConnectionState;
  /** The streams the client keeps subscribed (and resubscribes after a reconnect). */
  readonly streams: StreamKey[];
  /**
   * Subscribes streams; onMessage gets each message's exchange event and meta.
   * Resolves on the gateway's reply with the call's Subscription (which is
   * also a SubscribeResult, as before), rejects with its error object (the
   * call is then undone, as the gateway applies a command whole or not at
   * all: its handler leaves every stream of the call).
   * Called while disconnected, it resolves once the client has reconnected and resubscribed.
   *
   * With literal keys the data is typed from them (PayloadFor):
   * subscribe(['binance:btcusdt@trade'], (t) => t.p) gives t the type
   * BinanceTradeEvent; several keys give the union of their payloads.
   * An explicit type argument, subscribe<MyEvent>(keys, fn), sets it instead.
   */
  subscribe<const K extends StreamKey>(streams: readonly K[], onMessage: MessageHandler<PayloadFor<K, F>, K>): PendingSubscription;
  subscribe<T>(streams: readonly StreamKey[], onMessage: MessageHandler<T>): PendingSubscription;
  /**
   * Stops delivering streams to every handler at once, whichever
   * subscription added it, and unsubscribes them at the gateway. To remove
   * one handler only, use its Subscription's unsubscribe().
   */
  unsubscribe(streams: readonly StreamKey[]): Promise<SubscribeResult>;
  /** Asks the gateway for the connection's streams. */
  list(): Promise<SubscribeResult>;
  /**
   * Subscribes a book stream and returns the book it keeps (see OrderBook).
   * Throws a TypeError for a key that is not a book stream, and an Error on
   * a client of format 'normalized' (whose book messages lack the update
   * ids a kept book checks).
   */
  orderBook(this: MarketgateClient<'raw'>, key: BookKey, options?: OrderBookOptions): OrderBook;
  /**
   * The stream's last position received (from its messages, or the
   * subscribe reply before any), kept across reconnects; undefined while
   * its epoch is not known, in which case a reconnect cannot recover it.
   * After a reconnect the client resubscribes with these positions.
   */
  position(stream: StreamKey): Position | undefined;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof EventMap>(event: K, fn: (arg: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(event: K, fn: (arg: EventMap[K]) => void): void;
  /**
   * Connects at once: in state 'disconnected' (after a close the client does
   * not retry by itself), or to skip the wait while 'reconnecting'. Does
   * nothing while connecting or open, or after close().
   */
  reconnect(): void;
  /** Closes the connection for good; pending promises reject with code "closed". */
  close(): void;
}

/** The exchanges whose book streams the gateway keeps. */
export type BookExchange = 'binance' | 'binance-futures' | 'okx' | 'bybit' | 'bybit-linear';

/** The depths of a top-N book stream (`@book@<N>`, `book<N>:`, `book.<N>.`). */
export type BookDepth = 5 | 10 | 20 | 50 | 100 | 500 | 1000;

/**
 * A book stream key, the whole book the gateway keeps or its top N levels;
 * every exchange's books speak the same protocol:
 * Binance "<exchange>:<symbol>@book[@<N>]", the symbol in lower case as in
 * every Binance stream name ("binance:btcusdt@book",
 * "binance-futures:ethusdt@book@100"); OKX "okx:book[<N>]:<instId>"
 * ("okx:book:BTC-USDT", "okx:book20:BTC-USDT-SWAP"); Bybit
 * "<exchange>:book[.<N>].<symbol>" ("bybit:book.BTCUSDT",
 * "bybit-linear:book.50.ETHUSDT"). streamKey(exchange, 'book', symbol) makes them.
 */
export type BookKey =
  | `${'binance' | 'binance-futures'}:${Lowercase<string>}@book`
  | `${'binance' | 'binance-futures'}:${Lowercase<string>}@book@${BookDepth}`
  | `okx:book:${string}` | `okx:book${BookDepth}:${string}`
  | `${'bybit' | 'bybit-linear'}:book.${string}`;

/** A price level as the exchange spells it: [price, quantity], both decimal strings. */
export type BookLevel = readonly [price: string, qty: string];

/** A side of a book: 'bids' (highest price first) or 'asks' (lowest first); 'bid', 'b', 'ask', 'a' also do. */
export type BookSide = 'bids' | 'asks' | 'bid' | 'ask' | 'b' | 'a';

/**
 * The data of a book stream's messages, as the gateway publishes them.
 * A snapshot replaces the book; an update continues it (U is the previous
 * message's u + 1, the snapshot's lastUpdateId + 1 for the first; a
 * quantity that parses to 0 deletes the level); stale says the gateway has
 * no valid book for now (the last one is kept, marked stale, until the next
 * snapshot).
 */
export type BookMessage =
  | { type: 'snapshot'; lastUpdateId: number; bids: BookLevel[]; asks: BookLevel[]; /** After a resync of the gateway's book. */ gap?: boolean }
  | { type: 'update'; U: number; u: number; b: BookLevel[]; a: BookLevel[] }
  | { type: 'stale'; reason: string };

/**
 * 'waiting': no book yet, or the book was discarded after a gap and a new
 * snapshot is on its way; 'live': kept, up to date; 'stale': kept, but
 * possibly out of date (the gateway said so, or the connection is lost);
 * 'closed': close() was called.
 */
export type OrderBookState = 'waiting' | 'live' | 'stale' | 'closed';

export interface OrderBookOptions {
  /** The least time in ms between two resubscriptions for a new snapshot after gaps. Default 1000. */
  resyncInterval?: number;
}

export interface BookSnapshotEvent {
  lastUpdateId: number;
  /** True when the gateway resynced its own book (its snapshot carried "gap": true). */
  gap: boolean;
  /** Levels per side in the snapshot. */
  bids: number;
  asks: number;
}

/**
 * Why the book was discarded (or, for 'resync', replaced):
 * 'sequence': an update's U was not the previous u + 1 (expected, U and u say which);
 * 'stream': messages of the stream were lost (flagged gap by the gateway, or not recovered after a reconnect);
 * 'invalid': a message that is not a valid snapshot or update;
 * 'resync': the gateway resynced its book and sent a new snapshot with "gap": true (the book is replaced, no resubscription).
 * Except for 'resync', the book is empty ('waiting') and resubscribed until the next snapshot.
 */
export interface BookGapEvent {
  reason: 'sequence' | 'stream' | 'invalid' | 'resync';
  expected?: number;
  U?: number;
  u?: number;
  /** The frame's seq, for 'stream'. */
  seq?: number;
  /** The new snapshot's, for 'resync'. */
  lastUpdateId?: number;
}

export interface BookStaleEvent {
  /** The gateway's reason, or 'disconnected' while the connection is lost. */
  reason: string;
}

export interface OrderBookEventMap {
  snapshot: BookSnapshotEvent;
  /** Each update applied, as the gateway sent it. */
  update: Extract<BookMessage, { type: 'update' }>;
  /** After every snapshot, update, gap and stale mark: the book to draw. */
  change: OrderBook;
  stale: BookStaleEvent;
  gap: BookGapEvent;
  /** The subscription was refused (e.g. invalid_stream); ready rejects with it too. */
  error: GatewayError;
}

export interface OrderBookStats {
  snapshots: number;
  updates: number;
  gaps: number;
  resyncs: number;
  /** Updates dropped while waiting for a snapshot. */
  ignored: number;
}

/**
 * A book kept from a book stream, by client.orderBook(key). Prices are
 * ordered exactly from their decimal strings (no floating point); two
 * spellings of one price ("100.10", "100.1") are one level. Kept in maps
 * and sorted price arrays: an update costs O(levels changed × log n) plus
 * an array insert, fine for thousands of levels.
 */
export declare class OrderBook {
  readonly key: BookKey;
  readonly state: OrderBookState;
  /** True while state is 'stale'. */
  readonly stale: boolean;
  /** The gateway's reason, or 'disconnected'; '' when not stale. */
  readonly staleReason: string;
  /** The snapshot's lastUpdateId, then each update's u; null while waiting. */
  readonly lastUpdateId: number | null;
  /** All bids, best (highest) first; a new array after each change, not to be modified. */
  readonly bids: readonly BookLevel[];
  /** All asks, best (lowest) first; a new array after each change, not to be modified. */
  readonly asks: readonly BookLevel[];
  readonly stats: OrderBookStats;
  /** Resolves with the book at its first snapshot; rejects when the subscription is refused or the book closed before. */
  readonly ready: Promise<OrderBook>;
  /** The best n levels of side (all when n is left out), best first. */
  levels(side: BookSide, n?: number): BookLevel[];
  /** The best level of side, undefined when it has none. */
  best(side: BookSide): BookLevel | undefined;
  /** How many levels side has. */
  depth(side: BookSide): number;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof OrderBookEventMap>(event: K, fn: (arg: OrderBookEventMap[K]) => void): () => void;
  off<K extends keyof OrderBookEventMap>(event: K, fn: (arg: OrderBookEventMap[K]) => void): void;
  /** Lets the stream go (unsubscribed at the gateway when nothing else holds it); the book is done. */
  close(): void;
}

/** Connects to url (ws:, wss:, http:, https: or a path relative to the page, e.g. "/ws"). */
export declare function connect<F extends Format = 'raw'>(url: string, options?: ConnectOptions & { format?: F }): MarketgateClient<F>;

/** NormalizedEvent is a message's data with the client's format 'normalized'. */
export type NormalizedEvent =
  | { type: 'trade'; exchange: string; symbol: string; id: string; price: string; amount: string; side: 'buy' | 'sell'; timestamp: number }
  | { type: 'ticker'; exchange: string; symbol: string; bid: string; ask: string; last: string; volume: string; timestamp: number }
  | { type: 'candle'; exchange: string; symbol: string; interval: string; start: number; open: string; high: string; low: string; close: string; volume: string; closed: boolean; timestamp: number }
  | { type: 'book_snapshot' | 'book_update'; exchange: string; symbol: string; bids: [string, string][]; asks: [string, string][] };

// --- stream keys: a venue's native key from a unified symbol ---

/** The exchanges streamKey knows. */
export type ExchangeName = 'binance' | 'binance-futures' | 'okx' | 'bybit' | 'bybit-linear';

/** The classes of data streamKey makes keys for. */
export type StreamClass = 'trade' | 'ticker' | 'candle' | 'book';

/** One exchange streamKey knows. */
export interface ExchangeInfo {
  /** The key's prefix, e.g. "okx". */
  readonly name: ExchangeName;
  /** A human name, e.g. "Bybit linear perpetuals". */
  readonly title: string;
  /** What it lists: spot pairs (BASE/QUOTE), perpetuals (BASE/QUOTE:SETTLE), or both (OKX). */
  readonly market: 'spot' | 'perpetual' | 'both';
}

/** The exchanges streamKey knows, in the gateway's order. */
export declare const exchanges: readonly ExchangeInfo[];

/** A unified symbol read by parseSymbol; settle is "" for a spot pair. */
export interface UnifiedSymbol {
  unified: string;
  base: string;
  quote: string;
  settle: string;
}

/** What streamKey, exchangeSymbol, parseSymbol and candleIntervals throw; message says what is wanted. */
export interface StreamKeyError extends Error {
  name: 'StreamKeyError';
  code: 'unknown_exchange' | 'unknown_class' | 'bad_symbol' | 'bad_interval' | 'bad_depth';
}

export interface StreamKeyOptions {
  /** A candle's unified interval: '1m' (default), '5m', '1h', '1d', '1M' (a month)…; see candleIntervals. */
  interval?: string;
  /** A book's top-N view: 5, 10, 20, 50, 100, 500 or 1000; default the whole book the gateway keeps. */
  depth?: number;
}

/**
 * The stream key of class cls of a unified symbol (BASE/QUOTE, or
 * BASE/QUOTE:SETTLE for a perpetual) on exchange, e.g.
 * streamKey('okx', 'trade', 'BTC/USDT') is 'okx:trades:BTC-USDT',
 * streamKey('bybit-linear', 'book', 'BTC/USDT:USDT') 'bybit-linear:book.BTCUSDT'.
 * trade, ticker and candle keys have a normalized form; book keys are for
 * orderBook. Throws a StreamKeyError; whether the exchange lists the symbol
 * is the gateway's to say (invalid_stream).
 */
export declare function streamKey<E extends ExchangeName, C extends StreamClass>(exchange: E, cls: C, symbol: string, options?: StreamKeyOptions): StreamKeyOf<E, C>;
export declare function streamKey(exchange: ExchangeName | string, cls: 'book', symbol: string, options?: StreamKeyOptions): BookKey;
export declare function streamKey(exchange: ExchangeName | string, cls: StreamClass, symbol: string, options?: StreamKeyOptions): StreamKey;

/**
 * The type of the key streamKey(exchange, cls, …) returns, as precise as
 * the arguments' types allow: streamKey('binance', 'trade', 'BTC/USDT')
 * is a `binance:${string}@trade`, whose messages are BinanceTradeEvent.
 */
export type StreamKeyOf<E extends string, C extends StreamClass> =
  C extends 'book' ? Extract<BookKey, `${E}:${string}`>
  : E extends 'binance' | 'binance-futures' ? `${E}:${Lowercase<string>}@${C extends 'trade' ? (E extends 'binance' ? 'trade' : 'aggTrade') : C extends 'ticker' ? 'ticker' : `kline_${string}`}`
  : E extends 'okx' ? `okx:${C extends 'trade' ? 'trades' : C extends 'ticker' ? 'tickers' : `candle${string}`}:${string}`
  : E extends 'bybit' | 'bybit-linear' ? `${E}:${C extends 'trade' ? 'publicTrade' : C extends 'ticker' ? 'tickers' : `kline.${string}`}.${string}`
  : StreamKey;

/** How exchange spells the unified symbol: 'BTCUSDT', 'BTC-USDT-SWAP', 'BTCPERP'…; throws a StreamKeyError. */
export declare function exchangeSymbol(exchange: ExchangeName | string, symbol: string): string;

/** Reads a unified symbol (lower case taken as upper); throws a StreamKeyError (bad_symbol). */
export declare function parseSymbol(symbol: string): UnifiedSymbol;

/** The candle intervals streamKey takes for exchange, by unified name. */
export declare function candleIntervals(exchange: ExchangeName | string): string[];

/**
 * A message's data in the normalized form: OKX and Bybit send several
 * events in one message, which then come as an array; fields the exchange
 * did not send (Bybit spot tickers have no bid and ask, Bybit linear ticker
 * deltas only what changed) are left out.
 */
export type NormalizedData = NormalizedEvent | NormalizedEvent[];

// --- error codes ---

/**
 * The codes of GatewayError: the gateway's (bad_request, unknown_op,
 * invalid_stream, too_many_streams, upstream_error, forbidden, busy:
 * retried by the client, not seen by callers of subscribe) and the
 * client's own (timeout, disconnected, closed, too_many_pending,
 * connect_failed, token_failed). Other strings may come from a newer
 * gateway.
 */
export type GatewayErrorCode =
  | 'bad_request' | 'unknown_op' | 'invalid_stream' | 'too_many_streams' | 'upstream_error' | 'forbidden' | 'busy' | 'unavailable'
  | 'timeout' | 'disconnected' | 'closed' | 'too_many_pending' | 'connect_failed' | 'token_failed'
  | (string & {});

// --- Binance payloads ---
//
// The events of Binance's market streams as the gateway delivers them in
// the raw format: the exchange's JSON, byte for byte. Prices and
// quantities are decimal strings, ids and times numbers (times in Unix
// milliseconds). Spot and USD-M futures share most shapes; where they
// differ, the fields only one sends are optional, or the type is named
// for its product.

/** A price level: [price, quantity], both decimal strings. */
export type BinanceLevel = [price: string, qty: string];

/** `<symbol>@trade` (spot): one trade. */
export interface BinanceTradeEvent {
  e: 'trade';
  /** Event time. */
  E: number;
  /** Symbol, upper case (e.g. "BTCUSDT"). */
  s: string;
  /** Trade id. */
  t: number;
  /** Price. */
  p: string;
  /** Quantity. */
  q: string;
  /** Trade time. */
  T: number;
  /** Is the buyer the market maker (so the taker sold)? */
  m: boolean;
  /** Ignore. */
  M: boolean;
}

/** `<symbol>@aggTrade` (spot and futures): trades at one price of one taker order, aggregated. */
export interface BinanceAggTradeEvent {
  e: 'aggTrade';
  E: number;
  s: string;
  /** Aggregate trade id. */
  a: number;
  p: string;
  q: string;
  /** First trade id. */
  f: number;
  /** Last trade id. */
  l: number;
  T: number;
  /** Is the buyer the market maker? */
  m: boolean;
  /** Ignore; spot only. */
  M?: boolean;
}

/** `<symbol>@blockTrade` (spot). */
export interface BinanceBlockTradeEvent {
  e: 'blockTrade';
  E: number;
  s: string;
  t: number;
  p: string;
  q: string;
  T: number;
  m: boolean;
}

/** `<symbol>@referencePrice` (spot): no E; r may be null. */
export interface BinanceReferencePriceEvent {
  e: 'referencePrice';
  s: string;
  /** Reference price, or null. */
  r: string | null;
  /** Time. */
  t: number;
}

/** `<symbol>@avgPrice` (spot): the average price over an interval. */
export interface BinanceAvgPriceEvent {
  e: 'avgPrice';
  E: number;
  s: string;
  /** The averaging interval, e.g. "5m". */
  i: string;
  /** Average price. */
  w: string;
  /** Last trade time. */
  T: number;
}

/** The kline intervals: spot has all of them, futures all but 1s. "1m" is a minute, "1M" a month. */
export type BinanceKlineInterval = '1s' | '1m' | '3m' | '5m' | '15m' | '30m' | '1h' | '2h' | '4h' | '6h' | '8h' | '12h' | '1d' | '3d' | '1w' | '1M';

/** A kline (candle) as Binance sends it in a kline event's k. */
export interface BinanceKline {
  /** Open time. */
  t: number;
  /** Close time (the last millisecond of the interval). */
  T: number;
  s: string;
  /** Interval. */
  i: BinanceKlineInterval;
  /** First trade id. */
  f: number;
  /** Last trade id. */
  L: number;
  /** Open, close, high, low prices. */
  o: string;
  c: string;
  h: string;
  l: string;
  /** Base asset volume. */
  v: string;
  /** Number of trades. */
  n: number;
  /** Is this kline closed? */
  x: boolean;
  /** Quote asset volume. */
  q: string;
  /** Taker buy base asset volume. */
  V: string;
  /** Taker buy quote asset volume. */
  Q: string;
  /** Ignore. */
  B: string;
}

/** `<symbol>@kline_<interval>` (and spot's `@kline_<interval>@+08:00`). */
export interface BinanceKlineEvent {
  e: 'kline';
  E: number;
  s: string;
  k: BinanceKline;
}

/** Futures `<pair>_<contract type>@continuousKline_<interval>`. */
export interface BinanceContinuousKlineEvent {
  e: 'continuous_kline';
  E: number;
  /** Pair, e.g. "BTCUSDT". */
  ps: string;
  /** Contract type. */
  ct: 'PERPETUAL' | 'CURRENT_QUARTER' | 'NEXT_QUARTER';
  k: Omit<BinanceKline, 's'>;
}

/** `<symbol>@miniTicker` and the elements of `!miniTicker@arr`: the 24 h rolling window, briefly. */
export interface BinanceMiniTickerEvent {
  e: '24hrMiniTicker';
  E: number;
  s: string;
  /** Close (last) price. */
  c: string;
  /** Open price. */
  o: string;
  h: string;
  l: string;
  /** Base asset volume. */
  v: string;
  /** Quote asset volume. */
  q: string;
}

/**
 * `<symbol>@ticker`, the 24 h rolling window, and the elements of futures'
 * `!ticker@arr`. Spot also sends the first trade's price before the window
 * (x) and the best bid and ask (b, B, a, A); futures does not.
 */
export interface BinanceTickerEvent {
  e: '24hrTicker';
  E: number;
  s: string;
  /** Price change. */
  p: string;
  /** Price change percent. */
  P: string;
  /** Weighted average price. */
  w: string;
  /** First trade before the window (spot). */
  x?: string;
  /** Last price. */
  c: string;
  /** Last quantity. */
  Q: string;
  /** Best bid price and quantity, best ask price and quantity (spot). */
  b?: string;
  B?: string;
  a?: string;
  A?: string;
  o: string;
  h: string;
  l: string;
  v: string;
  q: string;
  /** Statistics open and close time. */
  O: number;
  C: number;
  /** First and last trade ids. */
  F: number;
  L: number;
  /** Number of trades. */
  n: number;
}

/** The rolling-window ticker sizes of `@ticker_<window>`. */
export type BinanceTickerWindow = '1h' | '4h' | '1d';

/** Spot `<symbol>@ticker_<window>` and the elements of `!ticker_<window>@arr`. */
export interface BinanceWindowTickerEvent {
  e: '1hTicker' | '4hTicker' | '1dTicker';
  E: number;
  s: string;
  p: string;
  P: string;
  o: string;
  h: string;
  l: string;
  c: string;
  w: string;
  v: string;
  q: string;
  O: number;
  C: number;
  F: number;
  L: number;
  n: number;
}

/**
 * `<symbol>@bookTicker`: the best bid and ask. Spot sends no e and no E;
 * futures (and its `!bookTicker`) adds e, E and T.
 */
export interface BinanceBookTickerEvent {
  /** Futures only. */
  e?: 'bookTicker';
  /** Order book update id. */
  u: number;
  /** Futures only: event and transaction time. */
  E?: number;
  T?: number;
  s: string;
  /** Best bid price and quantity. */
  b: string;
  B: string;
  /** Best ask price and quantity. */
  a: string;
  A: string;
}

/** The partial depths of `@depth<levels>`. */
export type BinanceDepthLevels = 5 | 10 | 20;

/** Spot `<symbol>@depth<5|10|20>[@100ms]`: the top levels; no e, no E, no symbol. */
export interface BinancePartialDepth {
  lastUpdateId: number;
  bids: BinanceLevel[];
  asks: BinanceLevel[];
}

/**
 * `<symbol>@depth[@100ms]` (diff depth), and futures' partial depth too:
 * the levels that changed between update ids U and u. Futures adds the
 * transaction time T and pu, the previous event's u.
 */
export interface BinanceDepthUpdateEvent {
  e: 'depthUpdate';
  E: number;
  /** Futures only: transaction time. */
  T?: number;
  s: string;
  /** First and final update id of the event. */
  U: number;
  u: number;
  /** Futures only: the previous event's u. */
  pu?: number;
  /** Bids and asks that changed; a quantity of 0 removes the level. */
  b: BinanceLevel[];
  a: BinanceLevel[];
}

/** Futures `<symbol>@markPrice[@1s]` and the elements of `!markPrice@arr[@1s]`. */
export interface BinanceMarkPriceEvent {
  e: 'markPriceUpdate';
  E: number;
  s: string;
  /** Mark price. */
  p: string;
  /** Index price. */
  i: string;
  /** Estimated settle price. */
  P: string;
  /** Funding rate. */
  r: string;
  /** Next funding time. */
  T: number;
}

/** Futures `<symbol>@forceOrder` and `!forceOrder@arr`: a liquidation order. */
export interface BinanceForceOrderEvent {
  e: 'forceOrder';
  E: number;
  o: {
    s: string;
    /** Side. */
    S: 'BUY' | 'SELL';
    /** Order type, time in force, quantity, price, average price, status. */
    o: string;
    f: string;
    q: string;
    p: string;
    ap: string;
    X: string;
    /** Last filled quantity, accumulated filled quantity. */
    l: string;
    z: string;
    /** Trade time. */
    T: number;
  };
}

/** Any Binance event the gateway delivers in the raw format, arrays of the all-market streams included. */
export type BinanceEvent =
  | BinanceTradeEvent | BinanceAggTradeEvent | BinanceBlockTradeEvent | BinanceReferencePriceEvent
  | BinanceAvgPriceEvent | BinanceKlineEvent | BinanceContinuousKlineEvent | BinanceMiniTickerEvent
  | BinanceTickerEvent | BinanceWindowTickerEvent | BinanceBookTickerEvent | BinancePartialDepth
  | BinanceDepthUpdateEvent | BinanceMarkPriceEvent | BinanceForceOrderEvent
  | BinanceMiniTickerEvent[] | BinanceWindowTickerEvent[] | BinanceTickerEvent[] | BinanceMarkPriceEvent[];

// --- typed stream keys ---

/**
 * Binance spot stream names the gateway takes (upstream/binance's
 * grammar), with the symbol in lower case: "btcusdt@trade",
 * "ethusdt@kline_1h", "btcusdt@depth20@100ms", "!miniTicker@arr", and the
 * gateway's kept book "btcusdt@book[@N]".
 */
export type BinanceSpotStream =
  | `${Lowercase<string>}@${'trade' | 'aggTrade' | 'blockTrade' | 'referencePrice' | 'avgPrice' | 'miniTicker' | 'ticker' | 'bookTicker'}`
  | `${Lowercase<string>}@kline_${BinanceKlineInterval}` | `${Lowercase<string>}@kline_${BinanceKlineInterval}@+08:00`
  | `${Lowercase<string>}@ticker_${BinanceTickerWindow}`
  | `${Lowercase<string>}@depth${'' | BinanceDepthLevels}` | `${Lowercase<string>}@depth${'' | BinanceDepthLevels}@100ms`
  | `${Lowercase<string>}@book` | `${Lowercase<string>}@book@${BookDepth}`
  | '!miniTicker@arr' | `!ticker_${BinanceTickerWindow}@arr`;

/** Binance USD-M futures stream names the gateway takes. */
export type BinanceFuturesStream =
  | `${Lowercase<string>}@${'aggTrade' | 'markPrice' | 'markPrice@1s' | 'miniTicker' | 'ticker' | 'bookTicker' | 'forceOrder'}`
  | `${Lowercase<string>}@kline_${Exclude<BinanceKlineInterval, '1s'>}`
  | `${Lowercase<string>}_${'perpetual' | 'current_quarter' | 'next_quarter'}@continuousKline_${Exclude<BinanceKlineInterval, '1s'>}`
  | `${Lowercase<string>}@depth${'' | BinanceDepthLevels}` | `${Lowercase<string>}@depth${'' | BinanceDepthLevels}@${'100ms' | '500ms'}`
  | `${Lowercase<string>}@book` | `${Lowercase<string>}@book@${BookDepth}`
  | '!markPrice@arr' | '!markPrice@arr@1s' | '!miniTicker@arr' | '!ticker@arr' | '!bookTicker' | '!forceOrder@arr';

/** A gateway key of a Binance stream: "binance:<spot stream>" or "binance-futures:<futures stream>". */
export type BinanceStreamKey = `binance:${BinanceSpotStream}` | `binance-futures:${BinanceFuturesStream}`;

/** The payload of spot stream name N ("btcusdt@trade" → BinanceTradeEvent); unknown for a name it does not know. */
export type BinanceSpotPayload<N extends string> =
  N extends '!miniTicker@arr' ? BinanceMiniTickerEvent[]
  : N extends `!ticker_${string}@arr` ? BinanceWindowTickerEvent[]
  : N extends `${string}@${infer S}` ? SpotSuffixPayload<S>
  : unknown;

type SpotSuffixPayload<S extends string> =
  S extends 'trade' ? BinanceTradeEvent
  : S extends 'aggTrade' ? BinanceAggTradeEvent
  : S extends 'blockTrade' ? BinanceBlockTradeEvent
  : S extends 'referencePrice' ? BinanceReferencePriceEvent
  : S extends 'avgPrice' ? BinanceAvgPriceEvent
  : S extends `kline_${string}` ? BinanceKlineEvent
  : S extends 'miniTicker' ? BinanceMiniTickerEvent
  : S extends 'ticker' ? BinanceTickerEvent
  : S extends `ticker_${string}` ? BinanceWindowTickerEvent
  : S extends 'bookTicker' ? BinanceBookTickerEvent
  : S extends 'depth' | 'depth@100ms' ? BinanceDepthUpdateEvent
  : S extends `depth${BinanceDepthLevels}` | `depth${BinanceDepthLevels}@100ms` ? BinancePartialDepth
  : S extends 'book' | `book@${string}` ? BookMessage
  : unknown;

/** The payload of futures stream name N ("btcusdt@markPrice" → BinanceMarkPriceEvent); unknown for a name it does not know. */
export type BinanceFuturesPayload<N extends string> =
  N extends '!markPrice@arr' | '!markPrice@arr@1s' ? BinanceMarkPriceEvent[]
  : N extends '!miniTicker@arr' ? BinanceMiniTickerEvent[]
  : N extends '!ticker@arr' ? BinanceTickerEvent[]
  : N extends '!bookTicker' ? BinanceBookTickerEvent
  : N extends '!forceOrder@arr' ? BinanceForceOrderEvent
  : N extends `${string}@continuousKline_${string}` ? BinanceContinuousKlineEvent
  : N extends `${string}@${infer S}` ? FuturesSuffixPayload<S>
  : unknown;

type FuturesSuffixPayload<S extends string> =
  S extends 'aggTrade' ? BinanceAggTradeEvent
  : S extends 'markPrice' | 'markPrice@1s' ? BinanceMarkPriceEvent
  : S extends `kline_${string}` ? BinanceKlineEvent
  : S extends 'miniTicker' ? BinanceMiniTickerEvent
  : S extends 'ticker' ? BinanceTickerEvent
  : S extends 'bookTicker' ? BinanceBookTickerEvent
  : S extends 'forceOrder' ? BinanceForceOrderEvent
  : S extends `depth${string}` ? BinanceDepthUpdateEvent // diff and partial depth alike
  : S extends 'book' | `book@${string}` ? BookMessage
  : unknown;

/**
 * The data of stream key K in the raw format: a Binance event for a
 * Binance key ("binance:btcusdt@trade" → BinanceTradeEvent,
 * "binance-futures:btcusdt@depth" → BinanceDepthUpdateEvent), a
 * BookMessage for any exchange's book key, unknown otherwise (OKX and
 * Bybit events, a key known only as a string).
 */
export type StreamPayload<K extends string> =
  K extends `binance:${infer N}` ? BinanceSpotPayload<N>
  : K extends `binance-futures:${infer N}` ? BinanceFuturesPayload<N>
  : K extends BookKey ? BookMessage
  : unknown;

/** The normalized trade. */
export type NormalizedTrade = Extract<NormalizedEvent, { type: 'trade' }>;
/** The normalized ticker; fields the exchange did not send are left out. */
export type NormalizedTicker = Extract<NormalizedEvent, { type: 'ticker' }>;
/** The normalized candle. */
export type NormalizedCandle = Extract<NormalizedEvent, { type: 'candle' }>;
/** The normalized book message. */
export type NormalizedBook = Extract<NormalizedEvent, { type: 'book_snapshot' | 'book_update' }>;

/**
 * The data of stream key K on a client of format 'normalized'. Binance's
 * trade and aggTrade, ticker, kline (not the +08:00 ones) and book streams
 * have a normalized form, one event per message; other Binance streams
 * keep their raw payload. OKX and Bybit keys give NormalizedData (several
 * events may come in one message). An event the gateway cannot normalize
 * (a symbol not yet known, a book's stale notice) is delivered raw.
 */
export type NormalizedPayload<K extends string> =
  K extends `${'binance' | 'binance-futures'}:${infer N}` ? BinanceNormalizedPayload<K, N>
  : K extends `${'okx' | 'bybit' | 'bybit-linear'}:${string}` ? NormalizedData
  : unknown;

type BinanceNormalizedPayload<K extends string, N extends string> =
  N extends `${string}@${'trade' | 'aggTrade'}` ? NormalizedTrade
  : N extends `${string}@ticker` ? NormalizedTicker
  : N extends `${string}@kline_${string}@${string}` ? StreamPayload<K>
  : N extends `${string}@kline_${string}` ? NormalizedCandle
  : N extends `${string}@book` | `${string}@book@${string}` ? NormalizedBook
  : StreamPayload<K>;
