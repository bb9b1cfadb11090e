/**
 * `npm run screenshots`: the README's pictures of the administration page, taken from a real
 * `postern start` in Debian's Chromium: docs/images/destination-controls.png (the table) and
 * docs/images/add-destination.png (the Add Destination form with the demo-certificate warning)
 * and docs/images/tls-connections.png (Monitor > TLS Connections over a day of sample counts,
 * written into report.db before the start: the picture shows the page, not real traffic).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TlsReportStore, zeroCounts, type Counts } from '../../src/observe/tls-report.js';
import { launchBrowser, login, startWithAdmin } from '../peers/browser.js';

/** A day of sample counts for four destinations with different TLS settings. */
function seedReport(dataDir: string): void {
  const store = TlsReportStore.open(dataDir);
  const HOUR = 3_600_000;
  const batch = new Map<string, { hour: number; domain: string; counts: Counts }>();
  const shapes: [string, (n: number, c: Counts) => void][] = [
    ['mail.example.net', (n, c) => Object.assign(c, { preferredOk: n - 1, preferredFailed: 1, clear: 1, encryptedMessages: 3 * n, clearMessages: 2 })],
    ['example.com', (n, c) => Object.assign(c, { requiredOk: n, encryptedMessages: 2 * n })],
    ['partner.example', (n, c) => Object.assign(c, { requiredOk: n - 2, requiredFailed: 2, verified: n - 2, encryptedMessages: n })],
    ['legacy.example', (n, c) => Object.assign(c, { clear: n, clearMessages: n })],
  ];
  for (let h = 0; h < 24; h++) {
    for (const [i, [domain, shape]] of shapes.entries()) {
      const hour = Math.floor((Date.now() - h * HOUR) / HOUR) * HOUR;
      const n = 5 + ((h * 7 + i * 3) % 11) * (4 - i);
      const counts = zeroCounts();
      counts.attempted = n;
      shape(n, counts);
      batch.set(`${hour}|${domain}`, { hour, domain, counts });
    }
  }
  store.add(batch);
  store.close();
}

const IMAGES = fileURLToPath(new URL('../../../docs/images/', import.meta.url));
const DC = '/mail-policies/destination-controls';
const PASSWORD = 'screenshots password 1';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-shots-'));
seedReport(path.join(tmp, 'data'));
const gw = await startWithAdmin({ dataDir: path.join(tmp, 'data'), admin: '127.0.0.1:0', hostname: 'gateway.example.net' });
const browser = await launchBrowser();
try {
  const page = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1180, height: 760 } })).newPage();
  await login(page, gw.base, 'admin', gw.initialPassword!);
  await page.getByLabel('Current password').fill(gw.initialPassword!);
  await page.getByLabel(/^New password \(/).fill(PASSWORD);
  await page.getByLabel('New password again').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();

  const add = async (domain: string, fill: () => Promise<void>) => {
    await page.goto(`${gw.base}${DC}/add`);
    await page.getByLabel('Destination').fill(domain);
    await fill();
    await page.getByRole('button', { name: 'Submit' }).click();
  };
  await add('example.com', async () => {
    await page.getByLabel('TLS Support').selectOption({ label: 'Required' });
  });
  await add('.partner.example', async () => {
    await page.getByLabel('TLS Support').selectOption({ label: 'Required - Verify' });
    await page.locator('input[name="concurrencyMode"][value="max"]').check();
    await page.locator('#concurrency').fill('10');
  });
  await add('bulk.example', async () => {
    await page.getByLabel('IP Address Preference').selectOption({ label: 'IPv4 Preferred' });
    await page.locator('input[name="recipientsMode"][value="max"]').check();
    await page.locator('#recipients').fill('1000');
    await page.locator('#minutes').fill('60');
  });
  await page.goto(`${gw.base}${DC}`);
  await page.screenshot({ path: `${IMAGES}destination-controls.png`, fullPage: true });

  await page.goto(`${gw.base}${DC}/add`);
  await page.getByLabel('Destination').fill('example.org');
  await page.getByLabel('TLS Support').selectOption({ label: 'Required' });
  await page.screenshot({ path: `${IMAGES}add-destination.png`, fullPage: true });
  await page.goto(`${gw.base}/monitor/tls?range=1d`);
  await page.waitForSelector('#tls-chart canvas');
  await page.screenshot({ path: `${IMAGES}tls-connections.png`, fullPage: true });
  await page.goto(`${gw.base}/mail-policies/bounce-verification`);
  await page.getByRole('button', { name: 'Add Key' }).click();
  await page.getByLabel('Domain', { exact: true }).fill('example.net');
  await page.getByRole('button', { name: 'Add Domain' }).click();
  await page.goto(`${gw.base}/mail-policies/bounce-verification`);
  await page.screenshot({ path: `${IMAGES}bounce-verification.png`, fullPage: true });
  process.stdout.write(`wrote destination-controls.png, add-destination.png, tls-connections.png and bounce-verification.png in ${IMAGES}\n`);
} finally {
  await browser.close();
  await gw.proc.stop();
  await rm(tmp, { recursive: true, force: true });
}
