// The applier command sets its V8 flags (services/applier/v8-tiering.ts) in its own process, and
// they take effect: checked in a child node through V8's %DebugPrint of a freshly compiled
// function, before the CLI's applier command ran (the control: no feedback vector yet) and after
// (one from its first call). In-process it could not be told apart: the flags are process-wide.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { APPLIER_V8_FLAGS } from '../../../services/applier/v8-tiering.ts';

const repo = fileURLToPath(new URL('../../..', import.meta.url));

// %DebugPrint writes through the C++ stdout, in order with itself; nothing else is printed there.
const CHILD = `
import v8 from 'node:v8';
import { main } from './services/cli/main.ts';
v8.setFlagsFromString('--allow-natives-syntax');
const show = () => {
  const f = new Function('o', 'return o.a + 1');
  f({ a: 1 });
  new Function('f', '%DebugPrint(f)')(f);
};
show();
// the real command line parser and action; --heartbeat 1 is refused after the action started,
// before anything connects
process.exitCode = (await main(['applier', '--node', 'n1', '--nats', 'nats://127.0.0.1:1', '--mode', 'dry-run', '--heartbeat', '1'])) === 2 ? 0 : 3;
show();
`;

describe('applier V8 flags', () => {
  it('the applier command turns on eager feedback allocation in its process (a function compiled after it has a feedback vector from its first call)', async () => {
    expect(APPLIER_V8_FLAGS).toContain('--no-lazy-feedback-allocation');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', CHILD],
      {
        cwd: repo,
        maxBuffer: 16 << 20,
      },
    );
    const prints = stdout.split('DebugPrint:').slice(1);
    expect(prints).toHaveLength(2);
    const vector = (p: string) => /- feedback vector: (.*)/.exec(p)?.[1];
    expect(vector(prints[0]!)).toMatch(/^No feedback vector/); // before: V8's default (lazy)
    expect(vector(prints[1]!)).toMatch(/^0x[0-9a-f]+: \[FeedbackVector\]/);
  }, 60_000);
});
