// Every way a manifest gets saved, on real files with the source's real directory watch: each
// change is seen (also the second and third time a file is replaced: Node 20's recursive fs.watch
// lost a file once it had been replaced by rename), and no transient state is published (no
// DELETED while a file is being replaced, no half-written content).

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestsSource, type KubeEvent, type ManifestsSourceOptions } from '../../../libs/kube/index.ts';
import { service } from './manifest-fixtures.ts';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('ManifestsSource save styles (real files, real watch)', () => {
  let dir: string;
  let source: ManifestsSource | undefined;
  let events: KubeEvent[];
  const portOf = (e: KubeEvent) => (e.object.spec as { ports: { port: number }[] }).ports[0]!.port;
  const seen = () =>
    events.map((e) => `${e.type} ${e.object.metadata.name}${e.type === 'DELETED' ? '' : `:${portOf(e)}`}`);
  async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; events: ${seen().join(', ')}`);
      await sleep(10);
    }
  }
  /** Waits until `name` is published with `port` (the poll is off: only the watch can notice). */
  const published = (name: string, port: number) =>
    waitFor(`${name}:${port}`, () =>
      events.some((e) => e.object.metadata.name === name && e.type !== 'DELETED' && portOf(e) === port),
    );
  const start = async (extra: Partial<ManifestsSourceOptions> = {}) => {
    source = new ManifestsSource({ dir, sink: (e) => void events.push(e), debounceMs: 20, settleMs: 100, ...extra });
    await source.start();
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-save-styles-'));
    events = [];
    await writeFile(join(dir, 'a.yaml'), service('web', 80));
    await writeFile(join(dir, 'other.yaml'), service('other', 90));
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('atomic saves (temp file + rename), three times in a row, then an in-place write', async () => {
    await start();
    for (const port of [81, 82, 83]) {
      await writeFile(join(dir, 'a.yaml.tmp'), service('web', port));
      await rename(join(dir, 'a.yaml.tmp'), join(dir, 'a.yaml'));
      await published('web', port);
    }
    await writeFile(join(dir, 'a.yaml'), service('web', 84));
    await published('web', 84);
    expect(seen().filter((s) => s.startsWith('DELETED'))).toEqual([]);
    expect(seen().slice(2)).toEqual(['MODIFIED web:81', 'MODIFIED web:82', 'MODIFIED web:83', 'MODIFIED web:84']);
  });

  it('sed -i (GNU sed writes a temp file and renames it), twice', async () => {
    await start();
    await run('sed', ['-i', 's/port: 80/port: 81/', join(dir, 'a.yaml')]);
    await published('web', 81);
    await run('sed', ['-i', 's/port: 81/port: 82/', join(dir, 'a.yaml')]);
    await published('web', 82);
    expect(seen().slice(2)).toEqual(['MODIFIED web:81', 'MODIFIED web:82']);
  });

  it('in-place truncate, pause, half a write, pause, the rest: only the final content is published', async () => {
    // Settle time well above the writer's pauses, so a loaded machine cannot stretch them past it.
    await start({ settleMs: 1500 });
    const text = service('web', 85);
    const fh = await open(join(dir, 'a.yaml'), 'w'); // O_TRUNC: the file is empty now
    await sleep(50);
    await fh.write(text.slice(0, text.indexOf('  ports:')));
    await sleep(50);
    await fh.write(text.slice(text.indexOf('  ports:')));
    await fh.close();
    await published('web', 85);
    expect(seen().slice(2)).toEqual(['MODIFIED web:85']);
  });

  it('vim-style save (rename the old file away, write a new one, remove the backup)', async () => {
    await start();
    for (const port of [86, 87]) {
      await rename(join(dir, 'a.yaml'), join(dir, 'a.yaml~'));
      await writeFile(join(dir, 'a.yaml'), service('web', port));
      await unlink(join(dir, 'a.yaml~'));
      await published('web', port);
    }
    expect(seen().slice(2)).toEqual(['MODIFIED web:86', 'MODIFIED web:87']);
  });

  it('deletes, and files in subdirectories (created, replaced by rename, removed with their directory)', async () => {
    await start();
    await unlink(join(dir, 'other.yaml'));
    await waitFor('other deleted', () => seen().includes('DELETED other'));
    await mkdir(join(dir, 'team', 'deep'), { recursive: true });
    await writeFile(join(dir, 'team', 'deep', 'c.yaml'), service('c', 100));
    await published('c', 100);
    await writeFile(join(dir, 'team', 'deep', '.c.yaml.tmp'), service('c', 101));
    await rename(join(dir, 'team', 'deep', '.c.yaml.tmp'), join(dir, 'team', 'deep', 'c.yaml'));
    await published('c', 101);
    // A whole directory moved in at once.
    const outside = await mkdtemp(join(tmpdir(), 'switchboard-save-styles-out-'));
    await writeFile(join(outside, 'd.yaml'), service('d', 110));
    await run('mv', [outside, join(dir, 'moved')]);
    await published('d', 110);
    await rm(join(dir, 'team'), { recursive: true });
    await waitFor('c deleted', () => seen().includes('DELETED c'));
    expect(seen().slice(2)).toEqual(['DELETED other', 'ADDED c:100', 'MODIFIED c:101', 'ADDED d:110', 'DELETED c']);
  });
});
