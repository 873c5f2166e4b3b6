// Reading a trace back: the op records its slices stand for, exactly (the slices' args keep the picoseconds and
// the label; the process and thread names say the rank and the stream). Tests use it to check that nothing of a
// record is lost on the way into trace.json; tools can use it to compute figures from a trace file.
import { moemuError } from '../errors.js';
import { STREAM_NAMES, type OpLabel, type OpRecord, type Pass, type Phase, type ScheduleOpRef, type StreamName,
} from '../fabric/streams.js';
import type { ChromeTrace } from './trace.js';
import type { TraceEvent } from './trace-tracks.js';

/** The `cat` of the slices that are op records (the others are parents, `schedule`). */
export const SLICE_CATEGORIES: readonly string[] = STREAM_NAMES;

/** The op records of every (rank, step), by rank then step; each one's records by start, end, stream, name. */
export function recordsFromTrace(trace: ChromeTrace): { rank: number; step: number; records: OpRecord[] }[] {
  const rankOfPid = new Map<number, number>();
  const streamOfTid = new Map<number, StreamName>();
  for (const e of trace.traceEvents) {
    if (e.ph !== 'M') continue;
    if (e.name === 'process_sort_index') rankOfPid.set(e.pid, e.args!.sort_index as number);
    const stream = e.args?.name as StreamName;
    if (e.name === 'thread_name' && STREAM_NAMES.includes(stream)) streamOfTid.set(e.tid, stream);
  }
  const groups = new Map<string, { rank: number; step: number; records: OpRecord[] }>();
  for (const e of trace.traceEvents) {
    if (e.ph !== 'X' || !SLICE_CATEGORIES.includes(e.cat ?? '')) continue;
    const record = recordOf(e, rankOfPid.get(e.pid), streamOfTid.get(e.tid));
    const key = `${record.rank}/${record.step}`;
    const group = groups.get(key) ?? { rank: record.rank, step: record.step, records: [] };
    group.records.push(record);
    groups.set(key, group);
  }
  const order = (a: OpRecord, b: OpRecord) => a.startPs - b.startPs || a.endPs - b.endPs ||
    STREAM_NAMES.indexOf(a.stream) - STREAM_NAMES.indexOf(b.stream) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return [...groups.values()].sort((a, b) => a.rank - b.rank || a.step - b.step)
    .map((g) => ({ ...g, records: g.records.sort(order) }));
}

function recordOf(e: TraceEvent, rank: number | undefined, stream: StreamName | undefined): OpRecord {
  const a = e.args ?? {};
  const int = (key: string, fallback?: number): number => {
    const v = a[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw moemuError('MOEMU_ERR_FILE', `slice "${e.name}" at ${e.ts} µs has no integer args.${key}`);
    }
    return v;
  };
  if (rank === undefined || stream === undefined || stream !== e.cat) {
    throw moemuError('MOEMU_ERR_FILE', `slice "${e.name}" at ${e.ts} µs is on no named rank and stream ` +
      `(pid ${e.pid}, tid ${e.tid})`);
  }
  const label: OpLabel | null = a.phase === undefined ? null : {
    sched: a.op === undefined ? null : parseScheduleOp(String(a.op)),
    pass: (a.pass ?? null) as Pass | null,
    phase: a.phase as Phase,
    layer: a.layer === undefined ? null : int('layer'),
  };
  return { rank, stream, name: e.name, startPs: int('startPs'), endPs: int('endPs'),
    payloadBytes: int('payloadBytes', 0), metadataBytes: int('metadataBytes', 0), step: int('step'), label };
}

const CHUNK_MB = String.raw`(\d+)\.(\d+)`;
const SINGLE = new RegExp(String.raw`^([FBW])${CHUNK_MB}(z?)$`);
const PAIR = new RegExp(String.raw`^FB\(${CHUNK_MB}\|${CHUNK_MB}\)$`);

/** The inverse of `formatOp` (src/pipeline/format.ts): `F0.1`, `B1.0`, `B1.0z`, `W1.0`, `FB(0.3|1.1)`. */
export function parseScheduleOp(text: string): ScheduleOpRef {
  const pair = PAIR.exec(text);
  if (pair) {
    return { op: 'FB', f: { chunk: Number(pair[1]), mb: Number(pair[2]) },
      b: { chunk: Number(pair[3]), mb: Number(pair[4]) } };
  }
  const single = SINGLE.exec(text);
  if (!single || (single[4] === 'z' && single[1] !== 'B')) {
    throw moemuError('MOEMU_ERR_FILE', `"${text}" is not a schedule op (F0.1, B1.0, B1.0z, W1.0, FB(0.3|1.1))`);
  }
  const [chunk, mb] = [Number(single[2]), Number(single[3])];
  if (single[1] === 'F') return { op: 'F', chunk, mb };
  if (single[1] === 'W') return { op: 'W', chunk, mb };
  return single[4] === 'z' ? { op: 'B', chunk, mb, zb: true } : { op: 'B', chunk, mb };
}
