// One process programs a node's kernel (services/applier/node-lock.ts): with a real applier
// holding node-a in a netns this test creates, a second applier, `apply --once` and `cleanup` for
// node-a are refused (exit 1, one line naming the holder) before they touch the kernel; node-b in
// the same state directory is not; kill -9 of the holder frees node-a at once.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeLockFile } from '../../../services/applier/node-lock.ts';
import { TestNetns } from '../../libs/netlink/support/netns.ts';
import type { failedStartHoldsNothing, lateFailureClosesWhatItOpened } from './support/node-lock-scenarios.ts';

const pexec = promisify(execFile);
const BIN = path.resolve('bin/switchboard');
const ns = `sb-nodelock-${process.pid}`;
const stateDir = mkdtempSync(path.join(tmpdir(), 'sb-nodelock-'));
let holder: ChildProcess | undefined;

/** Runs bin/switchboard in the netns; resolves its exit code and output (killed after 30 s). */
const sb = (...args: string[]) =>
  pexec('ip', ['netns', 'exec', ns, BIN, ...args], { timeout: 30_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout: string; stderr: string; killed?: boolean }) => ({
      code: e.killed ? -1 : (e.code ?? -1),
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
const tables = async () => (await pexec('ip', ['netns', 'exec', ns, 'nft', 'list', 'tables'])).stdout;
const applyOnce = (node: string) =>
  sb(
    'apply',
    '--manifests',
    'examples/demo',
    '--node',
    node,
    '--once',
    '--mode',
    'nftables',
    '--json',
    '--state-dir',
    stateDir,
  );

beforeAll(async () => {
  await pexec('ip', ['netns', 'add', ns]);
});
afterAll(async () => {
  if (holder?.exitCode === null) holder.kill('SIGKILL');
  await pexec('ip', ['netns', 'del', ns]).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('one process per node (node-lock.ts)', () => {
  it('a second applier, apply --once and cleanup are refused naming the holder; another node is not; kill -9 frees it', async () => {
    // The holder: a real nftables applier for node-a, waiting for a NATS that is not there.
    holder = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        BIN,
        'applier',
        '--node',
        'node-a',
        '--nats',
        'nats://127.0.0.1:1',
        '--mode',
        'nftables',
      ].concat(['--state-dir', stateDir, '--healthz-bind-address', 'off']),
      { stdio: 'ignore' },
    );
    const holderFile = `${nodeLockFile(stateDir, 'node-a')}.holder`;
    await expect.poll(() => existsSync(holderFile), { timeout: 30_000, interval: 100 }).toBe(true);
    // The refusal is the last line (apply names the manifests it rejected before it).
    const refusal = new RegExp(
      `(^|\\n)switchboard: node node-a is programmed by another process \\(applier of node node-a, pid ${holder.pid} on ${hostname()} since \\d{4}-[^;]*; lock ${nodeLockFile(stateDir, 'node-a').replaceAll('.', '\\.')}\\): stop it first, one process per node\\n$`,
    );
    const second = await sb(
      ...['applier', '--node', 'node-a', '--nats', 'nats://127.0.0.1:1', '--mode', 'nftables'],
      ...['--state-dir', stateDir, '--healthz-bind-address', 'off'],
    );
    expect(second.code, second.stderr).toBe(1);
    expect(second.stderr).toMatch(refusal);

    const once = await applyOnce('node-a');
    expect(once.code, once.stderr).toBe(1);
    expect(once.stderr).toMatch(refusal);
    expect(once.stdout).toBe('');
    expect(await tables()).not.toContain('switchboard'); // refused before the kernel

    const cleanup = await sb('cleanup', '--mode', 'nftables', '--node', 'node-a', '--state-dir', stateDir);
    expect(cleanup.code, cleanup.stderr).toBe(1);
    expect(cleanup.stderr).toMatch(refusal);

    // Another node's lock is its own (several nodes' appliers may share a state directory).
    const other = await applyOnce('node-b');
    expect(other.code, other.stderr).toBe(0);
    expect(JSON.parse(other.stdout)).toMatchObject({ mode: 'nftables', verified: true });

    // The kernel frees the lock of a process however it dies.
    const held = holder;
    const exited = new Promise((resolve) => held.once('exit', resolve));
    process.kill(Number(held.pid), 'SIGKILL');
    await exited;
    const after = await applyOnce('node-a');
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout)).toMatchObject({ mode: 'nftables', verified: true });
    const clean = await sb('cleanup', '--mode', 'nftables', '--node', 'node-a', '--state-dir', stateDir);
    expect(clean.code, clean.stderr).toBe(0);
    expect(await tables()).not.toContain('switchboard');
  }, 120_000);

  it('an applier whose start fails after it took the lock (its --http port taken, its health address refused) holds nothing and leaves nothing listening; stop() frees it', async () => {
    const netns = await TestNetns.create('nodelock');
    try {
      const dir = mkdtempSync(path.join(tmpdir(), 'sb-nodelock-inproc-'));
      try {
        const r = await netns.run<Awaited<ReturnType<typeof failedStartHoldsNothing>>>(
          fileURLToPath(new URL('./support/node-lock-scenarios.ts', import.meta.url)),
          'failedStartHoldsNothing',
          [dir],
          { timeoutMs: 60_000 },
        );
        expect(r.failure).toMatch(/EADDRINUSE|address already in use/);
        expect(r.freeAfterFailure).toBe(true);
        expect(r.heldWhileRunning).toMatch(/^applier of node n1, pid \d+ on /);
        expect(r.freeAfterStop).toBe(true);
        const late = await netns.run<Awaited<ReturnType<typeof lateFailureClosesWhatItOpened>>>(
          fileURLToPath(new URL('./support/node-lock-scenarios.ts', import.meta.url)),
          'lateFailureClosesWhatItOpened',
          [dir],
          { timeoutMs: 60_000 },
        );
        expect(late).toEqual({ failure: expect.stringMatching(/no address/), listeningAfter: false, lockFree: true });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await netns.destroy();
    }
  }, 90_000);
});
