// `switchboard cleanup` usage errors: exit 2, one line, before any lock is taken or anything is
// removed (a netns test of what cleanup removes: test/netns/cli-nftables.test.ts).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'sb-cleanup-usage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanup = (...args: string[]) =>
  run(path.resolve('bin/switchboard'), ['cleanup', ...args], { timeout: 30_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

describe('switchboard cleanup usage', () => {
  it.each(['ipvs', 'all'])('--netns with --mode %s exits 2 naming the flags, and takes no lock', async (mode) => {
    const stateDir = path.join(dir, mode);
    const r = await cleanup('--mode', mode, '--netns', `sb-none-${process.pid}`, '--state-dir', stateDir);
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: `switchboard: --netns is supported for --mode nftables only, not --mode ${mode}\n`,
    });
    expect(existsSync(stateDir) ? readdirSync(stateDir) : []).toEqual([]);
  });
});
