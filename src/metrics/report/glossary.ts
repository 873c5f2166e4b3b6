// The glossary at the end of report.html: every figure the page shows, defined as docs/metrics.md and DESIGN
// "Metrics" define it, so a reader never has to guess what a bar or a percentage means.
import { esc } from './html.js';

/** [term, definition] in the order the page meets them. */
export const GLOSSARY: readonly (readonly [string, string])[] = Object.freeze([
  ['virtual time', 'emulated time in integer picoseconds (1 ms = 10⁹ ps), the same on every run of a scenario; ' +
    'wall-clock time is not shown here. The run\'s virtual time is the last step\'s last op end − the first ' +
    'step\'s first op start.'],
  ['span', 'a step\'s makespan: its last op end − its first op start over all ranks, the same for every rank. ' +
    'Steps have no barrier between them, so consecutive spans may overlap a little.'],
  ['schedule op', 'one op of the pipeline schedule (DESIGN "Schedule export"): Fc.m = forward of local chunk c, ' +
    'micro-batch m (within its direction); Bc.m = full backward, Bc.mz = backward for input only with its weight ' +
    'gradients deferred; Wc.m = that deferred weight-gradient work; FB(c.m|c.m) = F&B, a forward overlapped with ' +
    'a full backward. A block spans the op\'s first to its last compute record.'],
  ['after the schedule', 'the gradient reductions (EP all-reduce of gradients and loads, the sum of a stage\'s two ' +
    'copies, the global-norm all-reduce) on the comm stream and the optimizer (norm, clipping, AdamW) on the ' +
    'compute stream.'],
  ['comm phase', 'dispatch / combine: the EP all-to-alls of a MoE layer (forward or backward); p2p: a pipeline ' +
    'batch of activation and gradient sends and receives committed before a schedule op; reduce: the reductions ' +
    'after the schedule.'],
  ['C (compute busy)', 'length of the union of a rank\'s compute-stream op intervals in the step.'],
  ['M (comm busy)', 'length of the union of its comm-stream op intervals, from op start to op end including time ' +
    'spent waiting for peers.'],
  ['hidden comm', '|comm ∩ compute|: comm time with compute running under it.'],
  ['exposed comm', 'M − hidden: comm time with no compute under it.'],
  ['bubble', 'span − C: time the rank\'s compute stream is not busy. Always bubble = exposed + idle.'],
  ['bubble fraction', 'bubble / span for a rank; for the cluster and the run Σ bubble / (ranks · span), summed ' +
    'over the steps too.'],
  ['idle', 'span − |C ∪ M|: neither stream busy.'],
  ['overlap efficiency', 'hidden / M over the whole step; "–" when M = 0. Cluster and run figures are ratios of ' +
    'sums (Σ hidden / Σ M), never means of per-rank ratios.'],
  ['F&B overlap efficiency', 'fbHidden / fbComm: of the comm of the overlapped F&B chunks (their EP dispatches and ' +
    'combines), the share under any compute op of the rank — the figure DeepSeek\'s trace measures. "–" when the ' +
    'rank ran no F&B comm (1F1B, ZB1P).'],
  ['compute utilisation', 'Σ C / (ranks · span) = 1 − bubble fraction.'],
  ['–', 'no figure: a ratio whose denominator is 0 (0/0 is no figure, neither 0 nor any other number).'],
  ['loss: main, MTP, balance, total', 'the step\'s batch loss in nats, each term summed over its micro-batches: ' +
    'main = next-token cross-entropy; MTP = the multi-token-prediction head\'s cross-entropy without its weight; ' +
    'balance = the sequence-wise balance loss (α included); total = main + mtpWeight · MTP + balance.'],
  ['tokens per virtual second', 'batchSize · seqLen / span of a step, in virtual seconds.'],
  ['expert load', 'tokens routed to an expert in the step\'s whole batch (the global loads the gate-bias update ' +
    'used). Shown as load / mean load of its layer (1 = balanced).'],
  ['load imbalance', 'max / mean tokens per expert of a layer; the step\'s figure is its worst MoE layer.'],
  ['gate bias', 'the auxiliary-loss-free balancing bias of each routed expert after the step\'s update: raised ' +
    'for under-loaded experts and lowered for over-loaded ones by biasUpdateSpeed; it affects which experts are ' +
    'chosen, not the gate weights.'],
  ['payload bytes', 'bytes of tensor rows (activations, gradients, expert rows) a rank sent, in the dtype they ' +
    'travelled in (bf16 halves, FP8 quarters an f32 run\'s), metadata excluded; split into EP (dispatch/combine), ' +
    'pipeline (between stages) and reduce (after the schedule).'],
  ['metadata bytes', 'the rest of what was sent: token indices, expert ids, gate weights, the gate-value gradients ' +
    'of backward combines, scales, headers.'],
  ['messages', 'messages sent over a link class in the step, all ranks together.'],
  ['link utilisation', 'Σ egress busy time of the messages on a link class / (ports · span), one port per GPU: ' +
    'how busy the senders\' NVLink or IB ports were. "–" when the span is 0.'],
  ['analytical count', 'the EP payload a link class must carry by FACTS §3\'s accounting, from the step\'s routing: ' +
    'per token, IB one row to each remote node holding one of its experts, NVLink one row from that node\'s ' +
    'forwarding GPU to each other destination GPU there and one from the source to each destination GPU of its ' +
    'own node; combine moves the same rows back. Beside it, the EP payload the fabric measured: equal when the ' +
    'emulated all-to-alls move exactly those rows.'],
  ['HBM peak', 'the most emulated HBM a rank held at once over the run, against its capacity (cluster.gpu.hbmBytes).'],
  ['HBM kinds', 'parameters, gradients, optimizer (AdamW\'s two moments), activations (saved by forward chunks, ' +
    'freed by their backward or W) and buffers. Each kind\'s own peak is shown, so the kinds can add up to more ' +
    'than the peak.'],
  ['peak live activations', 'the most forward chunks (chunk, micro-batch) whose activations a rank held at once.'],
]);

/** The glossary as a definition list (only the terms in `only`, when given). */
export function renderGlossary(only?: readonly string[]): string {
  const entries = only ? GLOSSARY.filter(([term]) => only.includes(term)) : GLOSSARY;
  return `<dl class="glossary">${entries.map(([term, def]) => `<dt>${esc(term)}</dt><dd>${esc(def)}</dd>`)
    .join('\n')}</dl>`;
}
