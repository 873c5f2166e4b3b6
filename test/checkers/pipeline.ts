// Every receive's tensor is the one the schedule says (FACTS §5): between two ranks, the k-th pipeline message one
// sends is the k-th the other takes (same message, same payload CRC); each rank takes exactly the tensors its
// schedule's forwards and backwards need from other ranks — derived here from the schedule's op lists and its
// placement, not from the executor's batches — each once, and each kind of them in micro-batch order.
import { StageHolders } from '../../src/pipeline/p2p-batches.js';
import { parsePpTag, ppTag } from '../../src/comm/tags.js';
import type { Op } from '../../src/pipeline/schedule-types.js';
import { buildSchedule, schedulePlacement } from '../../src/pipeline/schedules/index.js';
import type { CheckInput, PipelineLayout, RankStepTrace, Violation } from './types.js';

export function checkPipeline(input: CheckInput): Violation[] {
  if (!input.pipeline) return [];
  const p = input.pipeline;
  const out: Violation[] = [];
  const expected = expectedInputs(p);
  const bySteps = new Map<number, RankStepTrace[]>();
  for (const t of input.traces) bySteps.set(t.step, [...(bySteps.get(t.step) ?? []), t]);
  for (const [step, traces] of bySteps) {
    const sent = new Map<string, { seq: number; tag: string; crc: number | null }[]>();
    for (const t of traces) {
      for (const m of t.sent) if (parsePpTag(m.tag)) push(sent, `${m.src}>${m.dst}`, m);
    }
    for (const t of traces) {
      const v = (what: string) => out.push({ checker: 'pipeline', rank: t.rank, step, what });
      const taken = t.received.filter((m) => parsePpTag(m.tag) !== null);
      const bySource = new Map<number, typeof taken>();
      for (const m of taken) bySource.set(m.src, [...(bySource.get(m.src) ?? []), m]);
      for (const [src, got] of bySource) {
        const order = (sent.get(`${src}>${t.rank}`) ?? []).sort((a, b) => a.seq - b.seq);
        got.forEach((m, k) => {
          const s = order[k];
          if (!s || s.seq !== m.seq || s.tag !== m.tag || s.crc !== m.crc) {
            v(`its pipeline receive ${k} from rank ${src} took ${m.tag} (message ${m.seq}), ` +
              `but the ${k}-th pipeline message rank ${src} sent it is ` +
              `${s ? `${s.tag} (message ${s.seq})` : 'missing'}`);
          }
        });
      }
      const want = expected.get(t.rank) ?? [];
      const have = taken.map((m) => `${m.tag}<${m.src}`);
      const missing = want.filter((w) => !have.includes(w));
      const extra = have.filter((h) => !want.includes(h));
      const twice = have.filter((h, i) => have.indexOf(h) !== i);
      if (missing.length > 0) {
        v(`never took ${missing.slice(0, 4).join(', ')}${missing.length > 4 ? ` and ${missing.length - 4} more` : ''}`);
      }
      if (extra.length > 0) v(`took ${extra.slice(0, 4).join(', ')}, which its schedule does not consume`);
      if (twice.length > 0) v(`took ${twice.slice(0, 4).join(', ')} twice`);
      const last = new Map<string, number>();
      for (const m of taken) {
        const tag = parsePpTag(m.tag)!;
        const stream = `${m.src}:${tag.kind}:${tag.pipe}:${tag.stage}`;
        if ((last.get(stream) ?? -1) >= tag.mb) {
          v(`took ${m.tag} from rank ${m.src} after a later micro-batch of the same stage`);
        }
        last.set(stream, tag.mb);
      }
    }
  }
  return out;
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** For each global rank: `tag<source>` of every pipeline tensor its ops consume from another rank. */
function expectedInputs(p: PipelineLayout): Map<number, string[]> {
  const programs = buildSchedule(p.kind, p.pipelineRanks, p.microBatches);
  const holders = new StageHolders(schedulePlacement(p.kind, p.pipelineRanks), p.pipelineRanks);
  const out = new Map<number, string[]>();
  for (const program of programs) {
    const q = program.rank;
    const inputs: string[] = [];
    const need = (kind: 'act' | 'grad', chunk: number, mb: number) => {
      const { pipe, stage } = holders.slot(q, chunk);
      const from = holders.holder(pipe, kind === 'act' ? stage - 1 : stage + 1);
      if (from === null || from === q) return;
      inputs.push(`${ppTag({ kind, pipe, stage, mb })}<${from}`);
    };
    for (const op of program.ops) forEachInput(op, need);
    for (let e = 0; e < p.ep; e++) {
      out.set(q * p.ep + e, inputs.map((i) => {
        const [tag, from] = i.split('<');
        return `${tag}<${Number(from) * p.ep + e}`;
      }));
    }
  }
  return out;
}

function forEachInput(op: Op, need: (kind: 'act' | 'grad', chunk: number, mb: number) => void): void {
  if (op.op === 'F') need('act', op.chunk, op.mb);
  else if (op.op === 'B') need('grad', op.chunk, op.mb);
  else if (op.op === 'FB') {
    need('act', op.f.chunk, op.f.mb);
    need('grad', op.b.chunk, op.b.mb);
  }
}
