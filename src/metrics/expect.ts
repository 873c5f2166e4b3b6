// A scenario's `expect:` section (docs/scenarios.md "expect"): conditions on a run's figures, checked after the
// run; any that fails makes `moemu run` exit with expectationFailed, naming the figure. So scenarios double as
// regression tests. Each figure is read from metrics.json (docs/metrics.md), never from wall-clock time, so an
// expectation holds or fails the same way on every machine.

/** A run's metrics.json as the figures read it (training-metrics.ts writes it). */
export interface ExpectMetrics {
  summary: { finalLoss: { total: number; main: number }; overlapEfficiency: number | null;
    fbOverlapEfficiency: number | null; bubbleFraction: number | null; virtualTimePs: number };
  steps: readonly { loss: { total: number }; loadImbalance: number; spanPs: number; cluster: { ranks: number };
    links: Record<'nvlink' | 'ib', { epPayloadBytes: number; epAnalyticalPayloadBytes: number;
      egressBusyPs: number }> }[];
  ranks: readonly { hbm: { peakBytes: number }; peakLiveActivations: number }[];
  config: { training: { batchSize: number }; model: { seqLen: number } };
}

interface Figure {
  /** What it is, for docs and messages. */
  definition: string;
  value: (m: ExpectMetrics) => number | null;
  /** The figure's analytical count, for conditions written `== analytical`; absent when it has none. */
  analytical?: (m: ExpectMetrics) => number;
}

const sumSteps = (m: ExpectMetrics, f: (s: ExpectMetrics['steps'][number]) => number) =>
  m.steps.reduce((t, s) => t + f(s), 0);

function utilisation(m: ExpectMetrics, link: 'nvlink' | 'ib'): number | null {
  const portTime = sumSteps(m, (s) => s.cluster.ranks * s.spanPs);
  return portTime === 0 ? null : sumSteps(m, (s) => s.links[link].egressBusyPs) / portTime;
}

export const EXPECT_FIGURES = {
  finalLoss: { definition: 'the last step\'s total loss (main + λ·MTP + balance), nats',
    value: (m) => m.summary.finalLoss.total },
  finalMainLoss: { definition: 'the last step\'s main cross-entropy, nats', value: (m) => m.summary.finalLoss.main },
  lossDrop: { definition: 'the first step\'s total loss minus the last step\'s (> 0: the model learned)',
    value: (m) => m.steps[0].loss.total - m.summary.finalLoss.total },
  overlapEfficiency: { definition: 'hidden / M over the whole run (summary.overlapEfficiency)',
    value: (m) => m.summary.overlapEfficiency },
  fbOverlapEfficiency: { definition: 'hidden / M inside the F&B chunks over the run (summary.fbOverlapEfficiency)',
    value: (m) => m.summary.fbOverlapEfficiency },
  bubbleFraction: { definition: 'Σ bubble / Σ ranks·span over the run (summary.bubbleFraction)',
    value: (m) => m.summary.bubbleFraction },
  loadImbalance: { definition: 'max/mean tokens per expert of the last step, worst MoE layer',
    value: (m) => m.steps[m.steps.length - 1].loadImbalance },
  ibEpPayloadBytes: { definition: 'EP dispatch and combine payload bytes over IB, all steps (links.ib.epPayloadBytes)',
    value: (m) => sumSteps(m, (s) => s.links.ib.epPayloadBytes),
    analytical: (m) => sumSteps(m, (s) => s.links.ib.epAnalyticalPayloadBytes) },
  nvlinkEpPayloadBytes: { definition: 'EP dispatch and combine payload bytes over NVLink, all steps',
    value: (m) => sumSteps(m, (s) => s.links.nvlink.epPayloadBytes),
    analytical: (m) => sumSteps(m, (s) => s.links.nvlink.epAnalyticalPayloadBytes) },
  ibUtilisation: { definition: 'Σ IB egress busy / Σ ranks·span over the run', value: (m) => utilisation(m, 'ib') },
  nvlinkUtilisation: { definition: 'Σ NVLink egress busy / Σ ranks·span over the run',
    value: (m) => utilisation(m, 'nvlink') },
  peakHbmBytes: { definition: 'the most emulated HBM any rank held at once',
    value: (m) => Math.max(...m.ranks.map((r) => r.hbm.peakBytes)) },
  peakLiveActivations: { definition: 'the most forward chunks any rank held activations for at once',
    value: (m) => Math.max(...m.ranks.map((r) => r.peakLiveActivations)) },
  virtualTimePs: { definition: 'virtual time of the run, first op to last, ps', value: (m) => m.summary.virtualTimePs },
  tokensPerVirtualSecond: { definition: 'tokens trained per second of virtual time over the run',
    value: (m) => (m.summary.virtualTimePs === 0 ? null
      : (m.steps.length * m.config.training.batchSize * m.config.model.seqLen * 1e12) / m.summary.virtualTimePs) },
} as const satisfies Record<string, Figure>;

export type ExpectFigure = keyof typeof EXPECT_FIGURES;
export const EXPECT_FIGURE_NAMES = Object.keys(EXPECT_FIGURES) as ExpectFigure[];

const OPERATORS = ['<=', '>=', '==', '!=', '<', '>'] as const;
type Operator = (typeof OPERATORS)[number];
export interface Condition { op: Operator; bound: number | 'analytical' }

const CONDITION = /^(<=|>=|==|!=|<|>)\s*(analytical|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$/;

/** `">= 0.9"`, `"< 3 and > 1"`, `"== analytical"` → its conditions, or the reason it is not one. */
export function parseExpectation(figure: ExpectFigure, text: string): Condition[] | string {
  const parts = text.trim().split(/\s+and\s+/);
  const out: Condition[] = [];
  for (const part of parts) {
    const m = CONDITION.exec(part.trim());
    if (!m) {
      return `must be conditions like ">= 0.9", "< 3.0 and > 1" or "== analytical" (operators ${OPERATORS.join(' ')})` +
        `, got ${JSON.stringify(text)}`;
    }
    if (m[2] === 'analytical' && !('analytical' in EXPECT_FIGURES[figure])) {
      return `${figure} has no analytical count (only ${analyticalFigures().join(', ')} have one)`;
    }
    out.push({ op: m[1] as Operator, bound: m[2] === 'analytical' ? 'analytical' : Number(m[2]) });
  }
  return out;
}

function analyticalFigures(): string[] {
  return EXPECT_FIGURE_NAMES.filter((f) => 'analytical' in EXPECT_FIGURES[f]);
}

export interface ExpectResult { figure: ExpectFigure; expression: string; value: number | null; bound: string;
  ok: boolean }

/** Every condition of `expect` on the run's metrics, in the section's order. A figure without a value (a null
 * ratio: no comm, no F&B) fails every condition. */
export function checkExpectations(expect: Readonly<Partial<Record<ExpectFigure, string>>>,
                                  metrics: ExpectMetrics): ExpectResult[] {
  return Object.entries(expect).map(([name, expression]) => {
    const figure = name as ExpectFigure;
    const conditions = parseExpectation(figure, expression!);
    if (typeof conditions === 'string') throw new Error(`expect.${figure}: ${conditions}`);   // the schema checked
    const spec: Figure = EXPECT_FIGURES[figure];
    const value = spec.value(metrics);
    const bounds = conditions.map((c) => (c.bound === 'analytical' ? spec.analytical!(metrics) : c.bound));
    const ok = value !== null && conditions.every((c, i) => holds(value, c.op, bounds[i]));
    return { figure, expression: expression!, value, ok,
      bound: conditions.map((c, i) => `${c.op} ${c.bound === 'analytical' ? `analytical ${bounds[i]}` : bounds[i]}`)
        .join(' and ') };
  });
}

function holds(value: number, op: Operator, bound: number): boolean {
  switch (op) {
    case '<': return value < bound;
    case '<=': return value <= bound;
    case '>': return value > bound;
    case '>=': return value >= bound;
    case '==': return value === bound;
    case '!=': return value !== bound;
  }
}
