import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { EventLog, EventLogError } from '../../../libs/eventlog/index.ts';
import { tempDir } from './support/temp-log.ts';

const run = promisify(execFile);
const tmp = tempDir();
afterAll(() => tmp.cleanup());
const repo = path.resolve('.');

/** Another process that opens `file` as its writer and holds it until killed. */
async function holderProcess(file: string): Promise<{ pid: number; kill9: () => Promise<void> }> {
  const script = path.join(tmp.dir, `hold-${Date.now()}.mts`);
  fs.writeFileSync(
    script,
    `import { EventLog } from ${JSON.stringify(path.join(repo, 'libs/eventlog/index.ts'))};
await EventLog.open({ file: ${JSON.stringify(file)}, writer: 'the holder', sync: 'normal' });
process.stdout.write('held\\n');
setInterval(() => {}, 1000);
`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`holder exited ${c}`)));
    createInterface({ input: child.stdout! }).on('line', (l) => l === 'held' && resolve());
  });
  return {
    pid: child.pid!,
    kill9: () =>
      new Promise<void>((resolve) => {
        child.removeAllListeners('exit');
        child.once('exit', () => resolve());
        process.kill(child.pid!, 'SIGKILL');
      }),
  };
}

const refusal = async (file: string) =>
  EventLog.open({ file, writer: 'a second writer', sync: 'normal' }).then(
    (l) => {
      l.close();
      return undefined;
    },
    (e: unknown) => e,
  );

describe('one writer per event log (writer-lock.ts)', () => {
  it('a second writer in another process is refused with the holder named; readers are not; kill -9 frees it', async () => {
    const file = tmp.file();
    const holder = await holderProcess(file);
    let killed = false;
    try {
      const e = await refusal(file);
      expect(e).toBeInstanceOf(EventLogError);
      expect((e as EventLogError).code).toBe('LOCKED');
      expect((e as Error).message).toMatch(
        new RegExp(
          `^${file.replaceAll('.', '\\.')}: in use by another process \\(the holder, pid ${holder.pid} on ${hostname()} since \\d{4}-`,
        ),
      );
      // Read-only tools (audit, replay, db status) open without the lock while the writer runs.
      const reader = await EventLog.open({ file, migrate: false });
      expect(reader.latestVersion()).toBeUndefined();
      reader.close();
      // The planner's CLI: one line, exit 1, before it touches NATS (nobody listens on port 1).
      const cli = await run(path.join(repo, 'bin/switchboard'), [
        ...['planner', '--manifests', path.join(repo, 'examples/demo'), '--nats', 'nats://127.0.0.1:1'],
        ...['--db', file, '--http', '127.0.0.1:0'],
      ]).then(
        () => ({ code: 0, stderr: '' }),
        (x: { code: number; stderr: string }) => x,
      );
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(
        new RegExp(`^switchboard: .*: in use by another process \\(the holder, pid ${holder.pid} .*\\)\\n$`),
      );
      // The holder dies without cleaning up: the kernel drops its lock, the next writer opens.
      await holder.kill9();
      killed = true;
      const next = await EventLog.open({ file, writer: 'the next writer', sync: 'normal' });
      expect(JSON.parse(fs.readFileSync(`${file}.lock.holder`, 'utf8'))).toMatchObject({ pid: process.pid });
      expect(await refusal(file)).toMatchObject({ code: 'LOCKED' }); // held in this process too
      next.close();
      expect(fs.existsSync(`${file}.lock.holder`)).toBe(false);
      expect(await refusal(file)).toBeUndefined(); // released by close
    } finally {
      if (!killed) await holder.kill9();
    }
  });
});
