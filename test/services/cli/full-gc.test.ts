import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

describe('fullGc', () => {
  it('collects unreachable objects at once, in a process started without --expose-gc', () => {
    // In a child: no vitest allocations between dropping the garbage and collecting it.
    const script = `
      import { fullGc } from ${JSON.stringify(path.resolve('services/cli/full-gc.ts'))};
      let garbage = Array.from({ length: 400_000 }, (_, i) => ({ i, s: 'x'.repeat(40) + i }));
      const held = garbage.length;
      garbage = undefined;
      const r = fullGc();
      console.log(JSON.stringify({ ...r, held, gcGlobal: typeof globalThis.gc }));`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { beforeBytes: number; afterBytes: number; held: number; gcGlobal: string };
    expect(out.held).toBe(400_000);
    expect(out.beforeBytes - out.afterBytes).toBeGreaterThan(20 * 1024 * 1024); // ~400k objects + strings
    expect(out.gcGlobal).toBe('undefined'); // not exposed to the program itself
  });
});
