import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// BULK_LOOPS (plan-kernel-ops.ts): node 20's V8 compiled the planner's and validation's loops
// on-stack during a large from-empty load and re-entered that code on every later call, where it
// deoptimized at once: one or more deoptimizations per endpoint change, forever. This runs the
// dataplane in a child node with V8's own trace and counts, per function, the deoptimizations in
// 20 changes after 10 warm ones. With the for-loops of before, planKernelOps or validateParts
// deoptimized in all 20 (which of them depends on when the background compiler finishes: not
// every run compiles both on-stack, so the load is 4 000 services, where one of them always was).
describe('one endpoint change after a large load', () => {
  it('does not deoptimize the same function change after change', () => {
    const probe = fileURLToPath(new URL('./deopt-probe.ts', import.meta.url));
    const out = execFileSync(
      process.execPath,
      ['--trace-deopt', '--trace-osr', '--import', 'tsx', probe, '4000', '10', '20'],
      { encoding: 'utf8', maxBuffer: 256 << 20 },
    );
    expect(out).toContain('probe: done');
    const measured = out.slice(out.indexOf('probe: measured changes begin'));
    const byFunction = new Map<string, number>();
    for (const [, name = ''] of measured.matchAll(/deoptimizing 0x[0-9a-f]+ <JSFunction (\S*) /g))
      byFunction.set(name, (byFunction.get(name) ?? 0) + 1);
    const repeated = [...byFunction].filter(([, n]) => n > 5);
    expect(repeated).toEqual([]);
  }, 120_000);
});
