/**
 * The shape of the `internet` bench scenario (issue T2 9/9): thousands of recipient domains on
 * a thousand MX hosts with the faults real destinations have. Shared by the world generator
 * (internet-world.ts, pure and seeded), the sink that plays every host (internet-sink.ts) and the
 * scenario runner (run.ts).
 */

/** How one MX host behaves. */
export type HostFault =
  /** Answers normally (after its delay), offers STARTTLS with a certificate for its name. */
  | 'none'
  /** Refuses TCP connections (nothing listens on its address). */
  | 'refuse'
  /** Accepts TCP and never sends a greeting. */
  | 'never-greet'
  /** Answers 451 4.3.0 to RCPT for the recipients whose local part starts with `soft` (the rest normally). */
  | 'rcpt-4xx'
  /** Offers no STARTTLS (and answers 502 to it). */
  | 'no-starttls'
  /** Offers STARTTLS, answers 220, then closes the connection instead of a handshake. */
  | 'tls-fail';

export interface MxHost {
  /** e.g. mx17.hosts.internet.test */
  name: string;
  /** A distinct loopback address. */
  address: string;
  /** Delay before each reply (ms): 40 by default, 300 for the far hosts. */
  delayMs: number;
  fault: HostFault;
}

/** The TLS settings of the destination table, in the import file's words. */
export type TlsSetting = 'no' | 'preferred' | 'required' | 'preferred-verify' | 'required-verify';

export interface TableEntry {
  domain: string;
  tls: TlsSetting;
  /** Concurrent connections, 2–50. */
  concurrency: number;
  /** Messages per connection, 1–100. */
  messagesPerConnection: number;
  /** Recipients per window, or none. */
  window?: { recipients: number; minutes: number };
}

export interface Domain {
  name: string;
  /** MX host indexes (into World.hosts), by preference: one or two. */
  mx: number[];
}

export interface Message {
  /** Recipient addresses (1–5), `local@domain`. */
  to: string[];
  /** Body size in bytes, 2–100 KB. */
  size: number;
}

export interface World {
  seed: number;
  hosts: MxHost[];
  domains: Domain[];
  /** 200 entries, for domains among the busiest and the rest (the (Default) entry is not here). */
  table: TableEntry[];
  /** The (Default) entry's TLS setting and limits. */
  defaults: TableEntry;
  messages: Message[];
}

/** What the world says must become of a recipient (checked after the run, not assumed). */
export type Expected =
  | { kind: 'delivered' }
  /** Not deliverable now: each reason a host or the policy gives (4xx, refused, no greeting, TLS). */
  | { kind: 'deferred'; why: string };

/** What the sink measured per recipient domain, to check limits were never exceeded. */
export interface DomainMeasure {
  /** Most sessions that had this domain's recipients in them at the same time. */
  maxConcurrent: number;
  /** Most messages of this domain on one session. */
  maxMessagesPerSession: number;
  /** Most recipients accepted within any sliding window of the entry's minutes (when it has one). */
  maxInWindow: number;
  delivered: number;
}
