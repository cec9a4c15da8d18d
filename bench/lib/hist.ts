/**
 * Latency histograms (HdrHistogram, µs, 3 significant digits). Workers record, encode and send;
 * the runner decodes and adds them, so percentiles are over every sample, not averages of
 * per-worker percentiles.
 */
import hdr from 'hdr-histogram-js';

export type Histogram = ReturnType<typeof hdr.build>;

/** An empty histogram from 1 µs to an hour, resizing past it rather than throwing. */
export function newHist(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });
}

/** Records a latency in µs (clamped to ≥ 1 µs). */
export function record(h: Histogram, us: number): void {
  h.recordValue(us < 1 ? 1 : Math.round(us));
}

export function encode(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Adds every encoded histogram into one. */
export function merge(encoded: string[]): Histogram {
  const total = newHist();
  for (const e of encoded) {
    if (!e) continue;
    total.add(hdr.decodeFromCompressedBase64(e));
  }
  return total;
}

/** Percentiles in milliseconds. */
export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarise(h: Histogram): LatencySummary {
  if (h.totalCount === 0) return { count: 0, p50: NaN, p99: NaN, max: NaN };
  return {
    count: h.totalCount,
    p50: h.getValueAtPercentile(50) / 1000,
    p99: h.getValueAtPercentile(99) / 1000,
    max: h.maxValue / 1000,
  };
}
