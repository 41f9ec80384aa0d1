import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManifestsSource, type KubeEvent } from '../../../libs/kube/index.ts';

const service = (name: string, port = 80) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  type: ClusterIP
  clusterIP: 10.96.0.${port % 250}
  ports:
  - name: http
    port: ${port}
    protocol: TCP
`;
const nodeJson = (name: string) =>
  JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] } });

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('ManifestsSource', () => {
  let dir: string;
  let source: ManifestsSource | undefined;
  let events: KubeEvent[];
  const summary = () => events.map((e) => `${e.type} ${e.kind} ${e.object.metadata.name} rv=${e.resourceVersion}${e.relist ? ' relist' : ''}`);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchboard-manifests-'));
    events = [];
  });
  afterEach(async () => {
    await source?.stop();
    source = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('emits the directory as ADDED, then diffs rescans into MODIFIED/DELETED with increasing RVs', async () => {
    await writeFile(join(dir, 'a.yaml'), `${service('web')}---\n${service('db', 5432)}`);
    await writeFile(join(dir, 'nodes.json'), nodeJson('n1'));
    const rejected: unknown[] = [];
    source = new ManifestsSource({ dir, sink: (e) => void events.push(e), watch: false, onRejected: (r) => rejected.push(...r) });
    await source.start();
    await source.synced;
    expect(summary()).toEqual(['ADDED Node n1 rv=1 relist', 'ADDED Service db rv=2 relist', 'ADDED Service web rv=3 relist']);
    expect(events[2]!.object.metadata.resourceVersion).toBe('3');
    expect(rejected).toEqual([]);
    events = [];
    await writeFile(join(dir, 'a.yaml'), service('web', 8080));
    await source.rescan();
    expect(summary()).toEqual(['DELETED Service db rv=4', 'MODIFIED Service web rv=5']);
    events = [];
    await source.rescan();
    expect(events).toEqual([]); // nothing changed, nothing emitted
  });

  it('reports invalid objects and keeps a half-written file’s previous objects', async () => {
    await writeFile(join(dir, 'a.yaml'), service('web'));
    const rejected: { reason: string }[][] = [];
    source = new ManifestsSource({ dir, sink: (e) => void events.push(e), watch: false, onRejected: (r) => rejected.push([...r]) });
    await source.start();
    await writeFile(join(dir, 'a.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: [unclosed');
    await writeFile(join(dir, 'b.yaml'), 'apiVersion: v1\nkind: Service\nmetadata:\n  name: nons\n');
    await source.rescan();
    // The invalid but nameable Service is still emitted (the planner rejects it alone and logs it);
    // the half-written file's Service keeps its previous state (no DELETED).
    expect(summary()).toEqual(['ADDED Service web rv=1 relist', 'ADDED Service nons rv=2']);
    expect(rejected.at(-1)!.length).toBe(2);
    expect(rejected.at(-1)![0]!.reason).toMatch(/keeping its previous objects/);
    expect(source.health().rejected).toBe(2);
  });

  it('watches the directory and emits changes on its own', async () => {
    source = new ManifestsSource({ dir, sink: (e) => void events.push(e), debounceMs: 20, startResourceVersion: 41 });
    await source.start();
    expect(events).toEqual([]);
    await writeFile(join(dir, 'n.json'), nodeJson('n1'));
    await until('ADDED', () => events.length === 1);
    await unlink(join(dir, 'n.json'));
    await until('DELETED', () => events.length === 2);
    expect(summary()).toEqual(['ADDED Node n1 rv=42', 'DELETED Node n1 rv=43']);
  });

  it('fails start() clearly when the directory does not exist', async () => {
    const missing = new ManifestsSource({ dir: join(dir, 'nope'), sink: () => {}, watch: false });
    await expect(missing.start()).rejects.toThrow(/ENOENT/);
  });
});
