import { execFile, spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const pexec = promisify(execFile);

/** What the demo created, written to STATE_FILE after every change so `--cleanup DIR` can undo a `--keep` run. */
export interface DemoState {
  readonly work: string;
  processes: { name: string; pid: number; log: string }[];
  namespaces: string[];
  /** Links created in the root namespace (the uplink to the demo's LAN). */
  links: string[];
}

export const STATE_FILE = 'demo-state.json';

/** Runs a command; rejects with its stderr in one line. */
export async function run(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  try {
    return (
      await pexec(cmd, [...args], {
        maxBuffer: 64 << 20,
        timeout: opts.timeoutMs ?? 30_000,
        env: opts.env ?? process.env,
      })
    ).stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string; killed?: boolean };
    const detail = (err.stderr || err.stdout || err.message).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${cmd} ${args.join(' ')}: ${err.killed ? 'timed out' : detail}`);
  }
}

/** Every process, namespace, link and file the demo made, and how to remove them. */
export class DemoResources {
  readonly state: DemoState;

  constructor(work: string, loaded?: DemoState) {
    this.state = loaded ?? { work, processes: [], namespaces: [], links: [] };
    if (!loaded) this.save();
  }

  /** What a `--keep` run left in `work` (its state file is read, not rewritten). */
  static load(work: string): DemoResources {
    let text: string;
    try {
      text = readFileSync(join(work, STATE_FILE), 'utf8');
    } catch {
      throw new Error(`${work} holds no ${STATE_FILE}: not a directory a demo run left`);
    }
    return new DemoResources(work, { ...(JSON.parse(text) as DemoState), work });
  }

  private save(): void {
    writeFileSync(join(this.state.work, STATE_FILE), JSON.stringify(this.state, null, 2));
  }

  logPath(name: string): string {
    return join(this.state.work, 'logs', `${name}.log`);
  }

  /**
   * Starts a process in its own session (so a terminal's Ctrl-C reaches only the demo driver,
   * which then stops everything in order) with stdout/stderr to logs/NAME.log; with `netns`
   * it runs inside that namespace (`ip netns exec` execs the command: the PID is the process).
   */
  spawn(
    name: string,
    cmd: string,
    args: readonly string[],
    o: { netns?: string; env?: NodeJS.ProcessEnv } = {},
  ): { pid: number; log: string; exited: Promise<number | null> } {
    const log = this.logPath(name);
    const fd = openSync(log, 'a');
    const [c, a] = o.netns ? ['ip', ['netns', 'exec', o.netns, cmd, ...args]] : [cmd, [...args]];
    const child = spawn(c, a, { detached: true, stdio: ['ignore', fd, fd], env: o.env ?? process.env });
    closeSync(fd);
    if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.unref();
    this.state.processes.push({ name, pid: child.pid, log });
    this.save();
    return { pid: child.pid, log, exited };
  }

  async addNamespace(name: string): Promise<void> {
    await run('ip', ['netns', 'add', name]);
    this.state.namespaces.push(name);
    this.save();
    await run('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  }

  addLink(name: string): void {
    this.state.links.push(name);
    this.save();
  }

  /**
   * Stops processes with SIGTERM in three stages, so each can finish cleanly: appliers and pods,
   * then the planner (it still needs NATS to stop), then NATS. Each stage waits up to `graceMs`,
   * then SIGKILLs what is left. Deletes namespaces and links. Safe to call twice.
   */
  async cleanup(graceMs = 12_000): Promise<string[]> {
    const problems: string[] = [];
    const procs = [...this.state.processes];
    const stages = [
      procs.filter((p) => p.name !== 'planner' && p.name !== 'nats'),
      procs.filter((p) => p.name === 'planner'),
      procs.filter((p) => p.name === 'nats'),
    ];
    for (const stage of stages) {
      for (const p of stage) signal(p.pid, 'SIGTERM');
      const deadline = Date.now() + graceMs;
      for (const p of stage) {
        while (alive(p.pid) && Date.now() < deadline) await sleep(50);
        if (alive(p.pid)) {
          signal(p.pid, 'SIGKILL');
          problems.push(`${p.name} (pid ${p.pid}) ignored SIGTERM for ${graceMs} ms; killed`);
        }
      }
    }
    this.state.processes = [];
    for (const ns of [...this.state.namespaces].reverse()) {
      await run('ip', ['netns', 'del', ns]).catch((e: Error) => problems.push(e.message));
    }
    this.state.namespaces = [];
    for (const l of this.state.links) {
      // A veth whose peer was in a namespace deleted above goes away with it, but the kernel
      // finishes that after `ip netns del` returns: a link that vanished meanwhile is not a problem.
      if (existsSync(`/sys/class/net/${l}`))
        await run('ip', ['link', 'del', l]).catch((e: Error) => {
          if (existsSync(`/sys/class/net/${l}`)) problems.push(e.message);
        });
    }
    this.state.links = [];
    if (existsSync(this.state.work)) this.save();
    return problems;
  }

  /** Deletes the work directory; with `keepLogs`, everything but logs/. */
  removeFiles(keepLogs: boolean): void {
    if (!keepLogs) {
      rmSync(this.state.work, { recursive: true, force: true });
      return;
    }
    for (const f of [
      'jetstream',
      'manifests',
      'state',
      'switchboard.db',
      'switchboard.db-wal',
      'switchboard.db-shm',
      'tokens',
      'nats.conf',
      'proxy-config.yaml',
      'signing-key.pem',
      'signing-key.pem.pub',
      STATE_FILE,
    ]) {
      rmSync(join(this.state.work, f), { recursive: true, force: true });
    }
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  // A PID from a damaged state file must never be 0 or negative: that would signal a whole group.
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
