// Goal: the send window bounds bytes in flight, releases waiters in order as buffers come back, always lets one
// buffer go, and names the channel when nothing comes back within the watchdog time.
import { describe, expect, it } from 'vitest';
import { SendWindow } from '../../src/fabric/send-window.js';

const window = (bytesMax: number, watchdogMs = 1000) =>
  new SendWindow({ bytesMax, watchdogMs, rank: 3, link: 'nvlink to gpu 1' });

describe('SendWindow', () => {
  it('lets sends through while they fit, then makes them wait in order until buffers come back', async () => {
    const w = window(100);
    expect(w.reserve(60)).toBeUndefined();
    expect(w.reserve(40)).toBeUndefined();
    const order: string[] = [];
    const a = w.reserve(50)!.then(() => order.push('a'));
    const b = w.reserve(10)!.then(() => order.push('b'));   // would fit after a, but waits behind it
    expect(w.inFlightBytes).toBe(100);
    w.free(40);
    await Promise.resolve();
    expect(order).toEqual([]);                               // 60 + 50 > 100: a still waits, so b does too
    w.free(60);
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
    expect(w.inFlightBytes).toBe(60);
  });

  it('always lets one buffer go when nothing is in flight, however large', () => {
    expect(window(10).reserve(1 << 20)).toBeUndefined();
  });

  it('fails with a watchdog error naming the rank and the link when nothing comes back', async () => {
    const w = window(10, 50);
    w.reserve(10);
    await expect(w.reserve(5)).rejects
      .toMatchObject({ code: 'MOEMU_ERR_WATCHDOG', context: { rank: 3, link: 'nvlink to gpu 1' } });
  });
});
