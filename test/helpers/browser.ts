// Pages in Debian's Chromium (driven by playwright-core; never a downloaded browser), for the tests of report.html:
// a page is opened with every request, console error or warning, page error and dialog kept, so a test can assert
// that a self-contained page asked for nothing but itself and complained about nothing.
import { chromium, type Browser, type Page } from 'playwright-core';

export const PAGE_WAIT_MS = 10_000;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', timeout: 20_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu'] });
}

export interface OpenedPage { page: Page; requests: string[]; problems: string[] }

/** Opens `url` in a new page of `browser` and waits for its load event. */
export async function openPage(browser: Browser, url: string): Promise<OpenedPage> {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  page.setDefaultTimeout(PAGE_WAIT_MS);
  const requests: string[] = [];
  const problems: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
  await page.goto(url, { timeout: PAGE_WAIT_MS, waitUntil: 'load' });
  return { page, requests, problems };
}
