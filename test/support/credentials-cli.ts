import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BIN } from '../faults/fleet.ts';

/**
 * `switchboard credentials …` processes (the issuer and the node sidecar) run as the deploy runs
 * them, with the files their flags name in one scratch folder. stop() kills what is still running
 * (by PID) and removes the folder; call it from afterEach so a failed test leaves nothing behind.
 */
export class CredentialsCli {
  private dir: string | undefined;
  private readonly children: ChildProcess[] = [];

  constructor(private readonly prefix: string) {}

  /** Writes a file (0600, as a mounted Secret's key) into the scratch folder; returns its path. */
  file(name: string, text: string): string {
    this.dir ??= mkdtempSync(path.join(tmpdir(), `${this.prefix}-`));
    const f = path.join(this.dir, name);
    writeFileSync(f, text, { mode: 0o600 });
    return f;
  }

  /** Starts `switchboard credentials ARGS…`; err() is its stderr so far. */
  run(args: string[]): { child: ChildProcess; err: () => string } {
    const child = spawn(process.execPath, [BIN, 'credentials', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.children.push(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err += t));
    return { child, err: () => err };
  }

  async stop(): Promise<void> {
    for (const c of this.children.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGKILL');
      await gone;
    }
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/** The HTTP status a health endpoint on loopback answers (0 while nothing listens). */
export const healthStatus = (port: number, p: string): Promise<number> =>
  fetch(`http://127.0.0.1:${port}${p}`)
    .then((r) => r.status)
    .catch(() => 0);
