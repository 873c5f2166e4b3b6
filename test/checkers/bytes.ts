// Conservation of bytes: every message sent is taken exactly once, with the bytes, metadata, tag, timing and
// payload CRC it left with; per link (source → target rank) and step, the bytes sent equal the bytes received.
import type { MessageEvent } from '../../src/fabric/observer.js';
import type { RankStepTrace, Violation } from './types.js';

export function checkBytes(traces: readonly RankStepTrace[]): Violation[] {
  const out: Violation[] = [];
  const sent = new Map<string, MessageEvent>();
  const received = new Map<string, MessageEvent>();
  const totals =
    new Map<string, { sent: number; received: number; src: number; dst: number; step: number; link: string }>();
  const total = (m: MessageEvent) => {
    const k = `${m.src}>${m.dst}@${m.step}`;
    let t = totals.get(k);
    if (!t) totals.set(k, (t = { sent: 0, received: 0, src: m.src, dst: m.dst, step: m.step, link: m.link }));
    return t;
  };
  for (const t of traces) {
    for (const m of t.sent) {
      sent.set(key(m), m);
      total(m).sent += m.bytes;
    }
    for (const m of t.received) {
      const k = key(m);
      if (received.has(k)) {
        out.push({ checker: 'bytes', rank: m.dst, step: t.step, what: `${describe(m)} was taken twice` });
      }
      received.set(k, m);
      total(m).received += m.bytes;
    }
  }
  for (const [k, m] of sent) {
    const r = received.get(k);
    if (!r) {
      out.push({ checker: 'bytes', rank: m.src, step: m.step, what: `${describe(m)} was never received` });
      continue;
    }
    for (const field of ['tag', 'bytes', 'metadataBytes', 'crc', 'outPs', 'egressEndPs', 'step'] as const) {
      if (r[field] !== m[field]) {
        out.push({ checker: 'bytes', rank: m.dst, step: m.step,
          what: `${describe(m)} arrived with ${field} ${r[field]}, sent with ${m[field]}` });
      }
    }
  }
  for (const [k, r] of received) {
    if (!sent.has(k)) {
      out.push({ checker: 'bytes', rank: r.dst, step: r.step, what: `${describe(r)} was received but never sent` });
    }
  }
  for (const t of totals.values()) {
    if (t.sent !== t.received) {
      out.push({ checker: 'bytes', rank: t.src, step: t.step,
        what: `link ${t.link} rank ${t.src} → rank ${t.dst}: ${t.sent} B sent, ${t.received} B received` });
    }
  }
  return out;
}

function key(m: MessageEvent): string {
  return `${m.src}>${m.dst}#${m.seq}`;
}

function describe(m: MessageEvent): string {
  return `message ${m.seq} (${m.tag}, ${m.bytes} B) on link ${m.link} rank ${m.src} → rank ${m.dst}`;
}
