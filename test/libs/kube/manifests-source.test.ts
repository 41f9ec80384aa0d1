import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  MANIFEST_FILE_ANNOTATION,
  ManifestsSource,
  type KnownObjects,
  type KubeEvent,
  type KubeKind,
  type RawKubeObject,
  type ManifestsSourceOptions,
} from '../../../libs/kube/index.ts';
import type { Rejection } from '../../../libs/model/index.ts';
import { service } from './manifest-fixtures.ts';

const nodeJson = (name: string) =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name },
    status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] },
  });

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The known objects a log would hand back: the last emitted state of every live object. */
function knownFrom(events: readonly KubeEvent[]): KnownObjects {
  const last = new Map<string, KubeEvent>();
  for (const e of events) last.set(`${e.kind}/${e.object.metadata.namespace ?? ''}/${e.object.metadata.name}`, e);
  const objects = new Map<KubeKind, RawKubeObject[]>();
  for (const e of last.values())
    if (e.type !== 'DELETED') objects.set(e.kind, [...(objects.get(e.kind) ?? []), e.object]);
  return { objects, lastResourceVersion: events.at(-1)?.resourceVersion };
}

describe('ManifestsSource', () => {
  let dir: string;
  let source: ManifestsSource | undefined;
  let events: KubeEvent[];
  /** Everything ever emitted, across restarts: what the event log would hold. */
  let logged: KubeEvent[];
  let rejected: Rejection[];
  const summary = (list = events) =>
    list.map(
      (e) => `${e.type} ${e.kind} ${e.object.metadata.name} rv=${e.resourceVersion}${e.relist ? ' relist' : ''}`,
    );
  const open = async (extra: Partial<ManifestsSourceOptions> = {}) => {
    source = new ManifestsSource({
      dir,
      sink: (e) => {
        events.push(e);
        logged.push(e);
      },
      onRejected: (r) => (rejected = [...r]),
      watch: false,
      settleMs: 0,
      ...extra,
    });
    await source.start();
    return source;
  };
  const restart = async (extra: Partial<ManifestsSourceOptions> = {}) => {
    await source?.stop();
    const known = knownFrom(logged);
    events = [];
    return open({ known, ...extra });
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-manifests-'));
    events = [];
    logged = [];
    rejected = [];
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('emits the directory as ADDED, then diffs rescans into MODIFIED/DELETED with increasing RVs', async () => {
    await writeFile(join(dir, 'a.yaml'), `${service('web')}---\n${service('db', 5432)}`);
    await writeFile(join(dir, 'nodes.json'), nodeJson('n1'));
    await open();
    expect(summary()).toEqual([
      'ADDED Node n1 rv=1 relist',
      'ADDED Service db rv=2 relist',
      'ADDED Service web rv=3 relist',
    ]);
    expect(events[2]!.object.metadata.resourceVersion).toBe('3');
    expect(events[2]!.object.metadata.annotations).toEqual({ [MANIFEST_FILE_ANNOTATION]: 'a.yaml' });
    expect(rejected).toEqual([]);
    events = [];
    await writeFile(join(dir, 'a.yaml'), service('web', 8080));
    await source!.rescan();
    expect(summary()).toEqual(['DELETED Service db rv=4', 'MODIFIED Service web rv=5']);
    events = [];
    await source!.rescan();
    expect(events).toEqual([]); // nothing changed, nothing emitted
  });

  it('restarts from the known objects: an unchanged directory emits nothing, a file removed while down is DELETED', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await writeFile(join(dir, 'b.yaml'), service('db', 5432));
    await open();
    expect(events).toHaveLength(2);
    await restart();
    expect(events).toEqual([]); // before: every restart re-emitted every object as ADDED rv=1
    expect(source!.health().objects).toBe(2);
    await source!.stop();
    await unlink(join(dir, 'b.yaml'));
    await writeFile(join(dir, 'a.yaml'), service('web', 8080));
    await restart();
    // The deletion made while the source was down is reported, and RVs continue after the log's last one.
    expect(summary()).toEqual(['DELETED Service db rv=3 relist', 'MODIFIED Service web rv=4 relist']);
  });

  it('treats a namespace-less object and the same object in "default" as one object (a duplicate)', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web').replace('  namespace: default\n', ''));
    await writeFile(join(dir, 'b.yaml'), service('web', 8080));
    await open();
    expect(summary()).toEqual(['ADDED Service web rv=1 relist']);
    expect(events[0]!.object.metadata.annotations).toEqual({ [MANIFEST_FILE_ANNOTATION]: 'a.yaml' });
    expect(rejected).toEqual([
      { ref: 'Service default/web', source: 'b.yaml', reason: 'duplicate: also defined in a.yaml, which is used' },
    ]);
    // The duplicate goes away: the object stays, nothing is deleted.
    await unlink(join(dir, 'a.yaml'));
    events = [];
    await source!.rescan();
    expect(summary()).toEqual(['MODIFIED Service web rv=2']);
    expect(rejected).toEqual([]);
  });

  it('rejects a YAML alias bomb alone: other files keep flowing', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await open();
    const names = 'abcdefghi';
    const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]'];
    for (let i = 1; i < names.length; i++)
      bomb.push(
        `${names[i]}: &${names[i]} [${Array(9)
          .fill(`*${names[i - 1]}`)
          .join(',')}]`,
      );
    await writeFile(join(dir, 'bomb.yaml'), bomb.join('\n'));
    await writeFile(join(dir, 'b.yaml'), service('db', 5432));
    await source!.rescan(); // before: the whole scan threw, and b.yaml was never seen
    expect(summary()).toEqual(['ADDED Service web rv=1 relist', 'ADDED Service db rv=2']);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ ref: 'file', source: 'bomb.yaml' });
    expect(rejected[0]!.reason).toMatch(/^cannot decode: .*alias/i);
    expect(source!.health().lastError).toBeUndefined();
  });

  it('probe10 H7/H8: uses a file’s decodable documents, rejects the other alone, and names a fifo and a link loop', async () => {
    const anchored = service('web').replace('metadata:\n', 'metadata: &m\n');
    await writeFile(join(dir, 'anchors.yaml'), `${anchored}---\nkind: Service\nmetadata:\n  <<: *m\n`);
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    await symlink('loop.yaml', join(dir, 'loop.yaml'));
    await open();
    expect(summary()).toEqual(['ADDED Service web rv=1 relist']);
    expect(rejected.map((r) => `${r.ref} ${r.source}: ${r.reason}`)).toEqual([
      'file fifo.yaml: skipped: not a regular file (fifo)',
      'file loop.yaml: skipped: symlink loop',
      expect.stringMatching(/^document 2 anchors\.yaml: cannot decode: Unresolved alias/),
    ]);
    // fixed: the file's documents all count again, and the rejection goes away
    await writeFile(join(dir, 'anchors.yaml'), `${service('web')}---\n${service('db', 5432)}`);
    await unlink(join(dir, 'fifo.yaml'));
    await unlink(join(dir, 'loop.yaml'));
    events = [];
    await source!.rescan();
    expect(summary()).toEqual(['ADDED Service db rv=2']);
    expect(rejected).toEqual([]);
    // an edit that breaks db's document (a typo) does not delete db: what the file defined before
    // and its decoded documents no longer name is kept, as kubectl apply leaves the live object
    await writeFile(join(dir, 'anchors.yaml'), `${anchored}---\nkind: Service\nmetadata:\n  <<: *m\n`);
    events = [];
    await source!.rescan();
    expect(summary()).toEqual([]);
    expect(rejected.map((r) => `${r.ref} ${r.source}`)).toEqual(['document 2 anchors.yaml']);
  });

  it('refuses a file over the size limit with a clear error, keeping its previous objects', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await writeFile(join(dir, 'b.yaml'), service('db', 5432));
    await open({ maxManifestBytes: 1000 });
    await writeFile(join(dir, 'a.yaml'), service('web', 8080) + `# ${'x'.repeat(2000)}\n`);
    await writeFile(join(dir, 'b.yaml'), service('db', 5433));
    events = [];
    await source!.rescan();
    expect(summary()).toEqual(['MODIFIED Service db rv=3']);
    expect(rejected).toEqual([
      {
        ref: 'file',
        source: 'a.yaml',
        reason: `file is ${(service('web', 8080) + `# ${'x'.repeat(2000)}\n`).length} bytes, over the limit of 1000 bytes (--max-manifest-bytes); keeping its previous objects`,
      },
    ]);
  });

  it('keeps a broken file’s objects, also across a restart (the file each object came from is logged)', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await writeFile(join(dir, 'b.yaml'), service('db', 5432));
    await open();
    await writeFile(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: [unclosed');
    await unlink(join(dir, 'b.yaml'));
    await restart();
    // b.yaml is gone: its Service is deleted; a.yaml is broken: its Service stays.
    expect(summary()).toEqual(['DELETED Service db rv=3 relist']);
    expect(rejected).toEqual([
      {
        ref: 'file',
        source: 'a.yaml',
        reason: expect.stringMatching(/^YAML error in document 1: .*; keeping its previous objects$/),
      },
    ]);
  });

  it('reads subdirectories and symlinked files, and skips hidden files and directories', async () => {
    await mkdir(join(dir, 'team-a'));
    await mkdir(join(dir, '.git'));
    await mkdir(join(dir, '..2026_11_30'));
    await writeFile(join(dir, 'team-a', 'web.yaml'), service('web'));
    await writeFile(join(dir, '.git', 'x.yaml'), service('hidden-dir'));
    await writeFile(join(dir, '.web.yaml.swp'), service('swap'));
    await writeFile(join(dir, '.hidden.yaml'), service('hidden-file'));
    await writeFile(join(dir, '..2026_11_30', 'db.yaml'), service('db', 5432));
    await symlink(join('..2026_11_30', 'db.yaml'), join(dir, 'db.yaml')); // a ConfigMap volume's layout
    await open();
    expect(summary()).toEqual(['ADDED Service db rv=1 relist', 'ADDED Service web rv=2 relist']);
    expect(events.map((e) => e.object.metadata.annotations)).toEqual([
      { [MANIFEST_FILE_ANNOTATION]: 'db.yaml' },
      { [MANIFEST_FILE_ANNOTATION]: 'team-a/web.yaml' },
    ]);
  });

  it('does not publish a half-written file: its new content counts once it has settled', async () => {
    const full = `${service('web', 8080)}---\n${service('db', 5432)}`;
    await writeFile(join(dir, 'a.yaml'), `${service('web')}---\n${service('db', 5432)}`);
    await open({ settleMs: 400 });
    expect(summary()).toEqual(['ADDED Service db rv=1 relist', 'ADDED Service web rv=2 relist']);
    events = [];
    // A writer caught mid-write: valid YAML, but only the first half (db is missing).
    await writeFile(join(dir, 'a.yaml'), full.slice(0, full.indexOf('---')));
    await source!.rescan();
    expect(events).toEqual([]); // before: "DELETED db" was published at once
    expect(source!.health().unsettledFiles).toBe(1);
    await writeFile(join(dir, 'a.yaml'), full);
    await until('settled', () => events.length > 0);
    expect(summary()).toEqual(['MODIFIED Service web rv=3']);
    expect(source!.health().unsettledFiles).toBe(0);
  });

  it('an old file that is read for the first time counts at once (nothing to settle)', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    const old = new Date(Date.now() - 60_000);
    await utimes(join(dir, 'a.yaml'), old, old);
    await open({ settleMs: 10_000 });
    expect(summary()).toEqual(['ADDED Service web rv=1 relist']);
  });

  it('an emptied file keeps its objects for the grace period (truncated, not yet written)', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await open({ settleMs: 20, emptyFileGraceMs: 60_000 });
    await writeFile(join(dir, 'a.yaml'), '');
    await sleep(60);
    await source!.rescan();
    await sleep(60);
    await source!.rescan();
    expect(summary()).toEqual(['ADDED Service web rv=1 relist']); // no DELETED while it is empty
    await writeFile(join(dir, 'a.yaml'), service('web', 8080));
    await source!.rescan(); // (watch: false) the new content is seen, and counts once settled
    await until('filled', () => events.length === 2);
    expect(summary()).toEqual(['ADDED Service web rv=1 relist', 'MODIFIED Service web rv=2']);
  });

  it('withdraws an emptied file’s objects once the grace period has passed', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await open({ settleMs: 20, emptyFileGraceMs: 200 });
    await writeFile(join(dir, 'a.yaml'), '');
    await source!.rescan();
    await until('deleted after the grace period', () => events.length === 2);
    expect(summary()).toEqual(['ADDED Service web rv=1 relist', 'DELETED Service web rv=2']);
  });

  it('fails start() clearly when the directory does not exist; a later failure shows in lastError until a scan works', async () => {
    const missing = new ManifestsSource({ dir: join(dir, 'nope'), sink: () => {}, watch: false });
    await expect(missing.start()).rejects.toThrow(/^manifests directory .*nope does not exist$/);
    await writeFile(join(dir, 'a.yaml'), service('web'));
    await mkdir(join(dir, 'sub'));
    const sub = join(dir, 'sub');
    source = new ManifestsSource({ dir: sub, sink: (e) => void events.push(e), watch: false, settleMs: 0 });
    await source.start();
    await rm(sub, { recursive: true });
    await expect(source.rescan()).rejects.toThrow(/does not exist/);
    expect(source.problem()).toMatch(/does not exist/);
    expect(source.health().errors).toBe(1);
    await mkdir(sub);
    await source.rescan();
    expect(source.problem()).toBeUndefined();
    expect(source.health().lastError).toBeUndefined();
  });
});
