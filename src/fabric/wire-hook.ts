// The fabric's hook for link faults (DESIGN "Layers": the fabric has the hooks, faults/ the injectors). A hook
// says what the wire does to one message: a slower or later link, and the fate of each transmission of it. The
// sender's exchange books every transmission on its port (virtual time) and hands the fates to the transport,
// which plays them out with real bytes (reliable-link.ts): the receiver's CRC check asks for a corrupted copy
// again, a lost one is sent again when the sender's timer runs out, a second copy is discarded by its seq.
import type { Ps } from './virtual-time.js';

export type Fate = 'ok' | 'corrupt' | 'drop' | 'duplicate';

/** What the wire does to one message. */
export interface WireEffects {
  /** Fraction of the port's egress bandwidth the message gets (1: all). */
  bandwidth: number;
  /** Extra one-way latency and jitter. */
  delayPs: Ps;
  /** The fate of transmission `attempt` (0 first) whose first byte leaves at `outPs`. */
  fate(attempt: number, outPs: Ps): Fate;
  /** The planned faults in effect (their `faults:` indices), to report that they happened. */
  faults: readonly number[];
}

export interface WireHook {
  /** null: the message travels as the link model says, unwatched. */
  effects(src: number, dst: number, seq: number, step: number): WireEffects | null;
  /** How long the sender waits for an acknowledgement before it sends a lost transmission again. */
  readonly retransmitTimeoutPs: Ps;
  /** Transmissions after the first before the link is given up (MOEMU_ERR_LINK). */
  readonly retries: number;
  /** The sender's wall-clock wait for the acknowledgement of a lost transmission (reliable-link.ts). */
  readonly retransmitWallMs: number;
}

/** What recovering cost on one link in one step, as the sender booked it (deterministic: metrics.json). */
export interface LinkRecovery {
  step: number;
  link: string;
  messages: number;        // messages sent through faults on the link
  transmissions: number;   // every copy sent, retransmissions and duplicates included
  retransmits: number;
  corrupted: number;
  dropped: number;
  duplicated: number;
  extraBytes: number;      // bytes sent beyond one copy of each message
  addedPs: Ps;             // later egress ends than the first transmissions': retransmissions' and degraded time
  failed: number;          // messages whose every transmission failed (the link is given up)
}

/** What happened on a rank's reliable links, as the transport saw it (reliable-link.ts): wall-clock events, but
 * each fate causes exactly one, so in a run without restarts they match the fates booked. */
export interface WireCounters {
  transmissions: number;
  retransmissions: number;
  nacksSent: number;
  nacksReceived: number;
  timeouts: number;
  duplicatesDiscarded: number;
  acks: number;
}

export function noWireEvents(): WireCounters {
  return { transmissions: 0, retransmissions: 0, nacksSent: 0, nacksReceived: 0, timeouts: 0, duplicatesDiscarded: 0,
    acks: 0 };
}

/** The fates of one message from its first transmission to the one that got through (or the last try). */
export function playFates(effects: WireEffects, retries: number, send: (postedPs: Ps) => { outPs: Ps; egressEndPs: Ps },
                          firstPostedPs: Ps, recoveryPs: (fate: Fate, egressEndPs: Ps) => Ps):
    { fates: Fate[]; timing: { outPs: Ps; egressEndPs: Ps }; first: { outPs: Ps; egressEndPs: Ps } } {
  const fates: Fate[] = [];
  const first = send(firstPostedPs);
  let timing = first;
  for (let attempt = 0; ; attempt++) {
    const fate = effects.fate(attempt, timing.outPs);
    fates.push(fate);
    if (fate === 'ok' || fate === 'duplicate' || attempt === retries) break;
    timing = send(recoveryPs(fate, timing.egressEndPs));
  }
  return { fates, timing, first };
}

/** Whether a message with these fates got through. */
export function delivered(fates: readonly Fate[]): boolean {
  const last = fates[fates.length - 1];
  return last === 'ok' || last === 'duplicate';
}
