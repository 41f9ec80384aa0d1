import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledChildren, type BundledChildren } from '../../support/child-node-args.ts';
import { openLog, tempDir } from '../eventlog/support/temp-log.ts';
import { operatorState } from './support/operator-state.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const CHILD = path.join(import.meta.dirname, 'support/crash-child.ts');
// ~25 children: bundled once, each starts with plain node (not ~1.5 s of CPU in tsx first).
let children: BundledChildren | undefined;
beforeAll(async () => {
  children = await bundledChildren([CHILD]);
});
afterAll(() => children?.cleanup());

interface ChildRun {
  signal: NodeJS.Signals | null;
  before: unknown;
  after: unknown;
  writes: number;
}

/** Runs the child on a fresh real SQLite file; it SIGKILLs itself before its K-th write of the operation. */
function runChild(file: string, op: string, k: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...children!.args(CHILD), file, op, String(k)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code !== null && code !== 0) return reject(new Error(`child exited ${code}: ${err}`));
      const line = (name: string) =>
        /^(\S+) (.*?)( writes (\d+))?$/m.exec(out.split('\n').find((l) => l.startsWith(`${name} `)) ?? '');
      const after = line('after');
      resolve({
        signal,
        before: line('before') && JSON.parse(line('before')![2]!),
        after: after && JSON.parse(after[2]!),
        writes: Number(after?.[4] ?? -1),
      });
    });
  });
}

async function restored(file: string): Promise<unknown> {
  const log = await openLog(file);
  try {
    return operatorState(log);
  } finally {
    log.close();
  }
}

describe('kill -9 between any two writes of an operator action restores exactly the state the planner had', () => {
  for (const op of ['pin', 'rollback', 'unpin', 'config-rollout', 'config-rollback']) {
    it(`${op}: a crash at each write step leaves the state before it; completing leaves the state after it`, async () => {
      const refFile = tmp.file();
      const ref = await runChild(refFile, op, 1_000);
      expect(ref.signal).toBeNull();
      expect(await restored(refFile)).toEqual(ref.after);
      expect(ref.writes).toBeGreaterThan(0);
      expect(ref.after).not.toEqual(ref.before);
      const cases = Array.from({ length: ref.writes }, (_, k) => k);
      const results = await Promise.all(
        cases.map(async (k) => {
          const file = tmp.file();
          const run = await runChild(file, op, k);
          return { k, run, state: await restored(file) };
        }),
      );
      for (const { k, run, state } of results) {
        expect(run.signal, `step ${k}`).toBe('SIGKILL');
        expect(state, `crash before write ${k} of ${ref.writes}`).toEqual(run.before);
      }
    }, 180_000);
  }
});
