import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { detectIpvsCapabilities } from '../../../libs/dataplane/index.ts';

const run = promisify(execFile);
const dir = mkdtempSync(path.join(tmpdir(), 'sb-cleanup-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const caps = await detectIpvsCapabilities({});

// This host kernel has no IPVS; where one does (the VM), ipvs cleanup is covered by the applier's
// VM tests instead, so this case only means something without IPVS.
describe.skipIf(caps.ipvs)('switchboard cleanup --mode ipvs on a kernel without IPVS', () => {
  it('succeeds with nothing to remove and says why', async () => {
    const r = await run(path.resolve('bin/switchboard'), ['cleanup', '--mode', 'ipvs', '--state-dir', dir, '--json']);
    const [report] = JSON.parse(r.stdout) as { mode: string; result: { kernelWrites: number; notes: string[] } }[];
    expect(report!.mode).toBe('ipvs');
    expect(report!.result.kernelWrites).toBe(0);
    expect(report!.result.notes.join(' ')).toMatch(/not available in this kernel/);
  });
});
