// `npm run bench`: benchmarks (never timed tests). Each figure is printed next to the limit it is judged
// against, measured in the same run (../shared/MEASUREMENTS.md: figures drift between runs on shared machines).
import { benchFabric } from './fabric.js';
import { benchLinkOrder } from './link-order.js';
import { benchMatmul } from './matmul.js';
import { benchTrainer } from './trainer.js';

async function main(): Promise<void> {
  const only = process.argv[2];   // `npm run bench -- fabric` runs one group
  if (!only || only === 'matmul') for (const line of await benchMatmul()) console.log(line);
  if (!only || only === 'fabric') for (const line of await benchFabric()) console.log(line);
  if (!only || only === 'links') for (const line of await benchLinkOrder()) console.log(line);
  if (only && only !== 'trainer') return;
  for (const line of benchTrainer()) console.log(line);
}

main().catch((error: unknown) => {
  console.error('bench failed:', error);
  process.exit(1);
});
