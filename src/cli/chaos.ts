// `moemu chaos scenario.yaml --faults 50 --seed S [--fleet 16384]`: a seeded campaign of mixed faults
// (faults/campaign.ts). The scenario runs fault-free, then with the campaign's faults under a checkpoint and restart
// policy; each fault's fate is printed (metrics/chaos-log.ts) and the final parameters and losses are compared
// with the fault-free run's. Writes <out>/<name>-chaos/: fault-free/ and faults/ (run folders as `moemu run`
// writes them), campaign.yaml (the faulty run as a scenario: `moemu run` replays it) and chaos.json (the fault
// log). A campaign fails (exit 3, or the run's own code when it gave up) when a fault was not injected or not
// detected or the result differs, and its last line is the command that reproduces it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { MoemuError, moemuError } from '../errors.js';
import { formatPs } from '../fabric/virtual-time.js';
import { campaignSteps, fleetScale, LLAMA3_FLEET, LLAMA3_PER_GPU_HOUR, planCampaign, type CampaignFault,
  type CampaignRequest } from '../faults/campaign.js';
import { chaosFates, firstLossDifference, type ChaosFate, type LoggedFault } from '../metrics/chaos-log.js';
import { FINAL_FILE } from '../runtime/checkpoints.js';
import { prepareRunFolder, writeRunFile, writeRunFolder } from '../runtime/run-folder.js';
import { checkLayout, detectionOf, runTraining, type TrainingRun } from '../runtime/training-run.js';
import { parseScenarioSource, readScenarioFile, scenarioTextWith } from '../scenario/load.js';
import { parallelOf, type Scenario } from '../scenario/schema.js';
import { integerFlag, runSettings, startRunFolder, type RunSource } from './run.js';

interface ChaosFlags { faults: string; seed: string; fleet?: string; steps?: string; set: string[]; out: string;
  quiet?: boolean }

/** A GPU thread that hangs is declared hung after this long in a campaign (the scenario's `detection.hangMs`
 * wins): long enough for a thread setting up its rank on a loaded machine (nothing recorded yet), short enough
 * for a campaign of hangs. */
const CAMPAIGN_HANG_MS = 5000;
export const CHAOS_FILES = { log: 'chaos.json', scenario: 'campaign.yaml', clean: 'fault-free', faulty: 'faults' };
const CHAOS_LOG_VERSION = 1;

export function addChaosCommand(program: Command): void {
  program
    .command('chaos <scenario>')
    .description('a seeded campaign of mixed faults: the scenario fault-free and with the faults (checkpoints and ' +
      'restarts added), each fault\'s fate, the final parameters compared; write <out>/<name>-chaos/')
    .option('--faults <n>', 'how many faults', '50')
    .option('--seed <n>', 'the campaign\'s seed: kinds, steps, victims, triggers and magnitudes', '1')
    .option('--fleet <gpus>', 'draw kinds and arrivals from Llama 3\'s interruptions at the rate of a fleet of ' +
      'this many GPUs, compressed into the run (FACTS §8)')
    .option('--steps <n>', 'override training.steps (a campaign lengthens the run to a step per fault that ends ' +
      'an attempt)')
    .option('--set <path=value>', 'override a scenario field (repeatable)', (v: string, all: string[]) => [...all, v],
      [])
    .option('--out <dir>', 'directory that gets <name>-chaos/', 'runs')
    .option('--quiet', 'print nothing but errors')
    .addHelpText('after', '\nWithout --fleet the kinds come in turn (every kind once per 13 faults, partitions ' +
      'alternating between a cut and one that heals); with it, 419 interruptions in 54 days on 16 384 GPUs by ' +
      'cause. The scenario must have no faults: of its own. Exit 3 when a fault is not detected or the result ' +
      'differs from the fault-free run.\n\nExamples:\n' +
      '  moemu chaos scenarios/default.yaml --faults 50 --seed 7\n' +
      '  moemu chaos scenarios/default.yaml --faults 20 --fleet 16384')
    .action((file: string, flags: ChaosFlags) => runChaos(file, flags));
}

async function runChaos(file: string, flags: ChaosFlags): Promise<void> {
  const say = (line: string) => { if (!flags.quiet) process.stdout.write(`${line}\n`); };
  const request = requestOf(flags);
  const reproduce = reproduceLine(file, flags);
  const text = readScenarioFile(file);
  const settings = runSettings(file, { steps: flags.steps, set: flags.set });
  const base = parseScenarioSource(text, file, settings).scenario;
  checkCampaignScenario(base, file);
  const steps = campaignSteps(request, base.training.steps);
  if (steps > base.training.steps) settings.push(`training.steps=${steps}`);
  const dir = prepareRunFolder(flags.out, `${base.name}-chaos`);
  say(`chaos: ${base.name}: ${request.faults} fault(s), seed ${request.seed}, ${steps} step(s)` +
    (steps > base.training.steps ? ` (lengthened from ${base.training.steps}: a step for each fault that ends an ` +
      'attempt)' : ''));
  if (request.fleet !== undefined) say(fleetLine(request.fleet, request.faults, steps));

  const cleanScenario = parseScenarioSource(text, file, settings).scenario;
  const clean = await train(cleanScenario, { file, text, settings }, prepareRunFolder(dir, CHAOS_FILES.clean),
    [1, steps]);
  say(`fault-free: ${runLine(clean)}`);

  const spans = clean.metrics.steps.map((s) => s.spanPs).sort((a, b) => a - b);
  const campaign = planCampaign(request, { cluster: base.cluster, pipeline: parallelOf(base).pipeline, steps,
    stepUs: spans[Math.floor(spans.length / 2)] / 1e6,
    messagesPerStep: { ib: Math.min(...clean.metrics.steps.map((st) => st.links.ib.messages)),
      nvlink: Math.min(...clean.metrics.steps.map((st) => st.links.nvlink.messages)) },
    retransmitTimeoutUs: detectionOf(base).retransmitTimeoutUs });
  const campaignFile = join(dir, CHAOS_FILES.scenario);
  const campaignText = scenarioTextWith(text, [...settings, ...campaignSettings(base, campaign)]);
  writeRunFile(dir, CHAOS_FILES.scenario, `# moemu chaos campaign: ${reproduce}\n${campaignText}`);
  const faulty = parseScenarioSource(campaignText, campaignFile).scenario;
  say(`faults: ${campaign.filter((f) => f.endsAttempt).length} of ${campaign.length} end an attempt; ` +
    `checkpoints every ${faulty.checkpoint!.every} step(s), up to ${faulty.restart!.maxRestarts} restart(s)`);
  let run: Awaited<ReturnType<typeof train>>;
  try {
    run = await train(faulty, { file: campaignFile, text: campaignText, settings: [] },
      prepareRunFolder(dir, CHAOS_FILES.faulty), [1, steps], (line) => say(`  ${line}`));
  } catch (error) {
    if (!(error instanceof MoemuError)) throw error;
    // the context stays in the first lines: the last one is the command line alone
    throw moemuError(error.code, `${error.message}\nthe campaign's faulty run failed (${campaignFile})\n` +
      `reproduce: ${reproduce}`);
  }
  say(`with faults: ${runLine(run)}`);
  const verdict = judge(clean, run, campaign, dir);
  writeRunFile(dir, CHAOS_FILES.log, `${JSON.stringify({ version: CHAOS_LOG_VERSION, command: reproduce,
    faults: request.faults, seed: request.seed, fleet: request.fleet ?? null, steps, ...verdict.figures,
    fates: verdict.fates }, null, 2)}\n`);
  for (const line of verdict.lines) say(line);
  say(`wrote ${dir}/: ${CHAOS_FILES.clean}/, ${CHAOS_FILES.faulty}/, ${CHAOS_FILES.scenario}, ${CHAOS_FILES.log}`);
  if (verdict.failures.length > 0) {
    throw moemuError('MOEMU_ERR_EXPECTATION', `the chaos campaign failed:\n${verdict.failures.join('\n')}\n` +
      `reproduce: ${reproduce}`);
  }
}

function requestOf(flags: ChaosFlags): CampaignRequest {
  const faults = integerFlag('--faults', flags.faults, 1);
  const seed = integerFlag('--seed', flags.seed, 0);
  if (seed > 2 ** 32 - 1) throw moemuError('MOEMU_ERR_CONFIG', `--seed must be below 2^32, got ${seed}`,
    { path: '--seed' });
  return { faults, seed, ...(flags.fleet === undefined ? {} : { fleet: integerFlag('--fleet', flags.fleet, 1) }) };
}

/** The command line that runs the same campaign (--out and --quiet change no fate). */
function reproduceLine(file: string, flags: ChaosFlags): string {
  const quote = (s: string) => (/^[\w./=:,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return ['moemu', 'chaos', file, '--faults', flags.faults, '--seed', flags.seed,
    ...(flags.fleet === undefined ? [] : ['--fleet', flags.fleet]),
    ...(flags.steps === undefined ? [] : ['--steps', flags.steps]),
    ...flags.set.flatMap((s) => ['--set', s])].map(quote).join(' ');
}

function checkCampaignScenario(s: Scenario, file: string): void {
  checkLayout(s, file);
  if ((s.faults ?? []).length > 0) {
    throw moemuError('MOEMU_ERR_CONFIG', `${file}: a chaos campaign draws its own faults; the scenario has ` +
      `${s.faults!.length} in faults: (remove them, or run it with moemu run)`, { path: 'faults' });
  }
  if (s.cluster.nodes * s.cluster.gpusPerNode < 2) {
    throw moemuError('MOEMU_ERR_CONFIG', `${file}: a chaos campaign needs at least two GPUs (links to fault)`,
      { path: 'cluster' });
  }
}

/** The faults, and the policy that lets the run survive them where the scenario has none of its own. */
function campaignSettings(s: Scenario, campaign: readonly CampaignFault[]): string[] {
  const ending = campaign.filter((f) => f.endsAttempt).length;
  return [`faults=${JSON.stringify(campaign.map((f) => f.spec))}`,
    ...(s.checkpoint ? [] : ['checkpoint={"every": 1}']),
    ...(s.restart ? [] : [`restart={"maxRestarts": ${ending + 1}, "backoffMs": 0}`]),
    ...(s.detection ? [] : [`detection={"hangMs": ${CAMPAIGN_HANG_MS}}`])];
}

/** One run into its prepared folder (`moemu run --resume` can go on with it). */
async function train(s: Scenario, source: RunSource, runDir: string, traceSteps: number[],
                     onRestart?: (line: string) => void): Promise<TrainingRun & { elapsedMs: number }> {
  startRunFolder(runDir, source);
  const started = performance.now();
  const run = await runTraining(s, { file: source.file, runDir, traceSteps,
    onRestart: (r) => onRestart?.(`restart ${r.attempt}: ${r.code}: ${r.error.split('\n')[0]}; going on after ` +
      `step ${r.resumedAfterStep}`) });
  writeRunFolder(runDir, run);
  return { ...run, elapsedMs: performance.now() - started };
}

function runLine(run: TrainingRun & { elapsedMs: number }): string {
  const { summary, steps, goodput } = run.metrics;
  return `loss ${steps[0].loss.total.toFixed(4)} → ${summary.finalLoss.total.toFixed(4)} over ${summary.steps} ` +
    `step(s), virtual ${formatPs(summary.virtualTimePs)}, wall ${(run.elapsedMs / 1000).toFixed(1)} s` +
    (goodput ? `, ${goodput.restarts} restart(s), ${goodput.lostSteps} step(s) trained again, ETTR ` +
      `${goodput.ettr.toFixed(3)}` : '');
}

function fleetLine(fleet: number, faults: number, steps: number): string {
  const f = fleetScale(fleet, faults, steps);
  return `fleet: ${fleet} GPUs at Llama 3's rate (${LLAMA3_FLEET.interruptions} unexpected interruptions in ` +
    `${LLAMA3_FLEET.days} days on ${LLAMA3_FLEET.gpus} GPUs, ${LLAMA3_PER_GPU_HOUR.toExponential(3)} per GPU-hour): ` +
    `one every ${(1 / f.perHour).toPrecision(3)} h; ${faults} fault(s) ≈ ${f.fleetHours.toPrecision(3)} h of that ` +
    `fleet, one step ≈ ${f.hoursPerStep.toPrecision(3)} h`;
}

/** Each fault's fate and the comparison with the fault-free run: what is printed, logged and failed on. */
function judge(clean: TrainingRun, run: TrainingRun, campaign: readonly CampaignFault[], dir: string) {
  const fates = chaosFates(run.metrics.faults as LoggedFault[], run.metrics.steps, clean.metrics.steps,
    campaign.map((f) => f.cause));
  const final = (sub: string) => readFileSync(join(dir, sub, FINAL_FILE));
  const sameParameters = final(CHAOS_FILES.clean).equals(final(CHAOS_FILES.faulty));
  const lossDiffers = firstLossDifference(clean.metrics.steps, run.metrics.steps);
  const missed = fates.filter((f) => !f.injected || !f.detected);
  const failures = [
    ...missed.map((f) => `faults.${f.index} (${f.kind} of ${f.victim}, ${f.trigger}) was ` +
      `${f.injected ? 'not detected' : 'not injected'}: ${f.recovery}`),
    ...(sameParameters ? [] : [`the final parameters differ from the fault-free run's (${FINAL_FILE})`]),
    ...(lossDiffers === null ? [] : [`the losses differ from the fault-free run's from step ${lossDiffers} on`]),
  ];
  const goodput = run.metrics.goodput!;
  const figures = { detected: fates.filter((f) => f.detected).length, restarts: goodput.restarts,
    lostSteps: goodput.lostSteps, ettr: goodput.ettr,
    addedVirtualPs: run.metrics.summary.virtualTimePs - clean.metrics.summary.virtualTimePs,
    identical: { parameters: sameParameters, losses: lossDiffers === null } };
  const lines = [...fates.map(fateLine),
    `detected ${figures.detected} of ${fates.length}; ${goodput.restarts} restart(s); virtual time ` +
      `+${formatPs(Math.max(0, figures.addedVirtualPs))} against the fault-free run`,
    `final parameters ${sameParameters ? 'identical to' : 'DIFFERENT from'} the fault-free run's (${FINAL_FILE} ` +
      `byte for byte), losses ${lossDiffers === null ? 'identical' : `DIFFERENT from step ${lossDiffers}`}`];
  return { fates, failures, figures, lines };
}

function fateLine(f: ChaosFate): string {
  const head = `faults.${f.index} ${f.kind} of ${f.victim}, ${f.trigger}${f.cause ? ` (${f.cause})` : ''}`;
  if (!f.injected) return `  ${head}: NOT INJECTED: ${f.recovery}`;
  if (!f.detected) return `  ${head}: NOT DETECTED: ${f.recovery}`;
  return `  ${head}: ${f.detection}${f.detectedAtStep === null ? '' : ` (step ${f.detectedAtStep})`}; ${f.recovery}`;
}
