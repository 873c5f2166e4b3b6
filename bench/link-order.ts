// `npm run bench -- links`: how much communication time two simplifications of moemu's link model add
// (docs/fabric.md "Virtual time"). (1) A port's ingress serves messages in the receiving program's order, exchange
// after exchange, so a message that arrived early but belongs to a later exchange waits behind one that arrived
// later. (2) A forwarder posts its NVLink forwards origin by origin, in program order, so a forward whose IB
// message arrived early may queue on the egress behind one whose message arrived later. Against these, an
// arrival-ordered replay: every egress serves sends in the order they could be posted and every ingress serves
// messages in the order they arrived, the sends' post times held fixed. Replayed from the messages a real run of
// scenarios/dualpipe.yaml and cluster-4x4.yaml (one step each) reports in check mode; the run's own figures come
// from the same run.
import type { LinkConfig } from '../src/fabric/cluster-config.js';
import type { ReceivedEvent, SentEvent } from '../src/fabric/observer.js';
import type { OpRecord } from '../src/fabric/streams.js';
import { psForBytes, psFromNs } from '../src/fabric/virtual-time.js';
import { lengthOf, unionOf } from '../src/metrics/intervals.js';
import { runTraining } from '../src/runtime/training-run.js';
import { loadScenario } from '../src/scenario/load.js';

const SCENARIOS = ['scenarios/dualpipe.yaml', 'scenarios/cluster-4x4.yaml'];

interface Replayed { egressEndPs: Map<string, number>; donePs: Map<string, number> }

const key = (m: { src: number; dst: number; seq: number }) => `${m.src}>${m.dst}#${m.seq}`;

/** Arrival-ordered ports: each (rank, link) egress in post order, then each ingress in arrival order. */
function replay(sent: readonly SentEvent[], received: readonly ReceivedEvent[],
                links: Record<'nvlink' | 'ib', LinkConfig>): Replayed {
  const egressEndPs = new Map<string, number>();
  const byEgress = groupBy(sent, (m) => `${m.src}:${m.link}`);
  for (const messages of byEgress.values()) {
    let free = 0;
    for (const m of [...messages].sort((a, b) => a.postedPs - b.postedPs || a.seq - b.seq)) {
      const out = Math.max(m.postedPs, free);
      free = out + psForBytes(m.bytes, links[m.link].egressBytesPerS);
      egressEndPs.set(key(m), free);
    }
  }
  const donePs = new Map<string, number>();
  const byIngress = groupBy(received, (m) => `${m.dst}:${m.link}`);
  for (const messages of byIngress.values()) {
    const arrival = (m: ReceivedEvent) => egressEndPs.get(key(m))! + psFromNs(links[m.link].latencyNs);
    let free = 0;
    for (const m of [...messages].sort((a, b) => arrival(a) - arrival(b) || a.src - b.src || a.seq - b.seq)) {
      free = Math.max(arrival(m), free + psForBytes(m.bytes, links[m.link].ingressBytesPerS));
      donePs.set(key(m), Math.max(m.postedPs, free));
    }
  }
  return { egressEndPs, donePs };
}

/** A rank's comm ops with their ends recomputed from the replayed sends and receives of their exchanges. */
function commBusy(records: readonly OpRecord[], sent: readonly SentEvent[], received: readonly ReceivedEvent[],
                  r: Replayed | null): number {
  const ops = records.filter((o) => o.stream === 'comm').map((o) => {
    if (!r) return o;
    const mine = <T extends { op: string; postedPs: number }>(m: T) =>
      (m.op === o.name || m.op.startsWith(`${o.name} `)) && m.postedPs >= o.startPs && m.postedPs <= o.endPs;
    let endPs = o.startPs;
    for (const m of sent) if (mine(m)) endPs = Math.max(endPs, r.egressEndPs.get(key(m))!);
    for (const m of received) if (mine(m)) endPs = Math.max(endPs, r.donePs.get(key(m))!);
    return { startPs: o.startPs, endPs };
  });
  return lengthOf(unionOf(ops));
}

function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

export async function benchLinkOrder(): Promise<string[]> {
  const lines: string[] = [];
  for (const file of SCENARIOS) lines.push(...await linkOrder(file));
  return lines;
}

async function linkOrder(file: string): Promise<string[]> {
  const base = loadScenario(file);
  const scenario = { ...base, training: { ...base.training, steps: 1, warmupSteps: 1 } };
  const run = await runTraining(scenario, { file, check: true });
  const steps = run.results.map((r) => ({ rank: r.rank, ...r.steps[0] }));
  const sent = steps.flatMap((s) => s.messages!.sent);
  const received = steps.flatMap((s) => s.messages!.received);
  const replayed = replay(sent, received, { nvlink: scenario.cluster.nvlink, ib: scenario.cluster.ib });
  let busy = 0;
  let replayBusy = 0;
  for (const s of steps) {
    const own = (m: { src: number; dst: number }, side: 'src' | 'dst') => m[side] === s.rank;
    busy += commBusy(s.records!, sent.filter((m) => own(m, 'src')), received.filter((m) => own(m, 'dst')), null);
    replayBusy += commBusy(s.records!, sent.filter((m) => own(m, 'src')), received.filter((m) => own(m, 'dst')),
      replayed);
  }
  const shift = (m: ReceivedEvent) => m.donePs - replayed.donePs.get(key(m))!;
  const later = received.filter((m) => shift(m) > 0);
  const earlier = received.filter((m) => shift(m) < 0);
  const sumOf = (list: ReceivedEvent[]) => list.reduce((t, m) => t + shift(m), 0);
  const forwards = sent.filter((m) => /:fwd:\d+$/.test(m.tag) && m.postedPs > 0);
  const egressPs = forwards.reduce((t, m) => t + (m.egressEndPs - replayed.egressEndPs.get(key(m))!), 0);
  const ms = (ps: number) => `${(ps / 1e9).toFixed(3)} ms`;
  const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`;
  const ranks = steps.length;
  const metricsBusy = run.metrics.steps[0].cluster.commBusyPs;
  return [
    `link order (${file}, one step, ${ranks} ranks, ${received.length} messages):`,
    `  comm busy per rank: ${ms(busy / ranks)} as modelled (metrics.json: ${ms(metricsBusy / ranks)}), ` +
      `${ms(replayBusy / ranks)} with arrival-ordered ports: ` +
      `the model adds ${signed((busy - replayBusy) / ranks / 1e9)} ms (${signed((busy / replayBusy - 1) * 100)} %)`,
    `  messages received later than in arrival order: ${later.length} of ${received.length} ` +
      `(${signed(sumOf(later) / ranks / 1e9)} ms per rank); earlier: ${earlier.length} ` +
      `(${signed(sumOf(earlier) / ranks / 1e9)} ms per rank)`,
    '  forwards leaving later than post order allows: ' +
      `${forwards.filter((m) => m.egressEndPs > replayed.egressEndPs.get(key(m))!).length} of ` +
      `${forwards.length}, ${ms(egressPs / ranks)} per rank in all`,
  ];
}
