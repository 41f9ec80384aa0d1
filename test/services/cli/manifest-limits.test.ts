// --max-manifest-bytes on `plan` (in-process: spawning the CLI costs seconds on a loaded machine).

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../../services/cli/main.ts';
import { endpointSlice, service } from '../../libs/kube/manifest-fixtures.ts';

describe('plan --max-manifest-bytes', () => {
  let dir: string;
  let stderr: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-limits-'));
    stderr = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      stderr += String(s);
      return true;
    });
    vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a larger file with one line naming it and the limit; a bad value is a usage error', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await writeFile(join(dir, 'big.yaml'), service('big', 81) + `# ${'x'.repeat(3000)}\n`);
    expect(await main(['plan', '--manifests', dir, '--node', 'n1', '--max-manifest-bytes', '2000', '--strict'])).toBe(
      1,
    );
    expect(stderr).toMatch(
      /^rejected file \(big\.yaml\): file is \d+ bytes, over the limit of 2000 bytes \(--max-manifest-bytes\)\n$/,
    );
    stderr = '';
    expect(await main(['plan', '--manifests', dir, '--node', 'n1', '--strict'])).toBe(0); // default limit: 8 MiB
    expect(stderr).toBe('');
    expect(await main(['plan', '--manifests', dir, '--node', 'n1', '--max-manifest-bytes', '10MB'])).toBe(2);
    expect(stderr).toBe('switchboard: --max-manifest-bytes must be a whole number of bytes, got "10MB"\n');
  });

  it('rejects an EndpointSlice over 1000 endpoints alone, with one line; the file’s other slice is used (probe10 H9)', async () => {
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      stdout += String(s);
      return true;
    });
    await writeFile(
      join(dir, 'web.yaml'),
      `${service('web')}${endpointSlice('web-big', 'web', 1001)}${endpointSlice('web-ok', 'web', 2, 200)}`,
    );
    expect(await main(['plan', '--manifests', dir, '--node', 'n1', '--format', 'ipvsadm'])).toBe(0);
    expect(stderr).toBe(
      "rejected EndpointSlice default/web-big (web.yaml): 1001 endpoints, over 1000 (the API server's limit)\n",
    );
    expect(stdout).toContain('-a -t 10.96.0.80:80 -r 10.200.0.1:8080');
    expect(stdout).not.toContain('10.1.0.1:8080');
  });
});
