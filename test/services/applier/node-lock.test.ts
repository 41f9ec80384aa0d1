// One process programs a node's kernel (services/applier/node-lock.ts): with a real applier
// holding node-a in a netns this test creates, a second applier, `apply --once` and `cleanup` for
// node-a are refused (exit 1, one line naming the holder) before they touch the kernel; so are
// node-b's in the same netns (another name for the same kernel state), but not node-b in another
// netns with the same state directory; a dry-run applier given the state directory takes the
// node's lock only; kill -9 of the holder frees node-a at once.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NAMESPACE_CLAIM, netnsLockFile, nodeLockFile } from '../../../services/applier/node-lock.ts';
import { TestNetns } from '../../libs/netlink/support/netns.ts';
import type { failedStartHoldsNothing, lateFailureClosesWhatItOpened } from './support/node-lock-scenarios.ts';

const pexec = promisify(execFile);
const BIN = path.resolve('bin/switchboard');
const ns = `sb-nodelock-${process.pid}`;
const stateDir = mkdtempSync(path.join(tmpdir(), 'sb-nodelock-'));
let holder: ChildProcess | undefined;

const ns2 = `sb-nodelock2-${process.pid}`;

/** Runs bin/switchboard in the netns (`in`: the first); resolves its exit code and output (killed after 30 s). */
const sbIn = (inNs: string, ...args: string[]) =>
  pexec('ip', ['netns', 'exec', inNs, BIN, ...args], { timeout: 30_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code?: number; stdout: string; stderr: string; killed?: boolean }) => ({
      code: e.killed ? -1 : (e.code ?? -1),
      stdout: e.stdout,
      stderr: e.stderr,
    }),
  );
const sb = (...args: string[]) => sbIn(ns, ...args);
/** An applier in the netns, with the state directory, waiting for a NATS that is not there. */
const spawnApplier = (node: string, mode: 'nftables' | 'dry-run') =>
  spawn(
    'ip',
    ['netns', 'exec', ns, BIN, 'applier', '--node', node, '--nats', 'nats://127.0.0.1:1', '--mode', mode].concat([
      '--state-dir',
      stateDir,
      '--healthz-bind-address',
      'off',
    ]),
    { stdio: 'ignore' },
  );
const tables = async (inNs = ns) => (await pexec('ip', ['netns', 'exec', inNs, 'nft', 'list', 'tables'])).stdout;
const applyOnce = (node: string, inNs = ns) =>
  sbIn(
    inNs,
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
  await pexec('ip', ['netns', 'add', ns2]);
});
afterAll(async () => {
  if (holder?.exitCode === null) holder.kill('SIGKILL');
  await pexec('ip', ['netns', 'del', ns]).catch(() => undefined);
  await pexec('ip', ['netns', 'del', ns2]).catch(() => undefined);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('one process per node (node-lock.ts)', () => {
  it('a second applier, apply --once and cleanup are refused naming the holder, for another node name in the same netns too, not in another netns; kill -9 frees it', async () => {
    // The holder: a real nftables applier for node-a, waiting for a NATS that is not there.
    holder = spawnApplier('node-a', 'nftables');
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

    // Another node name in the same netns programs the same kernel state (a unit file that names
    // the node by its host name beside a DaemonSet that uses the Kubernetes name): refused too,
    // naming the holder and the namespace by its inode.
    const inode = statSync(`/run/netns/${ns}`).ino;
    const holderPid = holder.pid;
    const nsRefusal = (which: string) =>
      new RegExp(
        `(^|\\n)switchboard: ${which} \\(net:\\[${inode}\\]\\) is programmed by another process \\(applier of node node-a, pid ${holderPid} on ${hostname()} since \\d{4}-[^;]*; lock ${netnsLockFile(stateDir, inode).replaceAll('.', '\\.')}\\): stop it first, one process per network namespace\\n$`,
      );
    const otherName = await applyOnce('node-b');
    expect(otherName.code, otherName.stderr).toBe(1);
    expect(otherName.stderr).toMatch(nsRefusal("this process's network namespace"));
    expect(await tables()).not.toContain('switchboard');
    const otherApplier = await sb(
      ...['applier', '--node', 'node-b', '--nats', 'nats://127.0.0.1:1', '--mode', 'nftables'],
      ...['--state-dir', stateDir, '--healthz-bind-address', 'off'],
    );
    expect(otherApplier.code, otherApplier.stderr).toBe(1);
    expect(otherApplier.stderr).toMatch(nsRefusal("this process's network namespace"));
    // cleanup from outside the namespace, naming it with --netns
    const otherCleanup = await pexec(
      BIN,
      ['cleanup', '--mode', 'nftables', '--netns', ns, '--node', 'node-b', '--state-dir', stateDir],
      { timeout: 30_000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(otherCleanup.code, otherCleanup.stderr).toBe(1);
    expect(otherCleanup.stderr).toMatch(nsRefusal(`network namespace ${ns}`));
    const missing = await pexec(
      BIN,
      ['cleanup', '--mode', 'nftables', '--netns', `${ns}-none`, '--node', 'node-b', '--state-dir', stateDir],
      { timeout: 30_000 },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code?: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(missing.code, missing.stderr).toBe(1);
    expect(missing.stderr).toBe(
      `switchboard: network namespace ${ns}-none: not found (/run/netns/${ns}-none: ENOENT)\n`,
    );

    // A dry-run applier programs nothing, but one given the state directory writes the node's
    // applied record there and ACKs as the node: node-a's is refused; node-b's takes node-b's lock
    // alone (not the namespace's, which node-a's applier holds).
    const dryA = await sb(
      ...['applier', '--node', 'node-a', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run'],
      ...['--state-dir', stateDir],
    );
    expect(dryA.code, dryA.stderr).toBe(1);
    expect(dryA.stderr).toMatch(refusal);
    const dryB = spawnApplier('node-b', 'dry-run');
    try {
      const dryHolder = `${nodeLockFile(stateDir, 'node-b')}.holder`;
      await expect
        .poll(() => (existsSync(dryHolder) ? JSON.parse(readFileSync(dryHolder, 'utf8')).purpose : undefined), {
          timeout: 30_000,
          interval: 100,
        })
        .toBe('applier (dry-run) of node node-b');
      expect(dryB.exitCode).toBe(null);
    } finally {
      if (dryB.exitCode === null && dryB.signalCode === null) {
        const gone = new Promise((resolve) => dryB.once('exit', resolve));
        process.kill(Number(dryB.pid), 'SIGKILL');
        await gone;
      }
    }

    // node-b in another netns has a namespace lock of its own, in the same state directory
    const other = await applyOnce('node-b', ns2);
    expect(other.code, other.stderr).toBe(0);
    expect(JSON.parse(other.stdout)).toMatchObject({ mode: 'nftables', verified: true });
    expect(await tables(ns2)).toContain('switchboard');
    const otherClean = await sbIn(ns2, 'cleanup', '--mode', 'nftables', '--node', 'node-b', '--state-dir', stateDir);
    expect(otherClean.code, otherClean.stderr).toBe(0);

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

  it('another --state-dir in the same netns is refused by the namespace claim, naming the holder; a claim squatted by another uid is ignored with a warning', async () => {
    const dirA = mkdtempSync(path.join(tmpdir(), 'sb-nodelock-a-'));
    const dirB = mkdtempSync(path.join(tmpdir(), 'sb-nodelock-b-'));
    const claimed = async () =>
      (await pexec('ip', ['netns', 'exec', ns2, 'ss', '-xlH'])).stdout.includes(`@${NAMESPACE_CLAIM}`);
    const stop = async (p: ChildProcess) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const gone = new Promise((r) => p.once('exit', r));
      process.kill(Number(p.pid), 'SIGKILL');
      await gone;
    };
    const onceWith = (dir: string, node: string) =>
      sbIn(
        ns2,
        ...['apply', '--manifests', 'examples/demo', '--node', node, '--once', '--mode', 'nftables', '--json'],
        ...['--state-dir', dir],
      );
    let first: ChildProcess | undefined;
    let squatter: ChildProcess | undefined;
    try {
      // node-b's applier with state directory A, in ns2
      first = spawn(
        'ip',
        ['netns', 'exec', ns2, BIN, 'applier', '--node', 'node-b', '--nats', 'nats://127.0.0.1:1'].concat([
          '--mode',
          'nftables',
          '--state-dir',
          dirA,
          '--healthz-bind-address',
          'off',
        ]),
        { stdio: 'ignore' },
      );
      await expect.poll(claimed, { timeout: 30_000, interval: 200 }).toBe(true);
      const inode = statSync(`/run/netns/${ns2}`).ino;
      const refusal = new RegExp(
        `(^|\\n)switchboard: this process's network namespace \\(net:\\[${inode}\\]\\) is programmed by another process \\(applier of node node-b, pid ${first.pid} on ${hostname()} since \\d{4}-[^;]*; it holds @${NAMESPACE_CLAIM}, socket inode \\d+\\): stop it first, one process per network namespace\\n$`,
      );
      // `apply --once` and a second applier with state directory B: no lock file in common
      const once = await onceWith(dirB, 'node-c');
      expect(once.code, once.stderr).toBe(1);
      expect(once.stderr).toMatch(refusal);
      expect(once.stdout).toBe('');
      expect(await tables(ns2)).not.toContain('switchboard');
      const second = await sbIn(
        ns2,
        ...['applier', '--node', 'node-c', '--nats', 'nats://127.0.0.1:1', '--mode', 'nftables'],
        ...['--state-dir', dirB, '--healthz-bind-address', 'off'],
      );
      expect(second.code, second.stderr).toBe(1);
      expect(second.stderr).toMatch(refusal);
      // the refused ones released B's files: none left held
      expect(existsSync(`${nodeLockFile(dirB, 'node-c')}.holder`)).toBe(false);
      await stop(first);
      await expect.poll(claimed, { timeout: 10_000, interval: 100 }).toBe(false);

      // a process of another uid squats the name first: it cannot program the namespace, ignored
      squatter = spawn(
        'ip',
        ['netns', 'exec', ns2, 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath].concat([
          '-e',
          `require('net').createServer((c) => c.destroy()).listen({ path: '\\0${NAMESPACE_CLAIM}' })`,
        ]),
        { stdio: 'ignore' },
      );
      await expect.poll(claimed, { timeout: 10_000, interval: 100 }).toBe(true);
      const despite = await onceWith(dirB, 'node-c');
      expect(despite.code, despite.stderr).toBe(0);
      expect(despite.stderr).toMatch(
        new RegExp(
          `warning: @${NAMESPACE_CLAIM} is held by uid 65534, socket inode \\d+, which cannot program this network namespace: ignored`,
        ),
      );
      expect(JSON.parse(despite.stdout)).toMatchObject({ mode: 'nftables', verified: true });
      const clean = await sbIn(ns2, 'cleanup', '--mode', 'nftables', '--node', 'node-c', '--state-dir', dirB);
      expect(clean.code, clean.stderr).toBe(0);
    } finally {
      if (first) await stop(first);
      if (squatter) await stop(squatter);
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
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
        expect(r.claimedWhileRunning).toMatch(
          new RegExp(`^applier of node n1, pid \\d+ on .*; it holds @${NAMESPACE_CLAIM}, socket inode \\d+$`),
        );
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
