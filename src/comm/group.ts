// A communicator: the ranks taking part in collectives (the whole world, an EP group, a pipeline pair) and this
// rank's index in it. Every rank calls the group's collectives in the same order, so per-name instance counters
// give matching tags on every rank without any coordination.
import { moemuError } from '../errors.js';
import type { RankFabric } from '../fabric/rank-fabric.js';
import { collectiveTag } from './tags.js';

export class Group {
  readonly index: number;
  readonly #instances = new Map<string, number>();

  constructor(readonly fabric: RankFabric, readonly ranks: readonly number[], readonly name: string) {
    this.index = ranks.indexOf(fabric.rank);
    if (this.index < 0) throw moemuError('MOEMU_ERR_INTERNAL',
      `rank ${fabric.rank} is not in group ${name} [${ranks}]`);
    if (new Set(ranks).size !== ranks.length) throw moemuError('MOEMU_ERR_INTERNAL',
      `group ${name} repeats a rank: [${ranks}]`);
  }

  get size(): number {
    return this.ranks.length;
  }

  /** A tag unique to this collective call: the same on every member, because all call in the same order. */
  nextTag(collective: string): string {
    const n = this.#instances.get(collective) ?? 0;
    this.#instances.set(collective, n + 1);
    return collectiveTag(this.name, collective, n);
  }

  /** How many calls of each collective the group has made (a checkpoint keeps them, so tags go on the same). */
  instances(): [string, number][] {
    return [...this.#instances].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  restoreInstances(instances: readonly [string, number][]): void {
    this.#instances.clear();
    for (const [collective, n] of instances) this.#instances.set(collective, n);
  }

  rankAt(index: number): number {
    return this.ranks[((index % this.size) + this.size) % this.size];
  }
}
