// The link section of report.html, from metrics.json's per-step `links` (per link class, the cluster's sums):
// how busy the senders' NVLink and IB ports were each step, and the EP payload the fabric carried beside FACTS
// §3's analytical count — the two bars of a pair should be equal.
import type { LinkClass } from '../link-figures.js';
import { groupedBars, lineChart } from './charts.js';
import type { TrainingMetricsJson } from './figures.js';
import { byteAxisUnit, PERCENT_AXIS } from './units.js';
import { esc, fmtBytes, fmtInt, fmtPs, fmtRatio, section, table } from './html.js';

const LINK_NAMES: Record<LinkClass, string> = { nvlink: 'NVLink', ib: 'IB' };
const LINK_COLOURS: Record<LinkClass, { measured: string; analytical: string }> = {
  nvlink: { measured: '#2f8f46', analytical: '#9fd48b' }, ib: { measured: '#2f6fb0', analytical: '#9cc3ea' },
};
const LINKS: readonly LinkClass[] = ['nvlink', 'ib'];

/** Utilisation per step, EP payload beside its analytical count, and the last step's figures per link class. */
export function linksSection(m: TrainingMetricsJson): string {
  const steps = m.steps.filter((s) => s.links !== undefined);
  if (steps.length === 0) return section('links', 'Links', 'The run has no link figures.', '');
  const xs = steps.map((s) => s.step);
  const utilisation = lineChart({ xs, yLabel: 'utilisation', yFrom: 0, fmt: fmtRatio, legend: true, width: 420,
    unit: PERCENT_AXIS,
    series: LINKS.map((l) => ({ name: LINK_NAMES[l], colour: LINK_COLOURS[l].measured,
      values: steps.map((s) => s.links[l].utilisation) })) });
  const epMax = Math.max(0, ...steps.flatMap((s) => LINKS.flatMap((l) => [s.links[l].epPayloadBytes,
    s.links[l].epAnalyticalPayloadBytes])));
  const ep = groupedBars({ groups: xs.map(String), yLabel: 'EP payload', xLabel: 'step', fmt: fmtBytes,
    unit: byteAxisUnit(epMax), width: 560, series: LINKS.flatMap((l) => [
      { name: `${LINK_NAMES[l]} measured`, colour: LINK_COLOURS[l].measured,
        values: steps.map((s) => s.links[l].epPayloadBytes) },
      { name: `${LINK_NAMES[l]} analytical`, colour: LINK_COLOURS[l].analytical,
        values: steps.map((s) => s.links[l].epAnalyticalPayloadBytes) }]) });
  const last = steps[steps.length - 1];
  const rows = LINKS.map((l) => {
    const f = last.links[l];
    return [LINK_NAMES[l], fmtInt(f.messages), fmtBytes(f.payloadBytes), fmtBytes(f.metadataBytes),
      fmtBytes(f.epPayloadBytes), fmtBytes(f.epAnalyticalPayloadBytes), fmtBytes(f.pipelinePayloadBytes),
      fmtBytes(f.reducePayloadBytes), fmtPs(f.egressBusyPs), fmtRatio(f.utilisation)].map(esc);
  });
  const body = `<div class="grid"><figure>${utilisation}<figcaption>Σ egress busy / (ports · span), one port ` +
    'per GPU.</figcaption></figure>' +
    `<figure>${ep}<figcaption>EP dispatch and combine payload: measured beside the analytical count.` +
    '</figcaption></figure></div>' +
    `<h3>Step ${last.step}, all ranks</h3>` +
    table(['link', 'messages', 'payload', 'metadata', 'EP payload', 'EP analytical', 'pipeline payload',
      'reduce payload', 'egress busy', 'utilisation'], rows);
  return section('links', 'Links', 'What the ranks sent over NVLink (inside a node) and IB (between nodes).', body);
}
