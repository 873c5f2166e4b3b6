// `moemu k8s scenario.yaml [--out cluster/k8s] [--image moemu:latest] [--port 7000]`: writes the Kubernetes
// manifests for a multi-machine run — a Secret (the cluster token), a ConfigMap (the scenario), a Service and a Pod
// for the coordinator, an Indexed Job for the nodes whose completion index is the node index, each node Pod asking
// for as many CPUs as the scenario has GPUs per node — and a PersistentVolumeClaim (ReadWriteMany) for the runs,
// which every rank writes into. `kubectl apply -f` runs it (cluster/README.md).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { messageOf, moemuError } from '../errors.js';
import type { Scenario } from '../scenario/load.js';
import { coordinatorArgs, launchOptions, launchScenario, launchTarget, type LaunchFlags } from './launch.js';

export const K8S_FILE = 'moemu.yaml';
/** What one emulated GPU (a worker thread) asks for, besides its CPU. */
const MEMORY_PER_GPU_MI = 1024;
const RUNS_STORAGE = '10Gi';

/** A DNS-1123 name from the run name (Kubernetes object names). */
function objectName(name: string): string {
  return `moemu-${name.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 52).replace(/-+$/, '');
}

export function k8sManifests(scenario: Scenario, text: string, target: { image: string; port: number },
                             token: string): object[] {
  const name = objectName(scenario.name);
  const labels = { app: 'moemu', 'moemu/run': name };
  const { nodes, gpusPerNode } = scenario.cluster;
  const env = [{ name: 'MOEMU_TOKEN', valueFrom: { secretKeyRef: { name: `${name}-token`, key: 'token' } } }];
  const runs = { name: 'runs', persistentVolumeClaim: { claimName: `${name}-runs` } };
  const runsMount = { name: 'runs', mountPath: '/app/runs' };
  const resources = { requests: { cpu: String(gpusPerNode), memory: `${gpusPerNode * MEMORY_PER_GPU_MI}Mi` },
    limits: { memory: `${2 * gpusPerNode * MEMORY_PER_GPU_MI}Mi` } };
  const coordinator = `${name}-coordinator`;
  return [
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${name}-token`, labels }, type: 'Opaque',
      stringData: { token } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-scenario`, labels },
      data: { 'scenario.yaml': text } },
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: `${name}-runs`, labels },
      spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: RUNS_STORAGE } } } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: coordinator, labels },
      spec: { selector: { ...labels, 'moemu/role': 'coordinator' },
        ports: [{ name: 'control', port: target.port, targetPort: target.port }] } },
    { apiVersion: 'v1', kind: 'Pod',
      metadata: { name: coordinator, labels: { ...labels, 'moemu/role': 'coordinator' } },
      spec: { restartPolicy: 'Never', containers: [{ name: 'coordinator', image: target.image, env,
        args: coordinatorArgs(target.port, '0.0.0.0'), ports: [{ containerPort: target.port, name: 'control' }],
        volumeMounts: [runsMount, { name: 'scenario', mountPath: '/app/scenario', readOnly: true }],
        resources: { requests: { cpu: '1', memory: `${MEMORY_PER_GPU_MI}Mi` } } }],
      volumes: [runs, { name: 'scenario', configMap: { name: `${name}-scenario` } }] } },
    { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: `${name}-nodes`, labels },
      spec: { completionMode: 'Indexed', completions: nodes, parallelism: nodes, backoffLimit: 0,
        template: { metadata: { labels: { ...labels, 'moemu/role': 'node' } },
          spec: { restartPolicy: 'Never', containers: [{ name: 'node', image: target.image,
            env: [...env, { name: 'MOEMU_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }],
            // the completion index is the node index; peers dial the Pod's own IP
            args: ['node', '--join', `ws://${coordinator}:${target.port}`, '--node', '$(JOB_COMPLETION_INDEX)',
              '--bind', '0.0.0.0', '--advertise', '$(MOEMU_POD_IP)'],
            volumeMounts: [runsMount], resources }],
          volumes: [runs] } } } },
  ];
}

export function addK8sCommand(program: Command): void {
  launchOptions(program
    .command('k8s <scenario>')
    .description('write Kubernetes manifests for the scenario: coordinator Service and Pod, an Indexed Job of ' +
      'nodes, the token Secret, the scenario ConfigMap, a runs volume claim (cluster/README.md)'), 'cluster/k8s',
  'the moemu image, pushed where the cluster pulls from')
    .action((file: string, flags: LaunchFlags & { out: string }) => {
      const { scenario, text } = launchScenario(file, flags);
      const manifests = k8sManifests(scenario, text, launchTarget(flags), randomBytes(16).toString('hex'));
      const out = join(flags.out, K8S_FILE);
      try {
        mkdirSync(flags.out, { recursive: true });
        writeFileSync(out, `# moemu k8s ${file}: kubectl apply -f ${K8S_FILE}\n` +
          manifests.map((m) => stringify(m)).join('---\n'), { mode: 0o600 });
      } catch (error) {
        throw moemuError('MOEMU_ERR_FILE', `cannot write ${out}: ${messageOf(error)}`, { path: '--out' });
      }
      process.stdout.write(`wrote ${out}: ${manifests.length} objects (${scenario.name}: coordinator + ` +
        `${scenario.cluster.nodes} node Pod(s) of ${scenario.cluster.gpusPerNode} CPU(s) each)\n`);
    });
}
