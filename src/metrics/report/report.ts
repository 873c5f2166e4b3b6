// report.html of a run (DESIGN "Files a run writes"): one self-contained page drawn from metrics.json and the op
// records of one traced step — the pipeline timeline per GPU as in DualPipe's figure, overlap and bubble per rank,
// the loss curves, expert load and gate biases, link figures, emulated HBM, and a glossary of every figure. Pure
// and deterministic: the same run gives the same string, byte for byte.
import type { OpRecord } from '../../fabric/streams.js';
import { biasSection, expertsSection } from './experts.js';
import { faultsSection, type FaultFigures } from './faults.js';
import type { TrainingMetricsJson } from './figures.js';
import { renderGlossary } from './glossary.js';
import { section } from './html.js';
import { linksSection } from './links.js';
import { page } from './page.js';
import { hbmSection, lossSection, overlapSection, summarySection } from './sections.js';
import { timelineSection } from './timeline.js';

export type { TrainingMetricsJson } from './figures.js';
export { renderComparison } from './compare.js';

/** What a report is drawn from: a run's name, its metrics.json, and one traced step's op records. */
export interface ReportRun {
  name: string;
  /** The parsed metrics.json object (version 3). */
  metrics: TrainingMetricsJson & FaultFigures;
  /** The op records of one traced step of every rank (the report draws this step's timeline); null when none was
   * traced. */
  timeline: { step: number; ranks: { rank: number; records: OpRecord[] }[] } | null;
}

/** The sections of a report page, for its navigation. */
const NAV: readonly [string, string][] = [['summary', 'Summary'], ['timeline', 'Timeline'],
  ['overlap', 'Overlap & bubble'], ['loss', 'Loss'], ['experts', 'Expert load'], ['bias', 'Gate bias'],
  ['links', 'Links'], ['hbm', 'HBM'], ['glossary', 'Glossary']];

/** report.html of one run. */
export function renderReport(run: ReportRun): string {
  const m = run.metrics;
  const body = [summarySection(m), faultsSection(m), timelineSection(run.timeline, m.ranks),
    overlapSection(m, run.timeline?.step ?? null),
    lossSection(m), expertsSection(m), biasSection(m), linksSection(m), hbmSection(m),
    section('glossary', 'Glossary', 'What every figure on this page means (docs/metrics.md).', renderGlossary())]
    .join('');
  return page({ title: `moemu report — ${run.name}`, heading: run.name,
    sub: 'moemu run report: metrics.json (virtual time only) and one traced step\'s op records',
    nav: m.faults === undefined ? NAV : [NAV[0], ['faults', 'Faults'], ...NAV.slice(1)], body });
}
