// The MoE sections of report.html, from metrics.json's per-step `experts` (the step's global tokens per expert and
// the gate biases after its update, per MoE layer in model order) and `loadImbalance`: how balanced the routing
// was over steps and layers, where the last step's tokens went, and how the auxiliary-loss-free bias moved.
import { heatMap, lineChart, scaleLegend } from './charts.js';
import type { TrainingMetricsJson } from './figures.js';
import { esc, fmtInt, fmtNum, fmtSig, section } from './html.js';
import { expertColour, seriesColour } from './style.js';

/** Heat of max/mean ≥ 1: white at 1, dark red at `hi`. */
function imbalanceColour(hi: number): (v: number) => string {
  return (v) => {
    const t = Math.max(0, Math.min(1, (v - 1) / Math.max(1e-9, hi - 1)));
    return `rgb(${mix(238, 190, t)},${mix(238, 30, t)},${mix(238, 30, t)})`;
  };
}

/** load / mean on a log scale: blue below 1, light grey at 1, red above, saturated at ½ and 2. */
function relativeLoadColour(v: number): string {
  const t = Math.max(-1, Math.min(1, Math.log2(Math.max(v, 1e-9))));
  const a = Math.abs(t);
  return t >= 0 ? `rgb(${mix(238, 190, a)},${mix(238, 30, a)},${mix(238, 30, a)})`
    : `rgb(${mix(238, 40, a)},${mix(238, 90, a)},${mix(238, 200, a)})`;
}

/** From a to b at t ∈ [0, 1], rounded. */
function mix(a: number, b: number, t: number): number {
  return Math.round(a + (b - a) * t);
}

const mean = (xs: readonly number[]) => xs.reduce((t, x) => t + x, 0) / Math.max(1, xs.length);

/** Load imbalance over the steps, max/mean per layer × step, and the last step's load of every expert. */
export function expertsSection(m: TrainingMetricsJson): string {
  const steps = m.steps;
  const layers = steps[steps.length - 1]?.experts.map((e) => e.layer) ?? [];
  const imbalance = lineChart({ xs: steps.map((s) => s.step), yLabel: 'max / mean (worst layer)', yFrom: 1,
    fmt: (v) => fmtNum(v, 3), legend: false, width: 420,
    series: [{ name: 'load imbalance', colour: seriesColour(1), values: steps.map((s) => s.loadImbalance) }] });
  if (layers.length === 0) {
    return section('experts', 'Expert load', 'The run has no MoE layer figures.', `<figure>${imbalance}</figure>`);
  }
  const perStep = layers.map((layer) => steps.map((s) => {
    const loads = s.experts.find((e) => e.layer === layer)?.loads ?? [];
    const mu = mean(loads);
    return loads.length === 0 || mu === 0 ? null : Math.max(...loads) / mu;
  }));
  const hi = Math.max(1.5, ...perStep.flat().filter((v): v is number => v !== null));
  const overSteps = heatMap({ rows: layers, cols: steps.map((s) => String(s.step)), values: perStep,
    colour: imbalanceColour(hi), xLabel: 'step',
    hover: (r, c, v) => [`${layers[r]} · step ${steps[c].step}`, `max / mean load ${fmtNum(v, 3)}`] });
  const lastStep = steps[steps.length - 1];
  const experts = Math.max(...lastStep.experts.map((e) => e.loads.length));
  const relative = lastStep.experts.map((e) => {
    const mu = mean(e.loads);
    return Array.from({ length: experts }, (_, i) => (i < e.loads.length && mu > 0 ? e.loads[i] / mu : null));
  });
  const lastLoads = heatMap({ rows: layers, cols: Array.from({ length: experts }, (_, i) => String(i)),
    values: relative, colour: relativeLoadColour, xLabel: 'expert', cellW: Math.max(6, Math.min(28,
      Math.floor(800 / experts))),
    hover: (r, c, v) => [`${layers[r]} · expert ${c} · step ${lastStep.step}`,
      `${fmtInt(lastStep.experts[r].loads[c])} tokens (${fmtNum(v, 3)} × the layer's mean)`] });
  const body = `<div class="grid"><figure>${imbalance}<figcaption>The step's load imbalance: max / mean tokens ` +
    'per expert, worst MoE layer.</figcaption></figure>' +
    `<figure>${overSteps}${scaleLegend(imbalanceColour(hi), 1, hi, ['1', fmtNum(hi, 2)], 'max / mean')}` +
    '<figcaption>Max / mean load of each MoE layer per step.</figcaption></figure></div>' +
    `<figure>${lastLoads}${scaleLegend(relativeLoadColour, 0.5, 2, ['½×', '2×'], 'load / layer mean')}` +
    `<figcaption>Step ${lastStep.step}: tokens per expert of each layer, relative to the layer's mean ` +
    '(grey = balanced).</figcaption></figure>';
  return section('experts', 'Expert load', 'Tokens routed to each expert over the step\'s whole batch.', body);
}

/** One chart per MoE layer: every expert's gate bias over the steps; empty without MoE layers. */
export function biasSection(m: TrainingMetricsJson): string {
  const steps = m.steps;
  const layers = steps[steps.length - 1]?.experts.map((e) => e.layer) ?? [];
  if (layers.length === 0) return '';
  const xs = steps.map((s) => s.step);
  const charts = layers.map((layer) => {
    const of = steps.map((s) => s.experts.find((e) => e.layer === layer)?.bias ?? []);
    const experts = Math.max(0, ...of.map((b) => b.length));
    const series = Array.from({ length: experts }, (_, e) => ({ name: `expert ${e}`, colour: expertColour(e, experts),
      values: of.map((b) => (e < b.length ? b[e] : null)) }));
    const chart = lineChart({ xs, series, yLabel: 'bias', fmt: (v) => fmtSig(v, 4), width: 290, height: 170,
      legend: false });
    return `<figure>${chart}<figcaption>${esc(layer)}</figcaption></figure>`;
  });
  return section('bias', 'Gate bias per expert', 'The auxiliary-loss-free balancing bias of every routed expert ' +
    'after each step\'s update, one chart per MoE layer, one line per expert (colour by expert index).',
  `<div class="grid">${charts.join('')}</div>`);
}
