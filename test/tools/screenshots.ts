/**
 * `npm run screenshots`: the README's pictures of the administration page, taken from a real
 * `postern start` in Debian's Chromium: docs/images/destination-controls.png (the table) and
 * docs/images/add-destination.png (the Add Destination form with the demo-certificate warning).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser, login, startWithAdmin } from '../peers/browser.js';

const IMAGES = fileURLToPath(new URL('../../../docs/images/', import.meta.url));
const DC = '/mail-policies/destination-controls';
const PASSWORD = 'screenshots password 1';

const tmp = await mkdtemp(path.join(os.tmpdir(), 'postern-shots-'));
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
  process.stdout.write(`wrote ${IMAGES}destination-controls.png and ${IMAGES}add-destination.png\n`);
} finally {
  await browser.close();
  await gw.proc.stop();
  await rm(tmp, { recursive: true, force: true });
}
