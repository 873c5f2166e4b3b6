// An expert-parallel group: EP rank e = (node − first node) × G + gpu (DESIGN "Rank layout and data"), so the GPUs
// with one local index across the group's nodes are each other's IB peers (FACTS §2: a token crosses IB to the
// GPU with the same local index, which forwards it over NVLink).
import { moemuError } from '../errors.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import { originRows } from './dispatch-accounting.js';
import { expertRank, type EpTopology } from './dispatch-layout.js';
import { Group } from './group.js';

export class EpGroup {
  readonly group: Group;
  readonly topology: EpTopology;
  readonly nodes: number;
  /** Payload bytes the dispatches and combines of this rank's tokens put on each link class by FACTS §3's count
   * (`countRows`), beside the bytes the fabric measures; `takeAnalytical` reads and clears them once a step. */
  #analytical = { ib: 0, nvlink: 0 };

  /** `ranks[e]` = the global rank of EP rank e. */
  constructor(fabric: RankFabric, ranks: readonly number[], gpusPerNode: number, experts: number, name = 'ep') {
    this.group = new Group(fabric, ranks, name);
    this.topology = { ranks: ranks.length, gpusPerNode, experts };
    if (ranks.length % gpusPerNode !== 0) {
      throw moemuError('MOEMU_ERR_CONFIG', `EP group ${name}: ${ranks.length} ranks are not whole nodes ` +
        `of ${gpusPerNode} GPUs`);
    }
    this.nodes = ranks.length / gpusPerNode;
  }

  get fabric(): RankFabric { return this.group.fabric; }
  get me(): number { return this.group.index; }
  get size(): number { return this.group.size; }
  get gpusPerNode(): number { return this.topology.gpusPerNode; }
  get expertsPerRank(): number { return this.topology.experts / this.topology.ranks; }

  nodeOf(e: number): number { return Math.floor(e / this.gpusPerNode); }
  localOf(e: number): number { return e % this.gpusPerNode; }
  at(node: number, local: number): number { return node * this.gpusPerNode + local; }
  global(e: number): number { return this.group.ranks[e]; }
  rankOfExpert(expert: number): number { return expertRank(this.topology, expert); }

  /** Adds one transfer of this rank's tokens' rows (a dispatch, or a combine along its layout) to the analytical
   * count: the rows each link class carries for them, `rowBytes` payload bytes each. */
  countRows(topk: Int32Array, K: number, rowBytes: number): void {
    const rows = originRows(this.topology, this.me, topk, K);
    this.#analytical.ib += rows.ib * rowBytes;
    this.#analytical.nvlink += rows.nvlink * rowBytes;
  }

  takeAnalytical(): { ib: number; nvlink: number } {
    const taken = this.#analytical;
    this.#analytical = { ib: 0, nvlink: 0 };
    return taken;
  }

  /** EP ranks of the own node other than me, ascending. */
  nodePeers(): number[] {
    const a = this.nodeOf(this.me);
    return Array.from({ length: this.gpusPerNode }, (_, l) => this.at(a, l)).filter((e) => e !== this.me);
  }

  /** Peers in the order sends leave: rotated to start after me (i+1, i+2, …), as NCCL and DeepEP stagger their
   * peers, so that in each egress slot every rank receives one message (no incast on the lowest ranks). */
  sendOrder(peers: readonly number[]): number[] {
    const key = (e: number) => (e - this.me + this.size) % this.size;
    return [...peers].sort((a, b) => key(a) - key(b));
  }

  /** The GPUs with my local index on every other node, ascending: my IB peers. */
  ibPeers(): number[] {
    const g = this.localOf(this.me);
    return Array.from({ length: this.nodes }, (_, b) => this.at(b, g)).filter((e) => e !== this.me);
  }
}
