/**
 * What the gateway and its listener thread say to each other (smtp/listener-thread.ts runs in
 * the gateway, smtp/listener-worker.ts on the thread). Everything here is structured-clone data.
 */
import type { ArrivalView } from '../delivery/arrival.js';
import type { MailEvent } from '../observe/events.js';
import type { InboundSettings } from './listener.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** Where a listener is bound. */
export interface BoundAddress {
  address: string;
  port: number;
}

/** Given to the thread when it starts (workerData). */
export interface ListenerThreadConfig {
  dataDir: string;
  hostname: string;
  allowedNetworks: string[];
  maxMessageSize: number;
  maxRecipients: number;
  tlsKey: string;
  tlsCert: string;
  closeTimeoutMs: number;
  idleTimeoutMs: number;
  relay: ListenAddress;
  /** The public listener (`--public-listen`), with its settings at start. */
  public?: ListenAddress & { settings: InboundSettings };
  view: ArrivalView;
  /** The queue's write lock, shared with the gateway's own queue connection (queue/write-lock.ts). */
  writeLock: SharedArrayBuffer;
}

/** Gateway → thread. */
export type ToListener =
  | { type: 'view'; view: ArrivalView }
  | { type: 'inbound'; settings: InboundSettings }
  | { type: 'close' };

/** One thing the thread reports; sent in order, several per message. */
export type ListenerReport =
  | { kind: 'log'; event: MailEvent }
  | { kind: 'accepted'; mid: number; recipients: { address: string; deferred?: { nextAttempt: number; enhanced: string; reason: string } }[] }
  | { kind: 'acceptTime'; seconds: number }
  | { kind: 'raise'; name: string; detail: string }
  | { kind: 'clear'; name: string };

/** Thread → gateway. */
export type FromListener =
  | { type: 'listening'; relay: BoundAddress; public?: BoundAddress }
  | { type: 'failed'; message: string; code?: string }
  | { type: 'reports'; reports: ListenerReport[] }
  | { type: 'closed' };
