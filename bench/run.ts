// `npm run bench`: benchmarks (never timed tests). Each figure is printed next to the limit it is judged
// against, measured in the same run (../shared/MEASUREMENTS.md: figures drift between runs on shared machines).
import { benchAllToAll } from './all-to-all.js';
import { benchFabric } from './fabric.js';
import { benchLinkOrder } from './link-order.js';
import { benchMatmul } from './matmul.js';
import { benchScale } from './scale.js';
import { benchSdc } from './sdc.js';
import { benchSpeed } from './speed.js';
import { benchTrainer } from './trainer.js';

const GROUPS: Record<string, () => Promise<string[]> | string[]> = {
  matmul: benchMatmul,
  fabric: benchFabric,
  'all-to-all': benchAllToAll,
  links: benchLinkOrder,
  trainer: benchTrainer,
  sdc: benchSdc,
  speed: benchSpeed,
  scale: benchScale,
};

async function main(): Promise<void> {
  const only = process.argv[2];   // `npm run bench -- fabric` runs one group
  if (only !== undefined && !Object.hasOwn(GROUPS, only)) {
    console.error(`bench: unknown group "${only}"; the groups are ${Object.keys(GROUPS).join(', ')}`);
    process.exit(2);
  }
  for (const [name, run] of Object.entries(GROUPS)) {
    if (only === undefined || only === name) for (const line of await run()) console.log(line);
  }
}

main().catch((error: unknown) => {
  console.error('bench failed:', error);
  process.exit(1);
});
