// `plan`/`apply --once` read a directory with the same walk, file filter, parse and duplicate
// rule as the planner's manifests source: both must resolve a directory to the same objects.

import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestsSource, readManifestDir, type KubeEvent } from '../../../libs/kube/index.ts';
import { keyOf } from '../../../libs/model/index.ts';
import { service } from './manifest-fixtures.ts';

describe('readManifestDir (plan, apply --once)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-read-dir-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('resolves duplicates, hidden files and subdirectories exactly as the planner’s source does', async () => {
    await mkdir(join(dir, 'z-team'));
    await writeFile(join(dir, 'b.yaml'), service('web', 81) + '---\n' + service('db', 5432));
    await writeFile(join(dir, 'a.yaml'), service('web', 80).replace('  namespace: default\n', ''));
    await writeFile(join(dir, 'z-team', 'web.yaml'), service('web', 82));
    await writeFile(join(dir, 'c.yaml'), service('twice', 1) + '---\n' + service('twice', 2));
    await writeFile(join(dir, '.hidden.yaml'), service('hidden'));
    const read = await readManifestDir(dir);
    // a.yaml comes first in path order: its web (namespace defaulted) wins over b.yaml's and z-team's.
    expect(read.objects.map((o) => [keyOf(o), o.kind === 'Service' ? o.ports[0]!.port : 0])).toEqual([
      ['Service default/web', 80],
      ['Service default/db', 5432],
      ['Service default/twice', 1], // the first of two in one file
    ]);
    expect(read.rejected.map((r) => `${r.source}: ${r.reason}`)).toEqual([
      'b.yaml: duplicate: also defined in a.yaml, which is used',
      'c.yaml: duplicate: defined earlier in the same file, whose first definition is used',
      'z-team/web.yaml: duplicate: also defined in a.yaml, which is used',
    ]);
    const events: KubeEvent[] = [];
    const source = new ManifestsSource({ dir, sink: (e) => void events.push(e), watch: false, settleMs: 0 });
    await source.start();
    await source.stop();
    const fromSource = events.map((e) => [
      `${e.kind}/${e.object.metadata.namespace ?? 'default'}/${e.object.metadata.name}`,
      (e.object.spec as { ports: { port: number }[] }).ports[0]!.port,
    ]);
    expect(fromSource.sort()).toEqual([
      ['Service/default/db', 5432],
      ['Service/default/twice', 1],
      ['Service/default/web', 80],
    ]);
  });

  it('refuses an alias bomb and an oversized file alone, with one clear line each', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    const names = 'abcdefghi';
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < names.length; i++)
      bomb.push(
        `${names[i]}: &${names[i]} [${Array(9)
          .fill(`*${names[i - 1]}`)
          .join(',')}]`,
      );
    await writeFile(join(dir, 'bomb.yaml'), bomb.join('\n'));
    await writeFile(join(dir, 'big.yaml'), service('big') + `# ${'x'.repeat(5000)}\n`);
    await writeFile(join(dir, 'half.yaml'), service('half') + '---\nmetadata: [unclosed\n');
    const read = await readManifestDir(dir, { maxManifestBytes: 4096 });
    expect(read.objects.map(keyOf)).toEqual(['Service default/web']);
    expect(read.rejected.map((r) => `${r.source}: ${r.reason}`)).toEqual([
      expect.stringMatching(
        /^big\.yaml: file is 5\d\d\d bytes, over the limit of 4096 bytes \(--max-manifest-bytes\)$/,
      ),
      expect.stringMatching(/^bomb\.yaml: cannot decode: .*alias.*; none of its objects are used$/i),
      expect.stringMatching(/^half\.yaml: YAML error in document 2: .*[^:]; none of its objects are used$/), // no ":;"
    ]);
  });

  it('probe10 H7: refuses an undecodable document alone and uses the file’s other documents', async () => {
    // anchors do not cross documents: document 2's alias to document 1's anchor cannot be decoded
    const anchored = service('web').replace('metadata:\n', 'metadata: &m\n');
    await writeFile(
      join(dir, 'anchors.yaml'),
      `${anchored}---\nkind: Service\nmetadata:\n  <<: *m\n---\n${service('db', 5432)}`,
    );
    const read = await readManifestDir(dir);
    expect(read.objects.map(keyOf)).toEqual(['Service default/web', 'Service default/db']);
    expect(read.rejected.map((r) => `rejected ${r.ref} (${r.source}): ${r.reason}`)).toEqual([
      expect.stringMatching(/^rejected document 2 \(anchors\.yaml\): cannot decode: Unresolved alias.*m$/),
    ]);
  });

  it('probe10 H8: names fifos and dangling or looping links with a manifest name, never opening them', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await writeFile(join(dir, 'target.txt'), service('linked', 81));
    await symlink('target.txt', join(dir, 'linked.yaml')); // a ConfigMap mount: still read
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    await symlink('loop2.yaml', join(dir, 'loop1.yaml'));
    await symlink('loop1.yaml', join(dir, 'loop2.yaml'));
    await symlink('gone.yaml', join(dir, 'dangling.yml'));
    execFileSync('mkfifo', [join(dir, 'fifo.txt')]); // not a manifest name: not mentioned
    await mkdir(join(dir, 'dir.yaml')); // a directory is walked, whatever its name
    await writeFile(
      join(dir, 'dir.yaml', 'inner.json'),
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'inner' },
        spec: { clusterIP: '10.96.0.9', ports: [{ port: 9 }] },
      }),
    );
    const read = await readManifestDir(dir);
    expect(read.objects.map(keyOf)).toEqual(['Service default/web', 'Service default/inner', 'Service default/linked']);
    expect(read.rejected.map((r) => `${r.ref} ${r.source}: ${r.reason}`)).toEqual([
      'file dangling.yml: skipped: symlink target missing',
      'file fifo.yaml: skipped: not a regular file (fifo)',
      'file loop1.yaml: skipped: symlink loop',
      'file loop2.yaml: skipped: symlink loop',
    ]);
  });

  it('names a missing directory in one line', async () => {
    await expect(readManifestDir(join(dir, 'nope'))).rejects.toThrow(/^manifests directory .*nope does not exist$/);
  });
});
