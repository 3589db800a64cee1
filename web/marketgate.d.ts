// Type declarations for marketgate.js, the browser client of the marketgate
// native WebSocket protocol (/ws).

/** A stream key, "<exchange>:<exchange stream name>", e.g. "binance:btcusdt@trade". */
export type StreamKey = string;

export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/**
 * An error as the gateway sends it (bad_request, unknown_op, invalid_stream,
 * too_many_streams, upstream_error), or one of the client's own:
 * timeout, disconnected, closed, too_many_pending, connect_failed.
 */
export interface GatewayError {
  code: string;
  msg: string;
  /** The offending streams, where the gateway names them. */
  streams?: StreamKey[];
  /** Set on an upstream_error notice: the stream that failed and is no longer subscribed. */
  stream?: StreamKey;
}

export interface MessageMeta {
  stream: StreamKey;
  /** This gateway node's number of the message, +1 per message of the stream. */
  seq: number;
  /** True when events may have been lost just before this message (a 'gap' event was emitted for it). */
  gap: boolean;
}

export interface GapEvent {
  stream: StreamKey;
  seq: number;
  /** The seq of the stream's previous message on this connection, if any. */
  prevSeq?: number;
  /**
   * 'gap': the gateway flagged the message with gap:true;
   * 'seq': seq did not follow the previous one by 1;
   * 'reconnect': first message after the client reconnected and resubscribed.
   */
  reason: 'gap' | 'seq' | 'reconnect';
}

export interface SubscribeResult {
  streams: StreamKey[];
}

export interface ConnectOptions {
  /** Reconnect backoff in ms: exponential from min to max, with full jitter. Default {min: 250, max: 10000}. */
  backoff?: { min?: number; max?: number };
  /** Interval in ms of the app-level {"op":"ping"} keepalive; 0 disables it. Default 15000. */
  pingInterval?: number;
  /** A connection that brings nothing within this many ms of a ping is dropped and reconnected. Default 10000. */
  pingTimeout?: number;
  /** Pending command promises are rejected with code "timeout" after this many ms. Default 10000. */
  commandTimeout?: number;
  /** Commands awaiting a reply at most; beyond it calls reject with code "too_many_pending". Default 256. */
  maxPending?: number;
  /** Largest command the client sends, in bytes; longer stream lists are split. Default 4000 (the gateway's limit is 4 KiB). */
  maxFrameBytes?: number;
  /**
   * Commands (pings included) sent in any one second at most; more wait their turn.
   * Default 5: the gateway closes a connection that sends over 10 a second with 1008.
   */
  maxCommandsPerSecond?: number;
  /** WebSocket constructor to use instead of globalThis.WebSocket (tests). */
  WebSocket?: new (url: string) => WebSocket;
}

export type MessageHandler<T = unknown> = (data: T, meta: MessageMeta) => void;

export interface EventMap {
  state: ConnectionState;
  gap: GapEvent;
  error: GatewayError;
}

export declare class MarketgateClient {
  constructor(url: string, options?: ConnectOptions);
  readonly state: ConnectionState;
  /** The streams the client keeps subscribed (and resubscribes after a reconnect). */
  readonly streams: StreamKey[];
  /**
   * Subscribes streams; onMessage gets each message's exchange event and meta.
   * Resolves on the gateway's reply, rejects with its error object (the
   * command is then undone, as the gateway applies it whole or not at all).
   * Called while disconnected, it resolves once the client has reconnected and resubscribed.
   */
  subscribe<T = unknown>(streams: StreamKey[], onMessage: MessageHandler<T>): Promise<SubscribeResult>;
  /** Stops delivering streams at once and unsubscribes them at the gateway. */
  unsubscribe(streams: StreamKey[]): Promise<SubscribeResult>;
  /** Asks the gateway for the connection's streams. */
  list(): Promise<SubscribeResult>;
  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof EventMap>(event: K, fn: (arg: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(event: K, fn: (arg: EventMap[K]) => void): void;
  /** Closes the connection for good; pending promises reject with code "closed". */
  close(): void;
}

/** Connects to url (ws:, wss:, http:, https: or a path relative to the page, e.g. "/ws"). */
export declare function connect(url: string, options?: ConnectOptions): MarketgateClient;
