// Message tags: what a message is, so that its receiver takes it for the receive that wants it (the k-th send from
// a to b with tag t is the k-th receive at b from a with tag t). Every tag moemu sends is built here.
//   collective   <group>/<name>#<instance>            one call of a collective on a group (all-to-all, all-reduce, …)
//   EP parts     <dispatch>:direct | :ib | :fwd:<o>  a dispatch's (or combine's) message to a node peer, over IB to
//                                                    the same local index, or forwarded for origin EP rank o
//   combine      <dispatch>/<name>                   a combine along a dispatch's layout (then its parts as above)
//   p2p          p2p:<a>-><b>#<n>                    the n-th point-to-point message from a to b
//   pipeline     pp:act|grad:<pipe>:<stage>:<mb>     a stage's input activation / output gradient of micro-batch mb
//   copy sums    pp-sum:<lo>-<hi>:g|l:<from>         gradients (g) or loads (l) two pipeline ranks sum after a step

export type EpPart = { kind: 'direct' } | { kind: 'ib' } | { kind: 'fwd'; origin: number };
export const DIRECT: EpPart = Object.freeze({ kind: 'direct' });
export const IB: EpPart = Object.freeze({ kind: 'ib' });

export function collectiveTag(group: string, name: string, instance: number): string {
  return `${group}/${name}#${instance}`;
}

export function epPartTag(base: string, part: EpPart): string {
  return part.kind === 'fwd' ? `${base}:fwd:${part.origin}` : `${base}:${part.kind}`;
}

/** The base and part of an EP message's tag, or null for any other tag. */
export function parseEpPartTag(tag: string): { base: string; part: EpPart } | null {
  const fwd = /^(.*):fwd:(\d+)$/.exec(tag);
  if (fwd) return { base: fwd[1], part: { kind: 'fwd', origin: Number(fwd[2]) } };
  const plain = /^(.*):(direct|ib)$/.exec(tag);
  return plain ? { base: plain[1], part: { kind: plain[2] as 'direct' | 'ib' } } : null;
}

export function combineTag(dispatchTag: string, name: string): string {
  return `${dispatchTag}/${name}`;
}

export function p2pTag(source: number, target: number, n: number): string {
  return `p2p:${source}->${target}#${n}`;
}

export type PpKind = 'act' | 'grad';
export interface PpTag { kind: PpKind; pipe: number; stage: number; mb: number }

const PP_PREFIX = 'pp:';

export function ppTag(t: PpTag): string {
  return `${PP_PREFIX}${t.kind}:${t.pipe}:${t.stage}:${t.mb}`;
}

/** The fields of a pipeline tag, or null for any other tag. */
export function parsePpTag(tag: string): PpTag | null {
  if (!tag.startsWith(PP_PREFIX)) return null;
  const [kind, ...numbers] = tag.slice(PP_PREFIX.length).split(':');
  if ((kind !== 'act' && kind !== 'grad') || numbers.length !== 3) return null;
  const [pipe, stage, mb] = numbers.map(Number);
  if (![pipe, stage, mb].every((n) => Number.isSafeInteger(n) && n >= 0)) return null;
  return { kind, pipe, stage, mb };
}

/** What pipeline rank `from` sends to its partner when two pipeline ranks sum their copies' gradients (g) or
 * loads (l). */
export function copySumTag(a: number, b: number, what: 'g' | 'l', from: number): string {
  return `pp-sum:${Math.min(a, b)}-${Math.max(a, b)}:${what}:${from}`;
}
