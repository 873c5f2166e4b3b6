// What a rank's fabric reports to an observer (the checkers of test/checkers/, `moemu run --check`): every message
// as its exchange posts it and as its receiver takes it, with the virtual times the link model gave it. The fabric
// only emits these; what they must satisfy is the checkers' business (STYLE habit 18).
import type { OpLabel } from './streams.js';

export interface MessageEvent {
  step: number;
  src: number;
  dst: number;
  link: 'nvlink' | 'ib';
  tag: string;
  seq: number;
  bytes: number;
  metadataBytes: number;
  /** The link model's sender half: first byte out, last byte out. */
  outPs: number;
  egressEndPs: number;
  /** CRC-32 of the payload bytes: the same value at both ends means the same tensor arrived; null when the
   * observer did not ask for checksums (they cost a pass over every byte). */
  crc: number | null;
  /** The exchange that posted (or took) it, and that op's label. */
  op: string;
  label: OpLabel | null;
}

/** `postedPs`: when the exchange could post it (its start, or later for a store-and-forward row). */
export interface SentEvent extends MessageEvent { postedPs: number }

/** `postedPs`: when the receiving exchange started; `donePs`: when the message was fully received. */
export interface ReceivedEvent extends MessageEvent { postedPs: number; donePs: number }

export interface FabricObserver {
  /** Whether events must carry payload checksums (default: yes). */
  readonly checksums?: boolean;
  sent(event: SentEvent): void;
  received(event: ReceivedEvent): void;
}

/** One observer that passes every event to each of `observers` (checksums if any of them asks). */
export function fanOut(...observers: readonly FabricObserver[]): FabricObserver {
  return {
    checksums: observers.some((o) => o.checksums !== false),
    sent: (event) => { for (const o of observers) o.sent(event); },
    received: (event) => { for (const o of observers) o.received(event); },
  };
}

/** Collects a rank's events per step (what a program returns to its caller in check mode). */
export class MessageLog implements FabricObserver {
  sentEvents: SentEvent[] = [];
  receivedEvents: ReceivedEvent[] = [];

  sent(event: SentEvent): void {
    this.sentEvents.push(event);
  }

  received(event: ReceivedEvent): void {
    this.receivedEvents.push(event);
  }

  /** The events since the last call, cleared (once per step). */
  take(): { sent: SentEvent[]; received: ReceivedEvent[] } {
    const taken = { sent: this.sentEvents, received: this.receivedEvents };
    this.sentEvents = [];
    this.receivedEvents = [];
    return taken;
  }
}
