/**
 * Axes of the memory map: physical address → position in [0, 1].
 *
 * Contract:
 * - `linearAxis(start, end)`: proportional (`end > start`; a degenerate span maps everything to 0).
 * - `compressedAxis(points, pageSize)`: gap-compressed and log-scaled. The sorted, distinct break points
 *   (every region start and end) cut the address space into segments; a segment of `len` bytes gets
 *   weight `sqrt(log2(2 + len / pageSize))`, so a 4 KiB page (1.26) and a 1 TiB gap (5.3) differ by ~4x
 *   in width, not 2^28x: every region keeps a visible share at 1 GiB .. 1 TiB, even among hundreds of
 *   tiny pages (the linear overview shows true proportions). Inside a segment the mapping is
 *   linear; it is monotonic overall and exact at the break points. `cum[i]` is the position of
 *   `points[i]` (cum[0] = 0, last = 1).
 * - `ticksLinear(start, end, maxTicks)`: power-of-two aligned addresses inside [start, end].
 */

export interface Axis {
  /** Position in [0, 1] of an address (clamped to the axis). */
  pos(addr: bigint): number;
}

export function linearAxis(start: bigint, end: bigint): Axis {
  const span = end > start ? Number(end - start) : 0;
  return {
    pos(a) {
      if (span === 0) return 0;
      if (a <= start) return 0;
      if (a >= end) return 1;
      return Number(a - start) / span;
    },
  };
}

export interface CompressedAxis extends Axis {
  points: bigint[];
  cum: number[];
}

export function compressedAxis(pointsIn: Iterable<bigint>, pageSize = 4096): CompressedAxis {
  const points = [...new Set(pointsIn)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const cum: number[] = [0];
  let total = 0;
  for (let i = 1; i < points.length; i++) {
    const len = Number(points[i]! - points[i - 1]!);
    total += Math.sqrt(Math.log2(2 + len / pageSize));
    cum.push(total);
  }
  for (let i = 0; i < cum.length; i++) cum[i] = total > 0 ? cum[i]! / total : 0;
  return {
    points,
    cum,
    pos(a) {
      const n = points.length;
      if (n < 2 || a <= points[0]!) return 0;
      if (a >= points[n - 1]!) return 1;
      let lo = 0;
      let hi = n - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (points[mid]! <= a) lo = mid;
        else hi = mid;
      }
      const s = points[lo]!;
      const e = points[hi]!;
      const f = Number(a - s) / Number(e - s);
      return cum[lo]! + f * (cum[hi]! - cum[lo]!);
    },
  };
}

/** Tick addresses: multiples of the smallest power of two giving at most `maxTicks` ticks. */
export function ticksLinear(start: bigint, end: bigint, maxTicks = 8): bigint[] {
  if (end <= start) return [start];
  let step = 1n;
  while ((end - start) / step > BigInt(maxTicks)) step <<= 1n;
  const out: bigint[] = [];
  let t = ((start + step - 1n) / step) * step;
  for (; t <= end; t += step) out.push(t);
  return out;
}
