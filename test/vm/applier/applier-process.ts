// Test-side handle on applier-driver.ts running in a node netns.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childNodeArgs } from '../../support/child-node-args.ts';
import type { ApplyResult } from '../../../libs/dataplane/index.ts';
import type { NodeState } from '../../../libs/model/index.ts';

const DRIVER = fileURLToPath(new URL('./applier-driver.ts', import.meta.url));

export class ApplierProcess {
  private next = 1;
  private buf = '';
  private waiting = new Map<number, (m: { result?: ApplyResult; error?: string }) => void>();
  private constructor(
    private readonly child: ChildProcess,
    private readonly stderr: () => string,
  ) {
    // A crashed driver must fail the pending calls at once, with its stderr, not at the test timeout.
    child.once('exit', (code, signal) => {
      for (const w of this.waiting.values())
        w({ error: `applier driver exited (${code ?? signal}): ${this.stderr().slice(-2000)}` });
      this.waiting.clear();
    });
    child.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        if (!line.startsWith('{')) continue;
        const m = JSON.parse(line) as { id: number; result?: ApplyResult; error?: string };
        this.waiting.get(m.id)?.(m);
        this.waiting.delete(m.id);
      }
    });
  }

  static async start(ns: string, stateFile: string, drainTimeoutMs = 300_000): Promise<ApplierProcess> {
    const child = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, ...childNodeArgs(DRIVER), stateFile, String(drainTimeoutMs)],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let err = '';
    // The driver traces each kernel read/run to stderr; pass it through so a slow or stuck step shows.
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      process.stderr.write(d);
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) {
          child.stdout!.off('data', onData);
          resolve();
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`applier driver exited ${code}: ${err}`)));
    });
    return new ApplierProcess(child, () => err);
  }

  private call(msg: object): Promise<ApplyResult> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (m) => (m.error !== undefined ? reject(new Error(m.error)) : resolve(m.result!)));
      this.child.stdin!.write(JSON.stringify({ id, ...msg }) + '\n');
    });
  }

  apply(state: NodeState): Promise<ApplyResult> {
    return this.call({ cmd: 'apply', state });
  }
  resync(): Promise<ApplyResult> {
    return this.call({ cmd: 'resync' });
  }
  cleanup(): Promise<ApplyResult> {
    return this.call({ cmd: 'cleanup' });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    await done;
    clearTimeout(t);
  }
}
