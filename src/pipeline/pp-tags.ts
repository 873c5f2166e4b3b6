// Tags of pipeline p2p messages: what tensor a message carries, named by the stage that receives it —
// `pp:act:<pipe>:<stage>:<mb>` is the input activation of stage `stage`, `pp:grad:<pipe>:<stage>:<mb>` the output
// gradient of stage `stage`, for micro-batch `mb` of pipe `pipe`. The executor writes them; checkers read them.

export type PpKind = 'act' | 'grad';

export interface PpTag { kind: PpKind; pipe: number; stage: number; mb: number }

const PREFIX = 'pp:';

export function ppTag(t: PpTag): string {
  return `${PREFIX}${t.kind}:${t.pipe}:${t.stage}:${t.mb}`;
}

/** The fields of a pipeline tag, or null for any other tag. */
export function parsePpTag(tag: string): PpTag | null {
  if (!tag.startsWith(PREFIX)) return null;
  const [kind, ...numbers] = tag.slice(PREFIX.length).split(':');
  if ((kind !== 'act' && kind !== 'grad') || numbers.length !== 3) return null;
  const [pipe, stage, mb] = numbers.map(Number);
  if (![pipe, stage, mb].every((n) => Number.isSafeInteger(n) && n >= 0)) return null;
  return { kind, pipe, stage, mb };
}
