/**
 * On a cluster node (SPEC §12), a change made on the page or through the API is a change of the
 * cluster's configuration, made as the CLI makes it (cluster/cli-session.ts): the node's copy is
 * brought to Redis's version before the request runs, and a changed copy is pushed as the next
 * version after it; when another node wrote in between, or Redis is away, the copy is put back
 * and the answer is 409 saying so instead of the request's own. Changing requests run one at a
 * time, so that two of them never push each other's half-made changes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ClusterCliSession } from '../cluster/cli-session.js';
import type { Membership } from '../cluster/membership.js';
import { escapeText } from '../observe/text.js';
import { answerFor } from './render.js';

const CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function registerClusterWrites(app: FastifyInstance, dataDir: string, membership: Membership): void {
  const sessions = new WeakMap<FastifyRequest, { session: ClusterCliSession; release: () => void }>();
  let queue: Promise<void> = Promise.resolve();
  app.addHook('preHandler', async (req) => {
    if (!CHANGING.has(req.method) || req.url.startsWith('/login') || req.url.startsWith('/logout')) return;
    let release!: () => void;
    const turn = new Promise<void>((r) => (release = r));
    const before = queue;
    queue = before.then(() => turn);
    await before;
    try {
      sessions.set(req, { session: await ClusterCliSession.begin(dataDir, membership), release });
    } catch (e) {
      release();
      throw e;
    }
  });
  app.addHook('onSend', async (req, reply, payload) => {
    const s = sessions.get(req);
    if (!s) return payload;
    sessions.delete(req);
    try {
      await s.session.finish();
      return payload;
    } catch (e) {
      // The answer every other refusal gets (render.ts), said here because the reply was made.
      const a = answerFor(e);
      reply.code(a.status).removeHeader('location');
      if (req.url.startsWith('/api/')) {
        reply.header('content-type', 'application/json; charset=utf-8');
        return JSON.stringify({ error: 'refused', message: a.message });
      }
      // The page's layout needs the session, already saved by now: a plain page instead.
      reply.header('content-type', 'text/html; charset=utf-8');
      return `<!doctype html><title>Not changed</title><main><h1>Not changed</h1><p role="alert">${escapeHtml(escapeText(a.message))}</p><p><a href="/">Back to the administration page</a></p></main>`;
    } finally {
      s.release();
    }
  });
  // A request that ends without a reply being sent still lets the next one go.
  app.addHook('onResponse', async (req) => {
    const s = sessions.get(req);
    if (!s) return;
    sessions.delete(req);
    s.session.close();
    s.release();
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
