/**
 * Scale probe for docs/scale.md: per-unit costs at several cluster sizes with a fixed number of
 * endpoints per service, so the curves can be extrapolated to Kubernetes' envelope (5,000 nodes,
 * 10,000 services, 250 endpoints per service). Usage:
 *   node --expose-gc --import tsx bench/scale/scale-probe.ts [--endpoints 250] [--nodes 5000]
 *        [--services 125,250,500,1000] [--events 100] [--event whole-slice|one-endpoint] [--out FILE]
 *
 * For each size S (services × E endpoints over N nodes, bench/planner/generate-cluster.ts):
 *  - planner: heap of the ClusterState built from the objects (the planner's own state; its
 *    informer holds the raw objects again, measured as `rawObjectsMb`), CPU per watch event
 *    (one EndpointSlice rewritten: read + apply + commit + root hash, mean of `events`);
 *  - wire: bytes of the delta message for that event, of the default target notice carrying it
 *    (what each node receives per event), and of the full checkpoint (every 50th version);
 *  - applier (one node): heap of its data index + incremental renderer, and CPU per event
 *    (decode the delta message + check its payload digest + apply with the carried entry hashes
 *    + verify the data hash + incremental render + node-state hash), and, same run, the same
 *    events on a node that hashes every changed entry itself (`applierHashingEntriesCpuPerEventMs`);
 *  - patches (docs/distribution.md, "Patches for large services"): the default notice carrying the
 *    event's service as a patch instead (`patchNoticeBytes`, 0 when no patch is made: fewer than
 *    128 endpoints, or a change over about half the entry: PATCH_MAX_SHARE), the planner's CPU to make it (diff + its
 *    check, `plannerPatchCpuPerEventMs`), and a third node taking the same events as signed
 *    patches (decode + rebuild + apply + verify + render + hash, `applierPatchCpuPerEventMs`).
 * Baseline for every heap figure, same run: `JSON.parse` of the same objects' JSON (heap of the
 * plain parsed objects). Last stdout line: JSON with every figure and the least-squares slope
 * per service of each.
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { writeFileSync } from 'node:fs';
import {
  decodeDelta,
  decodePatchedDelta,
  encodeArtifact,
  H,
  patchNotice,
  payloadDigest,
} from '../../libs/bus/index.ts';
import { expandPatchedDelta } from '../../libs/applier/index.ts';
import {
  DEFAULT_PROXY_CONFIG,
  diffServiceEntry,
  readKubeObject,
  type ServiceEntry,
  type DataDelta,
  type KubeObject,
  type VersionArtifact,
} from '../../libs/model/index.ts';
import { ClusterDataIndex, ClusterState, NodeStateRenderer } from '../../libs/planner/index.ts';
import { generateCluster, makeSlice } from '../planner/generate-cluster.ts';

const { values } = benchArgs({
  options: {
    endpoints: { type: 'string', default: '250' },
    nodes: { type: 'string', default: '5000' },
    services: { type: 'string', default: '125,250,500,1000' },
    events: { type: 'string', default: '100' },
    /** What one event does: rewrite a slice whole (every endpoint's port moves), or flip one endpoint. */
    event: { type: 'string', default: 'whole-slice' },
    out: { type: 'string' },
  },
});
const E = Number(values.endpoints),
  N = Number(values.nodes),
  EVENTS = Number(values.events);
const sizes = values.services.split(',').map(Number);
if (values.event !== 'whole-slice' && values.event !== 'one-endpoint') {
  process.stderr.write(`--event: whole-slice or one-endpoint, not ${values.event}\n`);
  process.exit(2);
}
const ONE_ENDPOINT = values.event === 'one-endpoint';
if (!global.gc) throw new Error('run with node --expose-gc');
const gc = global.gc;

const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const MB = 1048576;
const read = (raw: unknown): KubeObject => {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(r.rejection.reason);
  return r.object;
};
const cpuMs = (f: () => void): number => {
  const c = process.cpuUsage();
  f();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / 1000;
};

interface Row {
  services: number;
  endpoints: number;
  nodes: number;
  rawObjectsMb: number;
  plannerStateMb: number;
  plannerCpuPerEventMs: number;
  deltaBytes: number;
  noticeBytes: number;
  checkpointBytes: number;
  applierMb: number;
  applierCpuPerEventMs: number;
  /** The same events on a node that hashes every changed entry itself (no carried hashes). */
  applierHashingEntriesCpuPerEventMs: number;
  /** The default notice with the event's service as a patch (0: no patch made). */
  patchNoticeBytes: number;
  plannerPatchCpuPerEventMs: number;
  /** The same events as signed patches, on a third node. */
  applierPatchCpuPerEventMs: number;
}

/**
 * The slice of service `s` for event `i`: rewritten whole (generation i + 1), or as generated with
 * one endpoint's readiness flipped (a pod going unready: the common event; with the previous
 * event's flip on this service undone, one or two endpoints change).
 */
function eventSlice(s: number, i: number): unknown {
  if (!ONE_ENDPOINT) return makeSlice(`ns-${s % 50}`, s, E, N, i + 1, s % 4 === 0);
  const slice = makeSlice(`ns-${s % 50}`, s, E, N, 0, s % 4 === 0) as {
    metadata: { resourceVersion: string };
    endpoints: { conditions: { ready: boolean } }[];
  };
  slice.metadata.resourceVersion = String(1_000_000 + i);
  const e = slice.endpoints[i % E]!;
  e.conditions.ready = !e.conditions.ready;
  return slice;
}

function probe(S: number): Row {
  const base = heap();
  let gen: ReturnType<typeof generateCluster> | undefined = generateCluster({
    services: S,
    endpointsPerService: E,
    nodes: N,
  });
  let raw: unknown[] | undefined = JSON.parse(
    JSON.stringify([...gen.nodes, ...gen.services, ...gen.slices]),
  ) as unknown[];
  gen = undefined;
  const rawObjectsMb = (heap() - base) / MB;
  let objects: KubeObject[] | undefined = raw.map(read);
  raw = undefined;
  const state = ClusterState.fromObjects(objects);
  objects = undefined; // what the state keeps of them is its own (a built service's slices packed)
  state.hash();
  const plannerStateMb = (heap() - base) / MB;

  // One watch event, as the planner handles it; the delta and the version it makes.
  let version = 1;
  let lastDelta: DataDelta | undefined;
  const step = (i: number) => {
    const s = (i * 7919) % S;
    state.apply({ op: 'upsert', object: read(eventSlice(s, i)) });
    lastDelta = state.commit();
    state.hash();
  };
  for (let i = 0; i < 20; i++) step(i); // warm-up
  const plannerCpuPerEventMs =
    cpuMs(() => {
      for (let i = 20; i < 20 + EVENTS; i++) step(i);
    }) / EVENTS;
  if (!lastDelta) throw new Error('no delta');
  version += 1;
  const artifact: VersionArtifact & { form: 'delta' } = {
    version,
    parent: version - 1,
    hash: state.hash(),
    reason: '1 events',
    createdAt: new Date().toISOString(),
    form: 'delta',
    delta: lastDelta,
  };
  const [msg] = encodeArtifact(artifact, { chunkBytes: 4 * MB, baseCheckpoint: 1 });
  const headers = { ...msg!.headers, [H.sig]: 'x'.repeat(88) }; // an Ed25519 signature is 88 base64 chars
  const noticeBytes = Buffer.byteLength(
    JSON.stringify({
      revision: version,
      target: { version, configRevision: 0, issued: Date.now(), sig: 'x'.repeat(88) },
      delta: { headers, payload: new TextDecoder().decode(msg!.payload) },
    }),
  );
  const notice = (data: object) =>
    Buffer.byteLength(
      JSON.stringify({
        revision: version,
        target: { version, configRevision: 0, issued: Date.now(), sig: 'x'.repeat(88) },
        ...data,
        sig: 'x'.repeat(88),
      }),
    );
  // the patches of an event's services against the entries before it, as DataAxis.record makes them
  const held = new Map<string, readonly [ServiceEntry, string]>();
  for (const e of state.data.services()) held.set(e.key, [e, state.data.serviceHash(e.key)!]);
  const patchesOf = (d: DataDelta) =>
    d.upsertServices.flatMap((e) => {
      const b = held.get(e.key);
      const hash = state.data.serviceHash(e.key)!;
      held.set(e.key, [e, hash]);
      const p = b && diffServiceEntry(b[0], e, b[1], hash);
      return p ? [p] : [];
    });
  const data = state.data.toClusterData();
  const checkpointBytes = Buffer.byteLength(JSON.stringify({ ...artifact, form: 'checkpoint', data }));

  // One applier: its data index (from the checkpoint's JSON, as a node loads it) and renderer.
  const cpJson = JSON.stringify(data);
  const a0 = heap();
  let index: ClusterDataIndex | undefined = ClusterDataIndex.from(JSON.parse(cpJson));
  let renderer: NodeStateRenderer | undefined = new NodeStateRenderer('node-0', DEFAULT_PROXY_CONFIG);
  renderer.reset(index);
  renderer.hash();
  const applierMb = (heap() - a0) / MB;
  // Each event's delta message as the planner publishes it (entry hashes carried, payload digest).
  const messages: { payload: Uint8Array; digest: string; patch: string | undefined }[] = [];
  let patchNoticeBytes = 0;
  let plannerPatchMs = 0;
  for (let i = 0; i < EVENTS; i++) {
    step(20 + EVENTS + i);
    version += 1;
    const a = { ...artifact, version, parent: version - 1, hash: state.hash(), delta: lastDelta! };
    const [m] = encodeArtifact(a, { chunkBytes: 4 * MB, baseCheckpoint: 1 });
    let patches: ReturnType<typeof patchesOf> = [];
    plannerPatchMs += cpuMs(() => {
      patches = patchesOf(lastDelta!);
    });
    const patch = patchNotice(a, patches);
    if (patch) patchNoticeBytes = notice({ patch });
    messages.push({ payload: m!.payload, digest: m!.headers[H.payloadDigest]!, patch: patch?.payload });
  }
  const plannerPatchCpuPerEventMs = plannerPatchMs / EVENTS;
  // A second node, same data, that hashes every changed entry itself (as before entry hashes were
  // carried, and as now when nothing vouches for them): the baseline of the same run.
  const idx = index;
  const r = renderer;
  const idx2 = ClusterDataIndex.from(JSON.parse(cpJson));
  const r2 = new NodeStateRenderer('node-0', DEFAULT_PROXY_CONFIG);
  r2.reset(idx2);
  r2.hash();
  // A third node, same data, taking each event's patch where one was made (signed: vouched)
  const idx3 = ClusterDataIndex.from(JSON.parse(cpJson));
  const r3 = new NodeStateRenderer('node-0', DEFAULT_PROXY_CONFIG);
  r3.reset(idx3);
  r3.hash();
  const heldBy3 = (key: string) => {
    const entry = idx3.service(key);
    return entry && { entry, hash: idx3.serviceHash(key)! };
  };
  const decoded = (payload: Uint8Array) => {
    const d = decodeDelta(payload);
    if (!d.ok) throw new Error(d.error);
    return d.value;
  };
  // The two nodes take each event in turn (so JIT warm-up and GC drift hit both alike); the
  // first WARM events are not counted.
  const WARM = Math.min(10, Math.floor(EVENTS / 5));
  let carriedMs = 0;
  let hashingMs = 0;
  let patchMs = 0;
  messages.forEach((m, i) => {
    const a = cpuMs(() => {
      if (payloadDigest(m.payload) !== m.digest) throw new Error('payload digest');
      const d = decoded(m.payload);
      idx.apply(d.delta, undefined, d.entryHashes);
      idx.hash();
      r.update(idx, d.delta);
      r.hash();
    });
    const b = cpuMs(() => {
      const d = decoded(m.payload);
      idx2.apply(d.delta);
      idx2.hash();
      r2.update(idx2, d.delta);
      r2.hash();
    });
    const c = cpuMs(() => {
      let d: { delta: DataDelta; entryHashes?: { services: readonly string[]; nodes: readonly string[] } };
      if (m.patch) {
        const p = decodePatchedDelta(m.patch);
        if (!p.ok) throw new Error(p.error);
        const x = expandPatchedDelta(p.value, heldBy3, true);
        if ('error' in x) throw new Error(x.error);
        d = x.delta;
      } else d = decoded(m.payload);
      idx3.apply(d.delta, undefined, d.entryHashes);
      idx3.hash();
      r3.update(idx3, d.delta);
      r3.hash();
    });
    if (i >= WARM) {
      carriedMs += a;
      hashingMs += b;
      patchMs += c;
    }
  });
  const applierCpuPerEventMs = carriedMs / (EVENTS - WARM);
  const applierHashingEntriesCpuPerEventMs = hashingMs / (EVENTS - WARM);
  if (idx.hash() !== state.hash()) throw new Error('applier data hash differs from the planner');
  if (idx2.hash() !== state.hash()) throw new Error('applier data hash differs from the planner');
  if (idx3.hash() !== state.hash()) throw new Error('applier data hash differs from the planner (patches)');
  if (r3.hash() !== r.hash()) throw new Error('node-state hash from patches differs');
  index = undefined;
  renderer = undefined;
  return {
    services: S,
    endpoints: E,
    nodes: N,
    rawObjectsMb,
    plannerStateMb,
    plannerCpuPerEventMs,
    deltaBytes: msg!.payload.length,
    noticeBytes,
    checkpointBytes,
    applierMb,
    applierCpuPerEventMs,
    applierHashingEntriesCpuPerEventMs,
    patchNoticeBytes,
    plannerPatchCpuPerEventMs,
    applierPatchCpuPerEventMs: patchMs / (EVENTS - WARM),
  };
}

/** Least-squares line y = a + b·x. */
function fit(xs: number[], ys: number[]): { a: number; b: number } {
  const n = xs.length;
  const mx = xs.reduce((s, x) => s + x, 0) / n;
  const my = ys.reduce((s, y) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const b = sxx === 0 ? 0 : sxy / sxx;
  return { a: my - b * mx, b };
}

const rows: Row[] = [];
for (const S of sizes) {
  const r = probe(S);
  rows.push(r);
  process.stderr.write(`${JSON.stringify(r)}\n`);
}
const keys = [
  'rawObjectsMb',
  'plannerStateMb',
  'plannerCpuPerEventMs',
  'deltaBytes',
  'noticeBytes',
  'checkpointBytes',
  'applierMb',
  'applierCpuPerEventMs',
  'applierHashingEntriesCpuPerEventMs',
  'patchNoticeBytes',
  'plannerPatchCpuPerEventMs',
  'applierPatchCpuPerEventMs',
] as const;
const at10k: Record<string, number> = {};
const slopes: Record<string, { a: number; b: number }> = {};
for (const k of keys) {
  slopes[k] = fit(
    rows.map((r) => r.services),
    rows.map((r) => r[k]),
  );
  at10k[k] = slopes[k]!.a + slopes[k]!.b * 10_000;
}
console.log(
  '| services × endpoints | planner state MB | planner CPU/event ms | delta B | notice B | checkpoint MB | applier MB | applier CPU/event ms | same, hashing entries | patch notice B | planner patch ms | applier CPU/event from patches ms |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.services} × ${r.endpoints} | ${r.plannerStateMb.toFixed(0)} | ${r.plannerCpuPerEventMs.toFixed(2)} | ${r.deltaBytes} | ${r.noticeBytes} | ${(r.checkpointBytes / MB).toFixed(1)} | ${r.applierMb.toFixed(0)} | ${r.applierCpuPerEventMs.toFixed(2)} | ${r.applierHashingEntriesCpuPerEventMs.toFixed(2)} | ${r.patchNoticeBytes} | ${r.plannerPatchCpuPerEventMs.toFixed(2)} | ${r.applierPatchCpuPerEventMs.toFixed(2)} |`,
  );
}
console.log(
  `| 10000 × ${E} (fit) | ${at10k.plannerStateMb!.toFixed(0)} | ${at10k.plannerCpuPerEventMs!.toFixed(2)} | ${at10k.deltaBytes!.toFixed(0)} | ${at10k.noticeBytes!.toFixed(0)} | ${(at10k.checkpointBytes! / MB).toFixed(0)} | ${at10k.applierMb!.toFixed(0)} | ${at10k.applierCpuPerEventMs!.toFixed(2)} | ${at10k.applierHashingEntriesCpuPerEventMs!.toFixed(2)} | ${at10k.patchNoticeBytes!.toFixed(0)} | ${at10k.plannerPatchCpuPerEventMs!.toFixed(2)} | ${at10k.applierPatchCpuPerEventMs!.toFixed(2)} |`,
);
const result = { at: new Date().toISOString(), endpoints: E, nodes: N, event: values.event, rows, slopes, at10k };
if (values.out) writeFileSync(values.out, JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result));
