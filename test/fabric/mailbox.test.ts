// Goal: receives match (source, tag) in arrival order whether the messages came before or after the receive was
// posted, and a receive that waits too long names what it waited for.
import { describe, expect, it } from 'vitest';
import { Mailbox, type Incoming } from '../../src/fabric/mailbox.js';

function message(src: number, tag: string, n: number): Incoming {
  return { header: { src, dst: 0, tag, seq: n, bytes: 1, metadataBytes: 0, step: 0, outPs: 0, egressEndPs: 0 },
    link: 'nvlink', payload: Uint8Array.of(n), release: () => undefined };
}

describe('Mailbox', () => {
  it('takes already-queued messages in arrival order per (source, tag), the same key twice included', async () => {
    const box = new Mailbox(0);
    box.deliver(message(1, 'a', 10));
    box.deliver(message(2, 'a', 20));
    box.deliver(message(1, 'a', 11));
    const got = await box.takeAll([{ source: 1, tag: 'a' }, { source: 2, tag: 'a' }, { source: 1, tag: 'a' }], 1000,
      'x');
    expect(got.map((m) => m.payload[0])).toEqual([10, 20, 11]);
    expect(box.unclaimed).toBe(0);
  });

  it('waits for the missing ones when only some are queued, taking nothing twice', async () => {
    const box = new Mailbox(0);
    box.deliver(message(1, 'a', 10));
    const taking = box.takeAll([{ source: 1, tag: 'a' }, { source: 3, tag: 'b' }], 1000, 'x');
    box.deliver(message(3, 'b', 30));
    expect((await taking).map((m) => m.payload[0])).toEqual([10, 30]);
    expect(box.unclaimed).toBe(0);
  });

  it('hasAll counts repeats of one (source, tag) and takes nothing', () => {
    const box = new Mailbox(0);
    const wanted = [{ source: 1, tag: 'a' }, { source: 1, tag: 'a' }];
    expect(box.hasAll([{ source: 1, tag: 'a' }])).toBe(false);
    box.deliver(message(1, 'a', 10));
    expect(box.hasAll([{ source: 1, tag: 'a' }])).toBe(true);
    expect(box.hasAll(wanted)).toBe(false);
    box.deliver(message(1, 'a', 11));
    expect(box.hasAll(wanted)).toBe(true);
    expect(box.hasAll([...wanted, { source: 2, tag: 'a' }])).toBe(false);
    expect(box.unclaimed).toBe(2);
  });

  it('fails with a watchdog error naming the rank, the op and the missing sources', async () => {
    const box = new Mailbox(4);
    box.deliver(message(1, 'a', 10));
    await expect(box.takeAll([{ source: 1, tag: 'a' }, { source: 2, tag: 'z' }], 30, 'all-to-all'))
      .rejects.toMatchObject({ code: 'MOEMU_ERR_WATCHDOG', context: { rank: 4, op: 'all-to-all' },
        message: expect.stringMatching(/rank 2 \(z\)/) });
  });
});
