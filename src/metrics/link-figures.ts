// Link figures (DESIGN "Metrics": per link, payload and metadata bytes separately, utilisation, and the EP payload
// beside FACTS §3's analytical count). A rank tallies what it sends as its fabric reports it — no checksums, a few
// additions per message — and returns one small object per step; the metrics sum them over the ranks.
import { parseEpPartTag, parsePpTag } from '../comm/tags.js';
import type { FabricObserver, SentEvent } from '../fabric/observer.js';
import type { Ps } from '../fabric/virtual-time.js';

export type LinkClass = 'nvlink' | 'ib';
export const LINK_CLASSES: readonly LinkClass[] = Object.freeze(['nvlink', 'ib']);

/** What one rank sent over one link class in one step (or, summed, the cluster). */
export interface LinkAmounts {
  messages: number;
  /** Tensor bytes (rows, activations, gradients), in the dtype they travelled in. */
  payloadBytes: number;
  /** Indices, weights, scales of combines' gate gradients, headers. */
  metadataBytes: number;
  /** Of the payload: EP dispatch and combine (forward and backward). */
  epPayloadBytes: number;
  /** Of the payload: pipeline activations and gradients between stages. */
  pipelinePayloadBytes: number;
  /** Of the payload: the gradient, load and norm reductions after the schedule. */
  reducePayloadBytes: number;
  /** Σ over the messages of their egress time (first byte out to last byte out): the port's busy time. */
  egressBusyPs: Ps;
}

export type RankTraffic = Record<LinkClass, LinkAmounts>;

export function noTraffic(): LinkAmounts {
  return { messages: 0, payloadBytes: 0, metadataBytes: 0, epPayloadBytes: 0, pipelinePayloadBytes: 0,
    reducePayloadBytes: 0, egressBusyPs: 0 };
}

/** Tallies a rank's sent messages per link class, step by step (`take` once a step). */
export class TrafficTally implements FabricObserver {
  readonly checksums = false;
  #step: RankTraffic = { nvlink: noTraffic(), ib: noTraffic() };

  sent(e: SentEvent): void {
    const a = this.#step[e.link];
    const payload = e.bytes - e.metadataBytes;
    a.messages += 1;
    a.payloadBytes += payload;
    a.metadataBytes += e.metadataBytes;
    a.egressBusyPs += e.egressEndPs - e.outPs;
    if (parseEpPartTag(e.tag) !== null) a.epPayloadBytes += payload;
    else if (parsePpTag(e.tag) !== null) a.pipelinePayloadBytes += payload;
    else a.reducePayloadBytes += payload;
  }

  received(): void {
    // what a rank receives another rank sent: counted there
  }

  take(): RankTraffic {
    const taken = this.#step;
    this.#step = { nvlink: noTraffic(), ib: noTraffic() };
    return taken;
  }
}

/** The cluster's figures of one link class in one step: the ranks' amounts summed, the EP payload's analytical
 * count beside the measured one, and utilisation = Σ egress busy / (ports · span), one port per GPU. */
export interface LinkFigures extends LinkAmounts {
  epAnalyticalPayloadBytes: number;
  utilisation: number | null;
}

export function linkFigures(ranks: readonly { traffic: RankTraffic; analytical: Record<LinkClass, number> }[],
                            spanPs: Ps): Record<LinkClass, LinkFigures> {
  const of = (link: LinkClass): LinkFigures => {
    const total = noTraffic();
    let analytical = 0;
    for (const r of ranks) {
      const a = r.traffic[link];
      total.messages += a.messages;
      total.payloadBytes += a.payloadBytes;
      total.metadataBytes += a.metadataBytes;
      total.epPayloadBytes += a.epPayloadBytes;
      total.pipelinePayloadBytes += a.pipelinePayloadBytes;
      total.reducePayloadBytes += a.reducePayloadBytes;
      total.egressBusyPs += a.egressBusyPs;
      analytical += r.analytical[link];
    }
    const portTime = ranks.length * spanPs;
    return { ...total, epAnalyticalPayloadBytes: analytical,
      utilisation: portTime === 0 ? null : total.egressBusyPs / portTime };
  };
  return { nvlink: of('nvlink'), ib: of('ib') };
}
