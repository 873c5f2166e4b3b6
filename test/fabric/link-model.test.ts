// Goal: the port model follows DESIGN.md "Virtual time" (Links) to the picosecond, and its receive order never
// depends on the order messages happen to arrive in.
// Method: closed forms derived in the comments, with every serialisation time T = ceil(b · 1e12 / bw) computed
// here in BigInt; a uniform all-to-all over k ranks is run with Ports only and its last receive checked against
// its closed form; processing order is checked against a construction order and many seeded shuffles.
import { describe, expect, it } from 'vitest';
import type { LinkConfig } from '../../src/fabric/cluster-config.js';
import { Port, processingOrder, receiveBatch, type InboundMessage } from '../../src/fabric/link-model.js';
import { Rng } from '../../src/tensor/rng.js';
import { codeOf } from '../helpers/errors.js';

/** Serialisation time of `bytes` at `bytesPerS`: ceil(bytes · 1e12 / bytesPerS) in ps, written independently. */
function serialPs(bytes: number, bytesPerS: number): number {
  const numerator = BigInt(bytes) * 10n ** 12n;
  const rate = BigInt(bytesPerS);
  return Number(numerator / rate + (numerator % rate === 0n ? 0n : 1n));
}

function link(egressBytesPerS: number, ingressBytesPerS: number, latencyNs: number): LinkConfig {
  return { egressBytesPerS, ingressBytesPerS, latencyNs };
}


const EQUAL = link(1e9, 1e9, 500);   // 1 byte = 1000 ps; latency 500_000 ps
const L_PS = 500_000;

describe('Port: one link', () => {
  it('one transfer takes latency + bytes/bw', () => {
    const sender = new Port(EQUAL, 'nvlink r0');
    const target = new Port(EQUAL, 'nvlink r1');
    const timing = sender.send(4096, 0);
    expect(timing).toEqual({ outPs: 0, egressEndPs: 4_096_000 });
    expect(sender.egressFreePs).toBe(4_096_000);
    expect(target.receive(4096, timing)).toBe(L_PS + 4_096_000);
    expect(target.ingressFreePs).toBe(L_PS + 4_096_000);
  });

  it('back-to-back sends through one egress finish at latency + 2·T', () => {
    for (const [bytes, bytesPerS, latencyNs] of [[4096, 1e9, 500], [1000, 3e9, 1000], [7, 3, 0.5]] as const) {
      const config = link(bytesPerS, bytesPerS, latencyNs);
      const sender = new Port(config, 'nvlink r0');
      const target = new Port(config, 'nvlink r1');
      const t = serialPs(bytes, bytesPerS);
      const latencyPs = latencyNs * 1000;
      const first = sender.send(bytes, 0);
      const second = sender.send(bytes, 0);
      expect(second).toEqual({ outPs: t, egressEndPs: 2 * t });
      expect(target.receive(bytes, first)).toBe(latencyPs + t);
      expect(target.receive(bytes, second)).toBe(latencyPs + 2 * t);
    }
  });

  it('two senders into one receiver contend for its ingress', () => {
    const a = new Port(EQUAL, 'nvlink r0');
    const b = new Port(EQUAL, 'nvlink r1');
    const target = new Port(EQUAL, 'nvlink r2');
    const t = serialPs(4096, 1e9);
    const messages: InboundMessage[] = [
      { bytes: 4096, timing: b.send(4096, 0), source: 1, seq: 0 },
      { bytes: 4096, timing: a.send(4096, 0), source: 0, seq: 0 },
    ];
    const done = receiveBatch(target, 0, messages);
    // Both leave at 0 and arrive together; source 0 goes first: L + T, then source 1 waits for the ingress: L + 2T.
    expect(done.map((d) => d.message.source)).toEqual([0, 1]);
    expect(done.map((d) => d.donePs)).toEqual([L_PS + t, L_PS + 2 * t]);
  });

  it('a send posted after the egress is free starts at its post time', () => {
    const sender = new Port(EQUAL, 'nvlink r0');
    const target = new Port(EQUAL, 'nvlink r1');
    const t = serialPs(4096, 1e9);
    const first = sender.send(4096, 0);
    const later = sender.send(4096, 10 * t);
    expect(later).toEqual({ outPs: 10 * t, egressEndPs: 11 * t });
    expect(target.receive(4096, first)).toBe(L_PS + t);
    expect(target.receive(4096, later)).toBe(11 * t + L_PS);
  });

  it('zero bytes still pay the latency', () => {
    const sender = new Port(EQUAL, 'ib r0');
    const target = new Port(EQUAL, 'ib r8');
    const timing = sender.send(0, 123);
    expect(timing).toEqual({ outPs: 123, egressEndPs: 123 });
    expect(target.receive(0, timing)).toBe(123 + L_PS);
  });

  it('an ingress slower than the egress: done = max(egress end + L, ingress free + b/bwIn)', () => {
    const config = link(2e9, 1e9, 100);            // L = 100_000 ps
    const bytes = 1_000_000;
    const tOut = serialPs(bytes, 2e9);             // 5e8 ps
    const tIn = serialPs(bytes, 1e9);              // 1e9 ps
    const sender = new Port(config, 'ib r0');
    const target = new Port(config, 'ib r8');
    const first = sender.send(bytes, 0);
    const second = sender.send(bytes, 0);
    const firstDone = target.receive(bytes, first);
    expect(firstDone).toBe(Math.max(tOut + 100_000, tIn));                  // the ingress binds: tIn
    expect(firstDone).toBe(1_000_000_000);
    expect(target.receive(bytes, second)).toBe(Math.max(2 * tOut + 100_000, firstDone + tIn));   // 2e9
  });

  it('an egress slower than the ingress: back-to-back cost is L + 2·b/bwOut', () => {
    const config = link(1e9, 2e9, 100);
    const bytes = 1_000_000;
    const tOut = serialPs(bytes, 1e9);
    const sender = new Port(config, 'ib r0');
    const target = new Port(config, 'ib r8');
    const first = sender.send(bytes, 0);
    const second = sender.send(bytes, 0);
    expect(target.receive(bytes, first)).toBe(100_000 + tOut);
    expect(target.receive(bytes, second)).toBe(100_000 + 2 * tOut);
  });

  it('a receive completes no earlier than it is posted', () => {
    const sender = new Port(EQUAL, 'nvlink r0');
    const target = new Port(EQUAL, 'nvlink r1');
    const postedPs = 10 ** 9;
    const [only] = receiveBatch(target, postedPs, [{ bytes: 10, timing: sender.send(10, 0), source: 0, seq: 0 }]);
    expect(only.donePs).toBe(postedPs);
    expect(target.ingressFreePs).toBe(L_PS + 10_000);   // the port itself was free long before
  });

  it('rejects bad link figures with MOEMU_ERR_CONFIG', () => {
    expect(codeOf(() => new Port(link(0, 1e9, 1), 'x'))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => new Port(link(1e9, 1.5, 1), 'x'))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => new Port(link(1e9, 1e9, -1), 'x'))).toBe('MOEMU_ERR_CONFIG');
    expect(codeOf(() => new Port(link(1e9, 1e9, Number.NaN), 'x'))).toBe('MOEMU_ERR_CONFIG');
  });

  it('treats negative sizes and times as bugs', () => {
    const port = new Port(EQUAL, 'nvlink r0');
    expect(codeOf(() => port.send(-1, 0))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => port.send(1, -1))).toBe('MOEMU_ERR_INTERNAL');
    expect(codeOf(() => port.receive(1, { outPs: 5, egressEndPs: 4 }))).toBe('MOEMU_ERR_INTERNAL');
    expect(port.egressFreePs).toBe(0);
    expect(port.ingressFreePs).toBe(0);
  });
});

describe('processingOrder', () => {
  // Built in the order (out, source, seq) by nested loops, with ties on out and on source; seq numbers are unique
  // per source and grow with out, as a sender's are.
  const ORDERED: { outPs: number; source: number; seq: number; tag: string }[] = [];
  const nextSeq = new Map<number, number>();
  for (const outPs of [0, 7, 1000]) {
    for (const source of [0, 2, 3, 9]) {
      for (let i = 0; i < 3; i++) {
        const seq = nextSeq.get(source) ?? 0;
        nextSeq.set(source, seq + 1);
        ORDERED.push({ outPs, source, seq, tag: `${outPs}/${source}/${seq}` });
      }
    }
  }

  it('is (sender out, source, seq), independent of the input order', () => {
    const rng = new Rng(20240611);
    const expected = ORDERED.map((m) => m.tag);
    for (let round = 0; round < 200; round++) {
      const input = rng.shuffled(ORDERED);
      const before = input.map((m) => m.tag);
      expect(processingOrder(input).map((m) => m.tag)).toEqual(expected);
      expect(input.map((m) => m.tag)).toEqual(before);   // a new array; the input is untouched
    }
  });

  it('refuses two messages with the same source and seq in one batch', () => {
    const twice = [{ outPs: 0, source: 1, seq: 3 }, { outPs: 5, source: 2, seq: 0 }, { outPs: 9, source: 1, seq: 3 }];
    expect(codeOf(() => processingOrder(twice))).toBe('MOEMU_ERR_INTERNAL');
  });

  it('receiveBatch gives the same done times whatever the arrival order', () => {
    const rng = new Rng(7);
    const runOnce = (order: (m: InboundMessage[]) => InboundMessage[]) => {
      const senders = [0, 1, 2, 3].map((r) => new Port(EQUAL, `nvlink r${r}`));
      const target = new Port(EQUAL, 'nvlink r4');
      const messages: InboundMessage[] = [];
      for (let seq = 0; seq < 3; seq++) {
        senders.forEach((port, source) => {
          const bytes = 1000 * (source + 1) + seq;
          messages.push({ bytes, timing: port.send(bytes, seq * 1000), source, seq });
        });
      }
      return receiveBatch(target, 0, order(messages)).map((d) => `${d.message.source}.${d.message.seq}@${d.donePs}`);
    };
    const reference = runOnce((m) => m);
    for (let round = 0; round < 50; round++) expect(runOnce((m) => rng.shuffled(m))).toEqual(reference);
  });
});

describe('uniform all-to-all over k ranks, Ports only', () => {
  // Rank r sends b bytes to r+1, r+2, …, r+k−1 (mod k), all posted at 0, so its j-th send (j = 1 … k−1) leaves at
  // (j−1)·Tout and ends at j·Tout. Rank r therefore receives from r−j an egress end of j·Tout, and processes in
  // (out, source, seq) order, i.e. j ascending. With done_0 = 0 (ingress free at 0):
  //   done_j = max(j·Tout + L, done_{j−1} + Tin)
  //          = max(j·Tin, max over m = 1 … j of (m·Tout + L + (j−m)·Tin)).
  //  * Tin = Tout = T:  done_{k−1} = L + (k−1)·T
  //  * Tin ≥ Tout:      the inner max is at m = 1:  done_{k−1} = max((k−1)·Tin, Tout + L + (k−2)·Tin)
  //  * Tin ≤ Tout:      the inner max is at m = j:  done_{k−1} = (k−1)·Tout + L
  // Every rank's egress is free again at (k−1)·Tout.
  function allToAll(k: number, config: LinkConfig, bytes: number,
                    rng: Rng): { lastDone: number[]; egressFree: number[] } {
    const ports = Array.from({ length: k }, (_, r) => new Port(config, `nvlink r${r}`));
    const inbox: InboundMessage[][] = Array.from({ length: k }, () => []);
    for (let source = 0; source < k; source++) {
      for (let j = 1; j < k; j++) {
        const target = (source + j) % k;
        inbox[target].push({ bytes, timing: ports[source].send(bytes, 0), source, seq: 0 });
      }
    }
    const lastDone = inbox.map((messages, r) => {
      const done = receiveBatch(ports[r], 0, rng.shuffled(messages));   // real arrival order is arbitrary
      return Math.max(...done.map((d) => d.donePs));
    });
    return { lastDone, egressFree: ports.map((p) => p.egressFreePs) };
  }

  const CASES: { name: string; config: LinkConfig; bytes: number; closedForm: (k: number) => number }[] = [
    {
      name: 'equal bandwidths, exact T', config: link(1e9, 1e9, 500), bytes: 4096,
      closedForm: (k) => 500_000 + (k - 1) * serialPs(4096, 1e9),
    },
    {
      name: 'equal bandwidths, T rounded up', config: link(3e9, 3e9, 1000), bytes: 1000,
      closedForm: (k) => 1_000_000 + (k - 1) * serialPs(1000, 3e9),
    },
    {
      name: 'slower ingress, latency binds', config: link(2e9, 1e9, 5000), bytes: 1000,
      closedForm: (k) => Math.max((k - 1) * serialPs(1000, 1e9),
        serialPs(1000, 2e9) + 5_000_000 + (k - 2) * serialPs(1000, 1e9)),
    },
    {
      name: 'slower ingress, ingress binds', config: link(2e9, 1e9, 0.1), bytes: 1_000_000,
      closedForm: (k) => Math.max((k - 1) * serialPs(1_000_000, 1e9),
        serialPs(1_000_000, 2e9) + 100 + (k - 2) * serialPs(1_000_000, 1e9)),
    },
    {
      name: 'slower egress', config: link(1e9, 3e9, 200), bytes: 5000,
      closedForm: (k) => (k - 1) * serialPs(5000, 1e9) + 200_000,
    },
  ];

  for (const c of CASES) {
    for (const k of [2, 4, 8]) {
      it(`${c.name}: k = ${k}`, () => {
        const { lastDone, egressFree } = allToAll(k, c.config, c.bytes, new Rng(k));
        const expected = c.closedForm(k);
        expect(lastDone).toEqual(Array.from({ length: k }, () => expected));
        const tOut = serialPs(c.bytes, c.config.egressBytesPerS);
        expect(egressFree).toEqual(Array.from({ length: k }, () => (k - 1) * tOut));
      });
    }
  }

  it('the two ingress-slower cases really exercise both branches of the max', () => {
    const k = 4;
    const latencyBinds = serialPs(1000, 2e9) + 5_000_000 + (k - 2) * serialPs(1000, 1e9);
    expect(latencyBinds).toBeGreaterThan((k - 1) * serialPs(1000, 1e9));
    const ingressBinds = (k - 1) * serialPs(1_000_000, 1e9);
    expect(ingressBinds).toBeGreaterThan(serialPs(1_000_000, 2e9) + 100 + (k - 2) * serialPs(1_000_000, 1e9));
  });
});
