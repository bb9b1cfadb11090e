/**
 * System Administration > Alerts: who receives which alerts, and the alert settings, over
 * manage/alerts.ts (the service `postern alertconfig` uses).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ALERT_CLASSES, SEVERITIES } from '../../config/alerts.js';
import { ConfigError } from '../../config/store.js';
import { ValidationError } from '../../controls/validate.js';
import type { AdminContext } from '../context.js';
import { forbiddenText, may, notify, page } from '../render.js';
import type { AdminServerOptions } from '../server.js';

export const ALERTS = '/system/alerts';

/** A checkbox group arrives as a string (one box) or an array (several); none checked: absent. */
function checked(v: unknown): string {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').join(',') : typeof v === 'string' ? v : '';
}

export function registerAlertPages(app: FastifyInstance, ctx: AdminContext, _o: AdminServerOptions): void {
  const by = (req: FastifyRequest) => ({ actor: req.principal!.name, client: req.ip });
  const refuse = (req: FastifyRequest, reply: FastifyReply) => page(req, reply, 'error', { title: 'Forbidden', message: `${forbiddenText(req.principal, 'configure')}; nothing was changed` }, 403);

  const show = (req: FastifyRequest, reply: FastifyReply, errors: Record<string, string> = {}, values: Record<string, string> = {}, status = 200) => {
    const g = ctx.config.globals();
    return page(
      req,
      reply,
      'alerts',
      {
        title: 'Alerts',
        active: ALERTS,
        base: ALERTS,
        recipients: ctx.services(by(req)).alerts.list(),
        classes: ALERT_CLASSES,
        severities: SEVERITIES,
        settings: {
          from: values.from ?? g.alertFrom ?? '',
          interval: values.interval ?? String(g.alertIntervalSeconds),
          waitMinutes: values.waitMinutes ?? String(g.alertWaitMinutes),
          queueRecipients: values.queueRecipients ?? String(g.alertQueueRecipients),
        },
        requiredTlsAlert: g.requiredTlsAlert,
        add: { address: values.address ?? '', classes: (values.classes ?? ALERT_CLASSES.join(',')).split(','), severities: (values.severities ?? 'critical,warning,info').split(',') },
        errors,
      },
      status,
    );
  };

  app.get(ALERTS, async (req, reply) => show(req, reply));

  app.post(`${ALERTS}/add`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const values = { address: String(b.address ?? ''), classes: checked(b.classes), severities: checked(b.severities) };
    try {
      const r = ctx.services(by(req)).alerts.add(values.address, { classes: values.classes, severities: values.severities });
      notify(req, `${r.address} receives ${r.classes.join(', ')} alerts (${r.severities.join(', ')}).`);
    } catch (e) {
      if (e instanceof ValidationError) {
        const field = e.field.includes('classes') ? 'classes' : e.field.includes('severities') ? 'severities' : 'address';
        return show(req, reply, { [field]: e.message }, values, 400);
      }
      if (e instanceof ConfigError) return show(req, reply, { address: e.message }, values, 409);
      throw e;
    }
    return reply.redirect(ALERTS);
  });

  app.get(`${ALERTS}/delete`, async (req, reply) => {
    const address = String((req.query as Record<string, unknown>).address ?? '');
    return page(req, reply, 'confirm', { title: 'Delete Alert Recipient', active: ALERTS, question: `Stop sending alerts to ${address}?`, action: `${ALERTS}/delete`, fields: { address }, cancel: ALERTS, button: 'Delete' });
  });

  app.post(`${ALERTS}/delete`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const address = String((req.body as Record<string, unknown>).address ?? '');
    ctx.services(by(req)).alerts.delete(address);
    notify(req, `${address} receives no more alerts.`);
    return reply.redirect(ALERTS);
  });

  app.post(`${ALERTS}/settings`, async (req, reply) => {
    if (!may(req.principal, 'configure')) return refuse(req, reply);
    const b = (req.body ?? {}) as Record<string, unknown>;
    const values = { from: String(b.from ?? ''), interval: String(b.interval ?? ''), waitMinutes: String(b.waitMinutes ?? ''), queueRecipients: String(b.queueRecipients ?? '') };
    try {
      ctx.services(by(req)).alerts.setup({ from: values.from.trim() === '' ? 'default' : values.from, interval: values.interval, waitMinutes: values.waitMinutes, queueRecipients: values.queueRecipients });
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      const field = e.field.includes('interval') ? 'interval' : e.field.includes('minutes') ? 'waitMinutes' : e.field.includes('recipients') ? 'queueRecipients' : 'from';
      return show(req, reply, { [field]: e.message }, values, 400);
    }
    notify(req, 'Saved the alert settings.');
    return reply.redirect(ALERTS);
  });
}
