import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, afterEach, expect, it } from 'vitest';
import { createLogReplicator } from '../../../libs/eventlog/index.ts';
import { NatsPlannerBus } from '../../../services/planner/nats-planner-bus.ts';
import { nodeEvent } from '../../libs/eventlog/support/node-event.ts';
import { openLog, tempDir } from '../../libs/eventlog/support/temp-log.ts';
import { plannerEnv, type PlannerEnv } from './planner-support.ts';

// probe21 P21-1: every bus write and every replicated-log append of a leader was raced against its
// leadership's abandon promise with Promise.race, which adds a reaction to that promise; it stays
// pending for as long as the planner leads (weeks), so each write left ~400 bytes (the race's
// promise and its answer) on it until the next step-down. A leader publishing a version a second
// grew ~150 MB a day. Measured here as what a full GC cannot free after N writes in one leadership.

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
/** Heap in use after full GCs (a macrotask first: WeakRefs and finished jobs let go). */
async function heapAfterGc(): Promise<number> {
  await new Promise((r) => setTimeout(r, 0));
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const WRITES = 1500;
/**
 * After WRITES writes to warm up (caches of the client, the log and the JIT fill up, bounded),
 * WRITES more leave under 70 kB with the fix; the old code ~420 B a bus write, ~580 B an append.
 */
const BOUND = 250 * 1024;

let env: PlannerEnv | undefined;
const tmp = tempDir();
afterEach(async () => {
  await env?.cleanup();
  env = undefined;
});
afterAll(() => tmp.cleanup());

it('target writes of one leadership keep nothing once answered', { timeout: 20_000 }, async () => {
  env = await plannerEnv();
  const bus = await NatsPlannerBus.open({ nc: env.nc });
  try {
    let v = 0;
    for (let i = 0; i < WRITES; i++) await bus.setDefaultTarget({ version: ++v, configRevision: 0 }); // warm
    const before = await heapAfterGc();
    for (let i = 0; i < WRITES; i++) await bus.setDefaultTarget({ version: ++v, configRevision: 0 });
    const grown = (await heapAfterGc()) - before;
    expect(grown, `${WRITES} writes left ${Math.round(grown / 1024)} kB on the heap`).toBeLessThan(BOUND);
  } finally {
    await bus.close();
  }
});

it('log appends of one leadership keep nothing once acknowledged', { timeout: 20_000 }, async () => {
  env = await plannerEnv();
  const log = await openLog(tmp.file());
  const r = await createLogReplicator({ log, nc: env.nc, group: `retention-${process.pid}`, replicas: 1, id: 'a' });
  try {
    await r.claim(1);
    let rv = 0;
    const appendOne = async () => {
      rv++;
      log.appendEvents([nodeEvent(`n${rv % 50}`, rv)]);
      await r.flush();
    };
    for (let i = 0; i < WRITES; i++) await appendOne(); // warm: the log's own caches fill up (bounded)
    const before = await heapAfterGc();
    for (let i = 0; i < WRITES; i++) await appendOne();
    const grown = (await heapAfterGc()) - before;
    expect(grown, `${WRITES} appends left ${Math.round(grown / 1024)} kB on the heap`).toBeLessThan(BOUND);
  } finally {
    await r.close();
    log.close();
  }
});
