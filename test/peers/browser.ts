/**
 * Test peer: Debian's Chromium driven by playwright-core (no browser download), and the real
 * `postern start` with its administration page.
 *
 *   chromiumAvailable()                   whether /usr/bin/chromium exists
 *   launchBrowser()                       headless Chromium with the flags this machine needs
 *   startWithAdmin(o)                     startPostern with --admin; resolves with the page's
 *                                         URL and the first administrator's password
 *   login(page, base, user, password)     fills and submits the login form
 *   csrfOf(page)                          the CSRF token of the page's forms
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { within } from '../deadline.js';
import { startPostern, type PosternProcess, type StartOptions } from '../process.js';

export const CHROMIUM = '/usr/bin/chromium';

export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: tests run as root; the rest keep Chromium off the (closed) network.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

export interface AdminPostern {
  proc: PosternProcess;
  /** https://HOST:PORT (no trailing slash). */
  base: string;
  /** The first administrator's password, when this start created it. */
  initialPassword: string | undefined;
}

export async function startWithAdmin(o: StartOptions & { admin: string }): Promise<AdminPostern> {
  const proc = await startPostern({ ...o, args: [...(o.args ?? []), '--admin', o.admin] });
  const until = Date.now() + within(15_000);
  for (;;) {
    const m = /Administration page on (https:\/\/\S+?)\/ /.exec(proc.output());
    if (m) {
      const pw = /Created the administrator "admin" with the password (\S+)/.exec(proc.output());
      return { proc, base: m[1]!, initialPassword: pw?.[1] };
    }
    if (Date.now() > until) throw new Error(`no "Administration page on" line\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function login(page: Page, base: string, user: string, password: string): Promise<void> {
  await page.goto(`${base}/login`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

export async function csrfOf(page: Page): Promise<string> {
  return page.locator('input[name="_csrf"]').first().inputValue();
}
