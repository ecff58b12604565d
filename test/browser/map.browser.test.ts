/**
 * `kho map --html` in a real browser: Debian's headless Chromium driven by playwright-core.
 *
 * Two pages: the real flat-explicit stage-1 handover (memory image, iomem, dmesg) and a synthetic
 * 1 TiB, 4-node machine with 300 scattered 4 KiB preserved pages. Each must load from a file with no
 * console error, no page error and no network request; every region of the model must be in the page
 * (the exposed `window.khoMap.regions`, one bar element and one table row each) and visible at some
 * zoom level (after zooming to it, its bar is at least a pixel wide, inside the plot, and is the element
 * the browser hit-tests at its centre). Zoom must work through real input: the mouse wheel, a click on a
 * region, dragging, the buttons; and the kind filter, the search box and the tooltip must act on the DOM.
 * Under CI=true a missing Chromium fails the test (oracle()).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { renderHtml } from '../../src/map/html.ts';
import { allRegions, buildMemoryMap, type MemoryMap } from '../../src/map/model.ts';
import { CHROMIUM, oracle } from '../helpers/oracle.ts';
import { stage1MemoryMap } from '../helpers/vectors.ts';
import { syntheticInput } from './synthetic.ts';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/*
 * The callbacks given to page.evaluate run in the page. tsconfig has no DOM library (nothing else here
 * runs in a browser), so the few DOM names they use are declared for this module only.
 */
interface El {
  getBoundingClientRect(): { left: number; right: number; top: number; width: number; height: number };
  style: { display: string };
  dataset: Record<string, string | undefined>;
  className: string;
  textContent: string | null;
  querySelectorAll(selector: string): ArrayLike<El> & Iterable<El>;
}
declare const window: { khoMap: KhoMapApi };
declare const document: {
  getElementById(id: string): El | null;
  querySelectorAll(selector: string): ArrayLike<El> & Iterable<El>;
  elementFromPoint(x: number, y: number): El | null;
};
declare function getComputedStyle(e: El): { display: string };

/** What the page exposes as `window.khoMap` (see src/map/html.ts). */
interface KhoMapApi {
  regions: { start: string; end: string; kind: string; lane: string }[];
  view(): { u0: number; u1: number; start: string; end: string };
  setView(u0: number, u1: number): void;
  zoomTo(i: number): void;
  setAxis(mode: 'compressed' | 'linear'): void;
  element(i: number): El;
  row(i: number): El;
}

const hx = (v: bigint) => `0x${v.toString(16)}`;

interface Problems {
  console: string[];
  pageErrors: string[];
  failed: string[];
  foreign: string[];
}

async function open(page: Page, file: string): Promise<Problems> {
  const p: Problems = { console: [], pageErrors: [], failed: [], foreign: [] };
  const url = pathToFileURL(file).href;
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') p.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => p.pageErrors.push(String(e)));
  page.on('requestfailed', (r) => p.failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  page.on('request', (r) => {
    if (r.url() !== url) p.foreign.push(r.url());
  });
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => window.khoMap !== undefined);
  return p;
}

/** Every region: in khoMap.regions, one bar and one row; visible after zooming to it. */
async function checkEveryRegion(page: Page, map: MemoryMap): Promise<void> {
  const expected = allRegions(map).map((r) => [hx(r.start), hx(r.end), r.kind, r.lane]);
  const res = await page.evaluate((exp) => {
    const km = window.khoMap;
    const out: string[] = [];
    if (km.regions.length !== exp.length)
      out.push(`khoMap has ${km.regions.length} regions, model ${exp.length}`);
    const bars = document.querySelectorAll('#chart .r');
    const rows = document.querySelectorAll('#rows tr');
    if (bars.length !== exp.length) out.push(`${bars.length} bars`);
    if (rows.length !== exp.length) out.push(`${rows.length} rows`);
    const chart = document.getElementById('chart')!.getBoundingClientRect();
    exp.forEach((e: string[], i: number) => {
      const r = km.regions[i];
      if (!r || r.start !== e[0] || r.end !== e[1] || r.kind !== e[2] || r.lane !== e[3]) {
        out.push(`region ${i} differs: ${JSON.stringify(r)} vs ${JSON.stringify(e)}`);
        return;
      }
      const cells = km.row(i).querySelectorAll('td');
      if (cells[1].textContent !== e[0] || cells[2].textContent !== e[1])
        out.push(`row ${i} shows another range`);
      km.zoomTo(i);
      const el = km.element(i) as El;
      const b = el.getBoundingClientRect();
      if (getComputedStyle(el).display === 'none') out.push(`region ${i} hidden after zoom`);
      else if (b.width < 1) out.push(`region ${i} is ${b.width}px wide after zoom`);
      else if (b.left < chart.left + 140 || b.right > chart.right + 1)
        out.push(`region ${i} outside the plot`);
      else {
        const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
        if (hit !== el) out.push(`region ${i} is covered by ${hit?.className}`);
      }
    });
    km.setView(0, 1);
    return out;
  }, expected);
  assert.deepEqual(res, []);
}

test('kho map HTML in headless Chromium: loads cleanly, every region present and visible, zoom works', async (t) => {
  if (!oracle(t, 'chromium')) return;
  const dir = mkdtempSync(join(tmpdir(), 'kho-map-browser-'));
  const ctx = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
  });
  try {
    const real = stage1MemoryMap('flat-explicit');
    const syn = syntheticInput(1n << 40n, 4, 300, 11);
    const synMap = buildMemoryMap(syn.input);
    // Producer names come from the handover: markup in them must stay text.
    const evil = '</script><script>window.pwned=1</script><img src=x onerror="window.pwned=2">';
    const evilMap = buildMemoryMap({
      source: evil,
      preserved: [{ pa: 0x1000n, order: 0 }],
      subBlobs: [{ name: evil, phys: 0x1000n, size: 16n }],
      reserveMem: [{ name: evil, start: 0x10000n, size: 0x1000n }],
    });
    const files = { real: join(dir, 'real.html'), syn: join(dir, 'syn.html'), evil: join(dir, 'evil.html') };
    writeFileSync(files.real, renderHtml(real));
    writeFileSync(files.syn, renderHtml(synMap));
    writeFileSync(files.evil, renderHtml(evilMap, { title: evil }));

    for (const [name, map] of [
      ['real', real],
      ['syn', synMap],
      ['evil', evilMap],
    ] as const) {
      const page = await ctx.newPage();
      const problems = await open(page, files[name]);
      await checkEveryRegion(page, map);
      assert.deepEqual(problems, { console: [], pageErrors: [], failed: [], foreign: [] }, name);
      if (name === 'evil') {
        assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
        assert.equal(await page.locator('img').count(), 0);
        assert.match((await page.locator('#rows').textContent()) ?? '', /<\/script><script>window\.pwned=1/);
      }
      await page.close();
    }

    // Real input on the synthetic page.
    const page = await ctx.newPage();
    const problems = await open(page, files.syn);
    const view = () =>
      page.evaluate(() => window.khoMap.view()) as Promise<{
        u0: number;
        u1: number;
        start: string;
        end: string;
      }>;
    const chart = (await page.locator('#chart').boundingBox())!;
    const cy = chart.y + 10;

    // Wheel over the chart zooms in around the cursor.
    const v0 = await view();
    assert.deepEqual([v0.u0, v0.u1], [0, 1]);
    await page.mouse.move(chart.x + chart.width * 0.6, cy);
    await page.mouse.wheel(0, -100);
    await page.waitForFunction(() => window.khoMap.view().u1 < 1 || window.khoMap.view().u0 > 0);
    const v1 = await view();
    assert.ok(v1.u1 - v1.u0 < 1, `wheel zoomed in: ${JSON.stringify(v1)}`);

    // Drag pans.
    await page.mouse.move(chart.x + chart.width * 0.5, cy);
    await page.mouse.down();
    await page.mouse.move(chart.x + chart.width * 0.3, cy, { steps: 5 });
    await page.mouse.up();
    const v2 = await view();
    assert.ok(v2.u0 > v1.u0, `drag left moves the view right: ${v1.u0} -> ${v2.u0}`);
    assert.ok(Math.abs(v2.u1 - v2.u0 - (v1.u1 - v1.u0)) < 1e-9, 'drag keeps the zoom');

    // Buttons.
    await page.click('#reset');
    assert.deepEqual(await view(), { ...v0 });
    await page.click('#zin');
    const v3 = await view();
    assert.ok(Math.abs(v3.u1 - v3.u0 - 0.5) < 1e-9);
    await page.click('#zout');
    assert.deepEqual(await view(), { ...v0 });

    // A click on a tiny page zooms to it: the visible range then holds it.
    const idx = allRegions(synMap).findIndex((r) => r.kind === 'preserved');
    const r = allRegions(synMap)[idx]!;
    await page.locator(`#chart .r[data-i="${idx}"]`).click();
    const v4 = await view();
    assert.ok(
      BigInt(v4.start) <= r.start && BigInt(v4.end) >= r.end,
      `view ${v4.start}-${v4.end} holds ${hx(r.start)}`,
    );
    // On the compressed axis the view also takes in a slice of the gaps around the page (GiB wide), so
    // check the page's share of the plot instead of the address span: most of it.
    const bar = (await page.locator(`#chart .r[data-i="${idx}"]`).boundingBox())!;
    assert.ok(
      bar.width > (chart.width - 150) * 0.5,
      `the page fills the plot after the click: ${bar.width}px`,
    );
    assert.ok(v4.u1 - v4.u0 < 0.01);

    // Linear axis: zooming to a 4 KiB page of 1 TiB still shows it.
    const lin = await page.evaluate((i) => {
      const km = window.khoMap;
      km.setAxis('linear');
      km.zoomTo(i);
      const w = km.element(i).getBoundingClientRect().width;
      km.setAxis('compressed');
      km.setView(0, 1);
      return w;
    }, idx);
    assert.ok(lin >= 1, `linear-axis width ${lin}`);

    // Tooltip on hover names the region.
    await page.locator(`#chart .r[data-i="${idx}"]`).hover();
    assert.match((await page.locator('#tip').textContent()) ?? '', new RegExp(hx(r.start)));
    assert.equal(await page.locator('#tip').isVisible(), true);

    // Kind filter and search.
    await page.locator('input.kind[value="radix"]').uncheck();
    const radixShown = await page.evaluate(
      () =>
        [...document.querySelectorAll('#chart .r[data-kind="radix"]')].filter(
          (e) => (e as El).style.display !== 'none',
        ).length,
    );
    assert.equal(radixShown, 0);
    await page.locator('input.kind[value="radix"]').check();
    await page.fill('#search', hx(r.start));
    const rowsShown = await page.evaluate(() =>
      [...document.querySelectorAll('#rows tr')]
        .filter((e) => (e as El).style.display !== 'none')
        .map((e) => (e as El).dataset.i),
    );
    assert.ok(rowsShown.includes(String(idx)));
    assert.ok(rowsShown.length < 5, `search narrows the table to ${rowsShown.length} rows`);
    assert.deepEqual(problems, { console: [], pageErrors: [], failed: [], foreign: [] });
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
