/**
 * The listener thread (started by smtp/listener-thread.ts): the SMTP listeners — relay, and
 * public when on — with a connection of their own to queue.db, so that taking mail in does not
 * wait behind delivery's work on the gateway's event loop. A 250 still follows the commit and
 * the fsync of the queue, here. What the gateway must know (log events, accepted messages for
 * delivery, accept times, storage conditions) goes back as reports, in order, once per turn of
 * this thread's loop; the gateway sends the suspensions for deferral on arrival and, for the
 * public listener, its settings whenever they change.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { deferArrivals } from '../delivery/arrival.js';
import { IdSequence } from '../queue/ids.js';
import { GATEWAY_CHECKPOINT_PAGES, QueueStore } from '../queue/store.js';
import { WriteLock } from '../queue/write-lock.js';
import { RelayListener, type InboundSettings, type ListenerOptions } from './listener.js';
import type { BoundAddress, FromListener, ListenerReport, ListenerThreadConfig, ToListener } from './listener-messages.js';
import { NetworkList } from './networks.js';

const config = workerData as ListenerThreadConfig;
const port = parentPort!;
const send = (m: FromListener): void => port.postMessage(m);

let view = config.view;
let inbound: InboundSettings | undefined = config.public?.settings;

const outbox: ListenerReport[] = [];
let flushing = false;
function report(r: ListenerReport): void {
  outbox.push(r);
  if (flushing) return;
  flushing = true;
  setImmediate(flush);
}
function flush(): void {
  flushing = false;
  if (outbox.length > 0) send({ type: 'reports', reports: outbox.splice(0) });
}

const queue = QueueStore.open(config.dataDir, { lock: new WriteLock(config.writeLock), autoCheckpointPages: GATEWAY_CHECKPOINT_PAGES });
const icids = new IdSequence(queue, 'icid');
/** Conditions this thread raised: only those are cleared from here (a clear per message otherwise). */
const raised = new Set<string>();

const common: Omit<ListenerOptions, 'host' | 'port'> = {
  hostname: config.hostname,
  allowed: new NetworkList(config.allowedNetworks),
  queue,
  log: { write: (event) => report({ kind: 'log', event }) },
  maxMessageSize: config.maxMessageSize,
  maxRecipients: config.maxRecipients,
  beforeAccept: (msg) => {
    if (view.holds.size > 0) deferArrivals(msg, view.gateways, (key) => view.holds.get(key), Date.now());
  },
  onAccepted: (mid, msg) =>
    report({ kind: 'accepted', mid, recipients: msg.recipients.map((r) => (r.deferred ? { address: r.address, deferred: r.deferred } : { address: r.address })) }),
  acceptTime: (seconds) => report({ kind: 'acceptTime', seconds }),
  nextIcid: () => icids.take(),
  tlsKey: config.tlsKey,
  tlsCert: config.tlsCert,
  closeTimeoutMs: config.closeTimeoutMs,
  idleTimeoutMs: config.idleTimeoutMs,
  conditions: {
    raise: (name, detail) => {
      raised.add(name);
      report({ kind: 'raise', name, detail });
    },
    clear: (name) => {
      if (raised.delete(name)) report({ kind: 'clear', name });
    },
  },
};

const relay = new RelayListener({ ...common, host: config.relay.host, port: config.relay.port });
const publicListener = config.public ? new RelayListener({ ...common, host: config.public.host, port: config.public.port, inbound: () => inbound! }) : null;

async function closeAll(): Promise<void> {
  await Promise.all([relay.close(), publicListener?.close()]);
  flush();
  queue.close();
}

port.on('message', (m: ToListener) => {
  if (m.type === 'view') view = m.view;
  else if (m.type === 'inbound') inbound = m.settings;
  else if (m.type === 'close') {
    void closeAll().then(() => {
      send({ type: 'closed' });
      port.close();
    });
  }
});

async function start(): Promise<void> {
  let bound: BoundAddress;
  try {
    bound = await relay.listen();
  } catch (e) {
    fail(e as NodeJS.ErrnoException, []);
    return;
  }
  let pub: BoundAddress | undefined;
  if (publicListener) {
    try {
      pub = await publicListener.listen();
    } catch (e) {
      fail(e as NodeJS.ErrnoException, [relay]);
      return;
    }
  }
  send({ type: 'listening', relay: bound, ...(pub ? { public: pub } : {}) });
}

/** A listener could not be bound: what is open is closed, and the gateway is told why. */
function fail(e: NodeJS.ErrnoException, open: RelayListener[]): void {
  void Promise.all(open.map((l) => l.close())).then(() => {
    queue.close();
    send({ type: 'failed', message: e.message, ...(e.code ? { code: e.code } : {}) });
    port.close();
  });
}

void start();
