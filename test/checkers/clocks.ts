// No clock goes back (DESIGN "Virtual time"): on every rank and stream each op starts no earlier than the previous
// one ended and ends no earlier than it started, across steps; a message leaves no earlier than it was posted,
// finishes leaving no earlier than it left, and is received no earlier than it finished leaving or than its
// receive was posted.
import type { RankStepTrace, Violation } from './types.js';

export function checkClocks(traces: readonly RankStepTrace[]): Violation[] {
  const out: Violation[] = [];
  const byRank = new Map<number, RankStepTrace[]>();
  for (const t of traces) byRank.set(t.rank, [...(byRank.get(t.rank) ?? []), t]);
  for (const [rank, own] of byRank) {
    const lastEnd = new Map<string, { endPs: number; name: string }>();
    for (const t of [...own].sort((a, b) => a.step - b.step)) {
      for (const r of t.records) {
        const v = (what: string) => out.push({ checker: 'clocks', rank, step: t.step, what });
        if (r.endPs < r.startPs) v(`${r.name} ends at ${r.endPs} ps, before it starts at ${r.startPs} ps`);
        const prev = lastEnd.get(r.stream);
        if (prev && r.startPs < prev.endPs) {
          v(`${r.stream} clock went back: ${r.name} starts at ${r.startPs} ps, before ${prev.name} ` +
            `ended at ${prev.endPs} ps`);
        }
        lastEnd.set(r.stream, { endPs: Math.max(prev?.endPs ?? 0, r.endPs), name: r.name });
      }
      for (const m of t.sent) {
        if (m.outPs < m.postedPs || m.egressEndPs < m.outPs) {
          out.push({ checker: 'clocks', rank, step: t.step, what: `message ${m.tag} to rank ${m.dst} was posted at ` +
            `${m.postedPs} ps, left at ${m.outPs} ps and finished leaving at ${m.egressEndPs} ps` });
        }
      }
      for (const m of t.received) {
        if (m.donePs < m.egressEndPs || m.donePs < m.postedPs) {
          out.push({ checker: 'clocks', rank, step: t.step,
            what: `message ${m.tag} from rank ${m.src} was received at ${m.donePs} ps, ` +
              `before it finished leaving (${m.egressEndPs} ps) or its receive was posted (${m.postedPs} ps)` });
        }
      }
    }
  }
  return out;
}
