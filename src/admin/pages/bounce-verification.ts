/**
 * Mail Policies > Bounce Verification: tagging keys, what invalid bounces get, and the local
 * domains the public listener accepts mail for, over manage/bounce-verification.ts and
 * manage/public-listener.ts (the services `postern bvconfig` and `postern localdomains` use).
 * A key's text is shown once, in the notice after it is added.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { TAG_LIFETIME_DAYS } from '../../bounce/batv.js';
import { BvKeyStore } from '../../config/bounce-verification.js';
import { LocalDomainStore } from '../../config/local-domains.js';
import { ConfigError } from '../../config/store.js';
import { displayName } from '../../controls/names.js';
import { ValidationError } from '../../controls/validate.js';
import { bvSettings } from '../../manage/bounce-verification.js';
import { isoSeconds } from '../../cli/format.js';
import type { AdminContext } from '../context.js';
import { forbiddenText, may, notify, page } from '../render.js';

export const BOUNCE_VERIFICATION = '/mail-policies/bounce-verification';


export function registerBounceVerificationPages(app: FastifyInstance, ctx: AdminContext): void {
  const base = BOUNCE_VERIFICATION;
  const by = (req: FastifyRequest) => ({ actor: req.principal!.name, client: req.ip });
  const refuse = (req: FastifyRequest, reply: FastifyReply) => page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'configure')}; nothing was changed` }, 403);

  const show = (req: FastifyRequest, reply: FastifyReply, errors: Record<string, string> = {}, values: Record<string, string> = {}, status = 200) => {
    const s = bvSettings(ctx.config.globals());
    return page(
      req,
      reply,
      'bounce-verification',
      {
        title: 'Bounce Verification',
        active: base,
        base,
        keys: new BvKeyStore(ctx.config, ctx.dataDir).list().map((k) => ({ number: k.number, created: isoSeconds(k.created), retired: isoSeconds(k.retired), active: k.retired === null })),
        settings: {
          invalidAction: values.invalidAction ?? s.invalidAction,
          header: values.header ?? s.header,
          untaggedValid: values.untaggedValid ?? (s.untaggedValid ? 'yes' : 'no'),
        },
        domains: new LocalDomainStore(ctx.config).list().map((n) => ({ name: n, display: displayName(n) })),
        newKey: values.key ?? '',
        newDomain: values.domain ?? '',
        lifetime: TAG_LIFETIME_DAYS,
        errors,
      },
      status,
    );
  };
  /** Runs a change; a refused value is shown beside `field`. */
  const change = async (req: FastifyRequest, reply: FastifyReply, field: (e: ValidationError | ConfigError) => string, values: Record<string, string>, fn: () => string) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    try {
      notify(req, fn());
    } catch (e) {
      if (e instanceof ValidationError) return show(req, reply, { [field(e)]: e.message }, values, 400);
      if (e instanceof ConfigError) return show(req, reply, { [field(e)]: e.message }, values, 409);
      throw e;
    }
    return reply.redirect(base);
  };
  const body = (req: FastifyRequest) => (req.body ?? {}) as Record<string, unknown>;

  app.get(base, async (req, reply) => show(req, reply));

  app.post(`${base}/keys`, async (req, reply) => {
    const key = String(body(req).key ?? '');
    return change(req, reply, () => 'key', { key }, () => {
      const k = ctx.services(by(req)).bv.addKey(key.trim() === '' ? undefined : key);
      return key.trim() === '' ? `Added key ${k.number}; it tags from now on. Its text, shown this once: ${k.text}` : `Added key ${k.number}; it tags from now on.`;
    });
  });

  app.get(`${base}/retire`, async (req, reply) => {
    const n = String((req.query as Record<string, unknown>).key ?? '');
    return page(req, reply, 'confirm', { title: 'Retire Key', active: base, question: `Retire key ${n}? Its tags still verify for ${TAG_LIFETIME_DAYS} days; the newest active key tags from now on.`, action: `${base}/retire`, fields: { key: n }, cancel: base, button: 'Retire' });
  });
  app.post(`${base}/retire`, async (req, reply) => {
    const n = String(body(req).key ?? '');
    return change(req, reply, () => 'key', {}, () => `Retired key ${ctx.services(by(req)).bv.retireKey(n).number}.`);
  });

  app.post(`${base}/settings`, async (req, reply) => {
    const b = body(req);
    const values = { invalidAction: String(b.invalidAction ?? ''), header: String(b.header ?? ''), untaggedValid: String(b.untaggedValid ?? '') };
    const field = (e: ValidationError | ConfigError) => (!(e instanceof ValidationError) ? 'invalidAction' : e.field.includes('action') ? 'invalidAction' : e.field.includes('header') ? 'header' : 'untaggedValid');
    return change(req, reply, field, values, () => {
      ctx.services(by(req)).bv.setup(values);
      return 'Saved the bounce verification settings.';
    });
  });

  app.post(`${base}/domains`, async (req, reply) => {
    const domain = String(body(req).domain ?? '');
    return change(req, reply, () => 'domain', { domain }, () => `${displayName(ctx.services(by(req)).publicListener.addLocalDomain(domain))} is a local domain. Give it an SMTP route to the internal mail server (Network > SMTP Routes).`);
  });
  app.get(`${base}/domains/delete`, async (req, reply) => {
    const d = String((req.query as Record<string, unknown>).domain ?? '');
    return page(req, reply, 'confirm', { title: 'Delete Local Domain', active: base, question: `Stop accepting mail for ${displayName(d)} on the public listener?`, action: `${base}/domains/delete`, fields: { domain: d }, cancel: base, button: 'Delete' });
  });
  app.post(`${base}/domains/delete`, async (req, reply) => {
    const d = String(body(req).domain ?? '');
    return change(req, reply, () => 'domain', {}, () => `${displayName(ctx.services(by(req)).publicListener.deleteLocalDomain(d))} is no longer a local domain.`);
  });
}
