/** The shape of a report: what each scenario produced, before it is written as JSON, Markdown and SVG. */
import type { Spread } from './util.js';

/** One measured quantity. */
export interface MetricDef {
  key: string;
  label: string;
  /** Shown after the value (`msg/s`, `ms`, `KiB`…). */
  unit: string;
  better: 'higher' | 'lower' | 'none';
}

/** One system's runs in a scenario. */
export interface RowResult {
  id: string;
  label: string;
  family: 'switchboard' | 'raw' | 'socketio';
  /** Row whose values the ratio column divides by (a Switchboard row of the same shape). */
  baseline: string;
  runs: Record<string, number>[];
  summary: Record<string, Spread>;
  /** Per metric: this row ÷ baseline, paired run by run (same round), then median and range. */
  ratio: Record<string, Spread>;
  /**
   * A second comparison, where the scenario asks for one (the two-node Switchboard rows against
   * Socket.IO + Redis ×2): that row's id and label, and this row ÷ it, paired the same way.
   */
  peer?: { id: string; label: string; ratio: Record<string, Spread> };
  errors: string[];
}

/** One table of the report. */
export interface ScenarioReport {
  /** `storm-5000`, `fanout`, … */
  name: string;
  scenario: string;
  title: string;
  /** What it measures, in a sentence or two. */
  what: string;
  /** The size it ran at. */
  size: string;
  metrics: MetricDef[];
  /** The metric of the bar chart and the ratio column. */
  primary: string;
  /** Extra charts: metrics drawn side by side per system (e.g. p50 and p99). */
  charts?: { title: string; metrics: string[]; unit: string }[];
  rows: RowResult[];
  notes: string[];
}
