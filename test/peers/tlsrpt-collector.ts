// A TLS report collector on loopback (RFC 8460 §5.3.1's https: destination), for tests: an
// HTTPS server that records every request it gets (path, Content-Type, body) and answers with
// the status the test chooses — or, with respondWith('never'), reads the request and says
// nothing, for timeouts.
import https from 'node:https';

export interface CollectorOptions {
  host: string;
  port: number;
  /** Leaf + CA, PEM. */
  certChainPem: string;
  keyPem: string;
  /** The host name url() puts in URLs (default collector.example). */
  name?: string;
}

export interface ReceivedReport {
  path: string;
  contentType: string | undefined;
  body: Buffer;
}

export interface Collector {
  url(path?: string): string;
  received: ReceivedReport[];
  respondWith(status: number | 'never'): void;
  close(): Promise<void>;
}

export async function startCollector(o: CollectorOptions): Promise<Collector> {
  const received: ReceivedReport[] = [];
  let answer: number | 'never' = 200;
  const server = https.createServer({ key: o.keyPem, cert: o.certChainPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: Buffer.concat(chunks) });
      if (answer === 'never') return;
      res.writeHead(answer, answer >= 300 && answer < 400 ? { Location: `https://elsewhere.example:${o.port}/` } : {});
      res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const name = o.name ?? 'collector.example';
  return {
    url: (path = '/tlsrpt') => `https://${name}:${o.port}${path}`,
    received,
    respondWith: (status) => {
      answer = status;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
