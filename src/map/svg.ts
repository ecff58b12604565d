/**
 * `renderSvg(map, opts)`: the memory map as one standalone SVG document.
 *
 * Contract:
 * - Two panels of stacked horizontal bars, one bar (lane) per map lane:
 *   1. linear overviews, one per NUMA node when nodes are known (each node's range on its own axis:
 *      per-node lanes), else one over the RAM extent (the span of every region that is not `io` or
 *      `reserved`, so a 2 GiB machine is not squeezed by a reserved window at 1 TiB);
 *   2. a gap-compressed, log-scaled axis over the whole map (`compressedAxis`), where a 4 KiB page
 *      stays visible next to 1 TiB of RAM.
 *   Address ticks under each panel, a legend of the kinds (and preserved-memory producers) present.
 * - Every region of the map is a `<rect class="r" data-i="N" ...>` in the compressed panel (N = its
 *   index in `allRegions(map)`), with `data-start`, `data-end` (hex), `data-kind`, `data-lane` and a
 *   `<title>` tooltip (label, range, size, producer, node); overview rects carry the same `data-i`.
 *   Regions narrower than a pixel are drawn `MIN_WIDTH` wide, empty ones as a marker.
 * - Output is deterministic (no time, fixed number formatting) and linear in the number of regions.
 *   Text from the input (labels, producer names) is XML-escaped.
 */
import { compressedAxis, linearAxis, ticksLinear } from './axis.ts';
import {
  allRegions,
  formatBytes,
  type MapRegion,
  type MemoryMap,
  REGION_KINDS,
  type RegionKind,
} from './model.ts';

export interface SvgOptions {
  /** Total width in px (default 1200). */
  width?: number;
  title?: string;
}

export const KIND_COLORS: Record<RegionKind, string> = {
  ram: '#d9ead3',
  reserved: '#b7b7b7',
  kernel: '#6fa8dc',
  io: '#eeeeee',
  node: '#f4f1e8',
  'scratch-lowmem': '#f6b26b',
  'scratch-global': '#e69138',
  'scratch-node': '#ffd966',
  reserve_mem: '#8e7cc3',
  preserved: '#cc0000',
  'kho-fdt': '#38761d',
  radix: '#0b5394',
  'kexec-segment': '#c27ba0',
  free: '#93c47d',
};

/** Preserved-memory colours by producer (sorted producer names, in turn). */
export const PRODUCER_PALETTE = ['#cc0000', '#e06666', '#990000', '#ff6d01', '#a64d79', '#741b47', '#b45f06'];

export const MIN_WIDTH = 0.6;
const LANE_H = 16;
const LANE_GAP = 4;
/** Plot margins: lane names on the left, room for the last tick label on the right. */
export const PLOT_LEFT = 150;
export const PLOT_RIGHT = 50;
const LEFT = PLOT_LEFT;
const RIGHT = PLOT_RIGHT;

export function escapeXml(s: string): string {
  // Control characters are not allowed in XML 1.0 at all (not even as references): replace them.
  // Lone surrogates (a name read byte by byte from a hostile blob can carry any code unit) likewise.
  return s
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replace(
      /[&<>"'\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g,
      (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] ?? '\ufffd',
    );
}

const hx = (v: bigint) => `0x${v.toString(16)}`;
const f2 = (n: number) => (Math.round(n * 100) / 100).toFixed(2);

/** Producer → colour for preserved regions. */
export function producerColors(map: MemoryMap): Map<string, string> {
  const names = new Set<string>();
  for (const l of map.lanes)
    for (const r of l.regions) if (r.kind === 'preserved' && r.producer) names.add(r.producer);
  const out = new Map<string, string>();
  [...names].sort().forEach((n, i) => {
    out.set(n, PRODUCER_PALETTE[i % PRODUCER_PALETTE.length]!);
  });
  return out;
}

export function regionColor(r: MapRegion, producers: Map<string, string>): string {
  if (r.kind === 'preserved') return (r.producer && producers.get(r.producer)) || '#660000';
  return KIND_COLORS[r.kind];
}

export function regionTitle(r: MapRegion): string {
  const parts = [`${r.label}`, `[${hx(r.start)}, ${hx(r.end)})`, formatBytes(r.end - r.start), r.kind];
  if (r.producer) parts.push(`producer ${r.producer}`);
  if (r.node !== undefined) parts.push(`node ${r.node}`);
  return parts.join(' · ');
}

/** The linear overview ranges: nodes, else the RAM extent, else the whole map. */
export function overviewRanges(map: MemoryMap): { label: string; start: bigint; end: bigint }[] {
  if (map.nodes.length) return map.nodes.map((n) => ({ label: `node ${n.nid}`, start: n.start, end: n.end }));
  let s: bigint | undefined;
  let e = 0n;
  for (const l of map.lanes)
    for (const r of l.regions) {
      if (r.kind === 'io' || r.kind === 'reserved') continue;
      if (s === undefined || r.start < s) s = r.start;
      if (r.end > e) e = r.end;
    }
  if (s === undefined || e <= s) return [{ label: 'all', start: map.start, end: map.end }];
  return [{ label: 'memory', start: s, end: e }];
}

/** Render the map (see the module contract). */
export function renderSvg(map: MemoryMap, opts: SvgOptions = {}): string {
  const width = Math.max(400, Math.floor(opts.width ?? 1200));
  const plotW = width - LEFT - RIGHT;
  const regions = allRegions(map);
  const producers = producerColors(map);
  const out: string[] = [];
  let y = 0;
  const laneIndex = new Map(map.lanes.map((l, i) => [l.name, i]));
  const bandH = map.lanes.length * (LANE_H + LANE_GAP);

  const rect = (r: MapRegion & { lane: string }, i: number, x0: number, x1: number, top: number) => {
    const empty = r.start === r.end;
    const w = empty ? MIN_WIDTH : Math.max(MIN_WIDTH, x1 - x0);
    const ly = top + laneIndex.get(r.lane)! * (LANE_H + LANE_GAP);
    out.push(
      `<rect class="r" data-i="${i}" data-lane="${escapeXml(r.lane)}" data-kind="${r.kind}" data-start="${hx(r.start)}" data-end="${hx(r.end)}" x="${f2(LEFT + x0)}" y="${ly}" width="${f2(w)}" height="${LANE_H}" fill="${regionColor(r, producers)}"${empty ? ' stroke="#000" stroke-width="0.6"' : ''}><title>${escapeXml(`${r.lane}: ${regionTitle(r)}`)}</title></rect>`,
    );
  };
  const laneLabels = (top: number) => {
    map.lanes.forEach((l, i) => {
      const ly = top + i * (LANE_H + LANE_GAP);
      out.push(
        `<text x="${LEFT - 6}" y="${ly + LANE_H - 4}" text-anchor="end" class="lane">${escapeXml(l.name)}</text>`,
        `<rect x="${LEFT}" y="${ly}" width="${plotW}" height="${LANE_H}" fill="#fafafa" stroke="#ddd" stroke-width="0.5"/>`,
      );
    });
  };
  const tick = (x: number, top: number, label: string) => {
    out.push(
      `<line x1="${f2(LEFT + x)}" y1="${top}" x2="${f2(LEFT + x)}" y2="${top + 5}" stroke="#444"/>`,
      `<text x="${f2(LEFT + x)}" y="${top + 16}" text-anchor="middle" class="tick">${label}</text>`,
    );
  };

  y = 24;
  out.push(`<text x="10" y="${y}" class="h1">${escapeXml(opts.title ?? 'KHO physical memory map')}</text>`);
  y += 18;
  out.push(
    `<text x="10" y="${y}" class="sub">${escapeXml(map.source)} · ${hx(map.start)}–${hx(map.end)} (${formatBytes(map.end - map.start)}) · ${map.summary.regions} regions, ${map.summary.preservedBlocks} preserved blocks (${formatBytes(map.summary.preservedBytes)})</text>`,
  );
  y += 14;

  // Panel 1: linear overviews.
  for (const ov of overviewRanges(map)) {
    y += 22;
    out.push(
      `<text x="10" y="${y}" class="h2">Linear: ${escapeXml(ov.label)} [${hx(ov.start)}, ${hx(ov.end)}) ${formatBytes(ov.end - ov.start)}</text>`,
    );
    y += 8;
    const top = y;
    out.push(`<g class="panel linear" data-range="${hx(ov.start)}-${hx(ov.end)}">`);
    laneLabels(top);
    const ax = linearAxis(ov.start, ov.end);
    regions.forEach((r, i) => {
      const inside =
        r.start === r.end ? r.start >= ov.start && r.start <= ov.end : r.start < ov.end && r.end > ov.start;
      if (!inside) return;
      rect(r, i, ax.pos(r.start) * plotW, ax.pos(r.end) * plotW, top);
    });
    y += bandH;
    for (const t of ticksLinear(ov.start, ov.end, 8)) tick(ax.pos(t) * plotW, y, hx(t));
    out.push('</g>');
    y += 22;
  }

  // Panel 2: compressed axis over everything.
  const points: bigint[] = [map.start, map.end];
  for (const r of regions) points.push(r.start, r.end);
  const cax = compressedAxis(points, map.pageSize);
  y += 22;
  out.push(
    `<text x="10" y="${y}" class="h2">Compressed (log-scaled gaps): every region, ${hx(map.start)}–${hx(map.end)}</text>`,
  );
  y += 8;
  const top = y;
  out.push('<g class="panel compressed">');
  laneLabels(top);
  regions.forEach((r, i) => {
    rect(r, i, cax.pos(r.start) * plotW, cax.pos(r.end) * plotW, top);
  });
  y += bandH;
  let lastX = Number.NEGATIVE_INFINITY;
  cax.points.forEach((p, i) => {
    const x = cax.cum[i]! * plotW;
    if (x - lastX < 110 && i !== cax.points.length - 1) return;
    if (i === cax.points.length - 1 && x - lastX < 110) return;
    tick(x, y, hx(p));
    lastX = x;
  });
  out.push('</g>');
  y += 34;

  // Legend.
  const present = new Set(regions.map((r) => r.kind));
  const items: [string, string][] = [];
  for (const k of REGION_KINDS) {
    if (!present.has(k)) continue;
    if (k === 'preserved') {
      for (const [p, c] of producers) items.push([c, `preserved: ${p}`]);
      if (regions.some((r) => r.kind === 'preserved' && !r.producer))
        items.push(['#660000', 'preserved: unknown']);
    } else items.push([KIND_COLORS[k], k]);
  }
  out.push('<g class="legend">');
  let lx = 10;
  for (const [c, name] of items) {
    const w = 24 + name.length * 6.2;
    if (lx + w > width - 10) {
      lx = 10;
      y += 18;
    }
    out.push(
      `<rect x="${lx}" y="${y - 10}" width="12" height="12" fill="${c}" stroke="#555" stroke-width="0.5"/>`,
      `<text x="${lx + 16}" y="${y}" class="legend">${escapeXml(name)}</text>`,
    );
    lx += w;
  }
  out.push('</g>');
  y += 16;
  for (const n of map.notes) {
    y += 14;
    out.push(`<text x="10" y="${y}" class="note">${escapeXml(n)}</text>`);
  }
  y += 10;

  const head = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">`,
    '<style>.h1{font-size:16px;font-weight:bold}.h2{font-size:13px;font-weight:bold}.sub,.note{font-size:11px;fill:#444}.lane{font-size:11px}.tick{font-size:9px;fill:#333}.legend{font-size:11px}</style>',
    `<rect x="0" y="0" width="${width}" height="${y}" fill="#fff"/>`,
  ];
  return `${[...head, ...out, '</svg>'].join('\n')}\n`;
}
