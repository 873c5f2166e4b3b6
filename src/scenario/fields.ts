// The scenario schema's field builders: each one carries the sentence that describes it, so a problem's message
// names the expected type, range or accepted values and load.ts only has to put the YAML path in front of it.
import * as z from 'zod';

/** `value` as a message shows it: strings quoted, lists and mappings by kind, long text cut. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

export const mustBe = (expected: string) => (issue: { input?: unknown }) =>
  `must be ${expected}, got ${describeValue(issue.input)}`;

export function integer(range: { min: number; max?: number }) {
  const expected = range.max === undefined ? `an integer ≥ ${range.min}`
    : `an integer in ${range.min} .. ${range.max}`;
  const error = mustBe(expected);
  // zod's int() also refuses integers past 2^53 − 1 (not exact in a double): say so rather than repeat the range.
  const intError = range.max === undefined
    ? (issue: { code?: string; input?: unknown }) => (issue.code === 'too_big'
      ? mustBe(`${expected} and ≤ ${Number.MAX_SAFE_INTEGER} (exact in a double)`)(issue) : error(issue))
    : error;
  const base = z.number({ error }).int({ error: intError }).min(range.min, { error });
  return range.max === undefined ? base : base.max(range.max, { error });
}

/** A finite number; `above` is exclusive, `min` inclusive, `below` exclusive. */
export function real(range: { above?: number; min?: number; below?: number }) {
  const parts = [
    range.above !== undefined ? `> ${range.above}` : range.min !== undefined ? `≥ ${range.min}` : '',
    range.below !== undefined ? `< ${range.below}` : '',
  ].filter((p) => p !== '');
  const error = mustBe(parts.length === 0 ? 'a number' : `a number ${parts.join(' and ')}`);
  let schema = z.number({ error });
  if (range.above !== undefined) schema = schema.gt(range.above, { error });
  if (range.min !== undefined) schema = schema.min(range.min, { error });
  if (range.below !== undefined) schema = schema.lt(range.below, { error });
  return schema;
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: mustBe(`one of ${values.join(', ')}`) });
}

/** A strict mapping: an unknown key's message lists the accepted ones (load.ts splits it per key). */
export function mapping<const S extends z.core.$ZodLooseShape>(shape: S) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => issue.code === 'unrecognized_keys'
      ? `unknown key; accepted keys: ${keys}`
      : `must be a mapping with keys ${keys}, got ${describeValue(issue.input)}`,
  });
}

/** An optional integer ≥ 1: sizes, counts, and rates per second (integers, so that virtual time computes exact
 * integer picoseconds: DESIGN.md "Virtual time"). */
export function positive() {
  return integer({ min: 1 }).optional();
}

export function flag() {
  return z.boolean({ error: mustBe('true or false') });
}
