/**
 * Peak memory and time of a full data checkpoint on both sides of the bus, the codec before and
 * after checkpoints were streamed (docs/scale.md, "Where it breaks first"). Usage:
 *   node --expose-gc --import tsx bench/scale/checkpoint-memory.ts [--services 2000,10000]
 *        [--endpoints 250] [--nodes 5000] [--chunk-bytes 524288] [--heap-mb MB] [--out FILE]
 *
 * Each measurement runs in a child process of its own, so its peak RSS (getrusage maxrss) is its
 * own. Per size and codec:
 *  - encode (planner): the cluster data is built (ServiceEntry per service from the generator's
 *    Service + EndpointSlice objects, as the planner builds them), then the checkpoint is encoded
 *    and each chunk written to a file (standing in for the stream; the file is what decode reads).
 *    `joined`: the codec before (one JSON.stringify of the artifact, its UTF-8, cut in chunks);
 *    `streamed`: artifactMessages (chunks made one at a time).
 *  - decode (node): chunks are read from that file one at a time as they would arrive, decoded
 *    and loaded into the node's data index with its hash verified (indexFromCheckpoint).
 *    `joined`: all chunks kept, joined, one string, JSON.parse, schema (the reader before);
 *    `streamed`: CheckpointDecoder, each chunk pushed and dropped.
 *  - store (planner, event log): the planner's objects (Service + EndpointSlice per service, Nodes)
 *    written as a checkpoint row: `joined`: writeCheckpoint before pieces (one JSON.stringify,
 *    one row); `streamed`: writeCheckpoint (pieces of 32 MiB); restore: checkpointAtOrBefore of
 *    that file in a fresh process (a planner restart), either form.
 * Baseline, same process: RSS and heap once the data that must exist anyway is built (planner:
 * the cluster data; node: nothing yet, its index is the result). Reported: peak RSS, the peak
 * over that baseline, wall and CPU ms, and the error when a codec fails (e.g. V8's
 * `Invalid string length` past 2^29 − 24 characters). Last stdout line: JSON of every row.
 */
import { benchArgs } from '../bench-cli.ts'; // first: bad input is one line, exit 2
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifactMessages, CheckpointDecoder, encodeArtifact } from '../../libs/bus/index.ts';
import { indexFromCheckpoint } from '../../libs/applier/index.ts';
import {
  readKubeObject,
  VersionArtifactSchema,
  parseWire,
  type EndpointSliceObject,
  type NodeFacts,
  type ServiceEntry,
  type ServiceObject,
  type VersionArtifact,
} from '../../libs/model/index.ts';
import { buildNodeFacts, buildServiceEntry, ClusterDataIndex, type ClusterState } from '../../libs/planner/index.ts';
import { EventLog } from '../../libs/eventlog/index.ts';
import { checkpointAtOrBefore, checkpointHash, writeCheckpoint } from '../../libs/eventlog/checkpoints.ts';
import { databaseOf } from '../../libs/eventlog/database-handle.ts';
import { byCodeUnit, keyOf, type KubeObject } from '../../libs/model/index.ts';
import { generateCluster, makeService, makeSlice } from '../planner/generate-cluster.ts';

type Checkpoint = VersionArtifact & { form: 'checkpoint' };
const MB = 1048576;

const { values } = benchArgs({
  options: {
    services: { type: 'string', default: '2000,10000' },
    endpoints: { type: 'string', default: '250' },
    nodes: { type: 'string', default: '5000' },
    'chunk-bytes': { type: 'string', default: String(512 * 1024) },
    // the children's V8 heap limit (MB); default: Node's own (~4 GB here), as the planner runs
    'heap-mb': { type: 'string', default: '' },
    out: { type: 'string' },
    // child mode
    child: { type: 'string' },
    codec: { type: 'string' },
    file: { type: 'string' },
  },
});
const E = Number(values.endpoints);
const N = Number(values.nodes);
const CHUNK = Number(values['chunk-bytes']);

function kube<T>(raw: unknown): T {
  const r = readKubeObject(raw);
  if (!r.ok) throw new Error(r.rejection.reason);
  return r.object as T;
}

/** The cluster data of S services, built one service at a time (the raw objects never all exist). */
function clusterData(S: number): { data: Checkpoint['data']; hash: string } {
  const services: ServiceEntry[] = [];
  const one = generateCluster({ services: 1, endpointsPerService: 1, nodes: N });
  const nodes: NodeFacts[] = one.nodes.map((n) => buildNodeFacts(kube(n)));
  for (let s = 0; s < S; s++) {
    const svcRaw = makeService(s);
    const slice = makeSlice(`ns-${s % 50}`, s, E, N, 0, s % 4 === 0);
    const e = buildServiceEntry(kube<ServiceObject>(svcRaw), [kube<EndpointSliceObject>(slice)]);
    if (e) services.push(e);
  }
  services.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const index = ClusterDataIndex.from({ services, nodes });
  return { data: index.toClusterData(), hash: index.hash() };
}

interface Measured {
  baselineRssMb: number;
  peakRssMb: number;
  overBaselineMb: number;
  wallMs: number;
  cpuMs: number;
  bytes?: number;
  chunks?: number;
  error?: string;
}

/**
 * RSS samples taken during the work (each chunk, each step): the process's getrusage peak also
 * covers building the data before it, so it counts only when the work itself raised it.
 */
let sampled = 0;
function sample(): void {
  sampled = Math.max(sampled, process.memoryUsage().rss);
}

function measure(work: () => { bytes: number; chunks: number }, baseline: number): Measured {
  const maxBefore = process.resourceUsage().maxRSS * 1024;
  sampled = 0;
  const t = performance.now();
  const c = process.cpuUsage();
  let error: string | undefined;
  let r: { bytes: number; chunks: number } | undefined;
  try {
    r = work();
  } catch (e) {
    error = (e as Error).message;
  }
  const d = process.cpuUsage(c);
  sample();
  const maxAfter = process.resourceUsage().maxRSS * 1024;
  const peak = (maxAfter > maxBefore ? maxAfter : sampled) / MB;
  return {
    baselineRssMb: Math.round(baseline),
    peakRssMb: Math.round(peak),
    overBaselineMb: Math.round(peak - baseline),
    wallMs: Math.round(performance.now() - t),
    cpuMs: Math.round((d.user + d.system) / 1000),
    ...(r ?? {}),
    ...(error ? { error } : {}),
  };
}

function childEncode(S: number, codec: string, file: string): Measured {
  const { data, hash } = clusterData(S);
  const cp: Checkpoint = { version: 1, parent: 0, hash, reason: 'bench', createdAt: 'x', form: 'checkpoint', data };
  global.gc?.();
  const baseline = process.memoryUsage().rss / MB;
  return measure(() => {
    const fd = openSync(file, 'w');
    let bytes = 0;
    let chunks = 0;
    try {
      const opts = { chunkBytes: CHUNK, baseCheckpoint: 0 };
      const msgs =
        codec === 'joined'
          ? encodeArtifact(cp, opts, new TextEncoder().encode(JSON.stringify(cp)))
          : artifactMessages(cp, opts);
      for (const m of msgs) {
        const len = Buffer.alloc(4);
        len.writeUInt32BE(m.payload.length);
        writeSync(fd, len);
        writeSync(fd, m.payload);
        sample();
        bytes += m.payload.length;
        chunks++;
      }
    } finally {
      closeSync(fd);
    }
    return { bytes, chunks };
  }, baseline);
}

function* chunksOf(file: string): Generator<Uint8Array> {
  const fd = openSync(file, 'r');
  try {
    const len = Buffer.alloc(4);
    while (readSync(fd, len, 0, 4, null) === 4) {
      const b = new Uint8Array(len.readUInt32BE());
      readSync(fd, b, 0, b.length, null);
      yield b;
    }
  } finally {
    closeSync(fd);
  }
}

function childDecode(codec: string, file: string): Measured {
  global.gc?.();
  const baseline = process.memoryUsage().rss / MB;
  let index: ClusterDataIndex | undefined;
  const m = measure(() => {
    let bytes = 0;
    let chunks = 0;
    let cp: Checkpoint;
    if (codec === 'joined') {
      // the reader before: every chunk kept, joined, decoded to one string, parsed, checked
      const all: Uint8Array[] = [];
      for (const c of chunksOf(file)) {
        all.push(c);
        sample();
        bytes += c.length;
        chunks++;
      }
      const joined = new Uint8Array(bytes);
      let o = 0;
      for (const c of all) {
        joined.set(c, o);
        o += c.length;
      }
      all.length = 0;
      sample();
      const r = parseWire(VersionArtifactSchema, joined, 'artifact');
      sample();
      if ('error' in r) throw new Error(r.error);
      cp = r.value as unknown as Checkpoint;
    } else {
      const d = new CheckpointDecoder();
      for (const c of chunksOf(file)) {
        d.push(c);
        sample();
        bytes += c.length;
        chunks++;
      }
      const r = d.finish();
      if (!r.ok) throw new Error(r.error);
      cp = r.value;
    }
    sample();
    const built = indexFromCheckpoint(cp);
    sample();
    if ('error' in built) throw new Error(built.error);
    index = built.index;
    return { bytes, chunks };
  }, baseline);
  if (index && index.serviceCount === 0 && m.bytes) throw new Error('decoded no services');
  return m;
}

/**
 * The planner's event-log objects of S services (Service + EndpointSlice each, as read from the
 * API) and N Nodes, built one service at a time. writeCheckpoint uses only objects() and hash()
 * of the state: the bench hands it those (a ClusterState of 10,000 x 250 would be 1.6 GB more).
 */
function logObjects(S: number): KubeObject[] {
  const out: KubeObject[] = generateCluster({ services: 1, endpointsPerService: 1, nodes: N }).nodes.map((n) =>
    kube<KubeObject>(n),
  );
  for (let s = 0; s < S; s++) {
    out.push(kube<KubeObject>(makeService(s)));
    out.push(kube<KubeObject>(makeSlice(`ns-${s % 50}`, s, E, N, 0, s % 4 === 0)));
  }
  return out;
}

async function childStore(S: number, codec: string, file: string): Promise<Measured> {
  const objects = logObjects(S);
  const state = { objects: () => objects, hash: () => '0'.repeat(64) } as unknown as ClusterState;
  const log = await EventLog.open({ file, sync: 'normal' });
  const db = databaseOf(log);
  global.gc?.();
  const baseline = process.memoryUsage().rss / MB;
  const m = measure(() => {
    if (codec === 'joined') {
      // writeCheckpoint before pieces: one JSON.stringify of every object, one row
      const sorted = [...state.objects()].sort((a, b) => byCodeUnit(keyOf(a), keyOf(b)));
      const text = JSON.stringify(sorted);
      sample();
      db.prepare(`INSERT OR REPLACE INTO checkpoints (seq, version, data_hash, object_count, objects, objects_hash, rejections, created_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(
        1,
        1,
        state.hash(),
        sorted.length,
        text,
        checkpointHash(text, '[]'),
        '[]',
        'x',
      );
      sample();
    } else {
      writeCheckpoint(db, { state, rejections: [], seq: 1, version: 1, createdAt: 'x' });
      sample();
    }
    const r = db.prepare('SELECT pieces, length(objects) AS n FROM checkpoints WHERE seq = 1').get() as {
      pieces: number;
      n: number;
    };
    const chars =
      r.pieces > 0
        ? (db.prepare('SELECT sum(length(objects)) FROM checkpoint_pieces WHERE seq = 1').pluck().get() as number)
        : r.n;
    return { bytes: chars, chunks: Math.max(1, r.pieces) };
  }, baseline);
  log.close();
  return m;
}

async function childRestore(file: string): Promise<Measured> {
  const log = await EventLog.open({ file, sync: 'normal' });
  const db = databaseOf(log);
  global.gc?.();
  const baseline = process.memoryUsage().rss / MB;
  const m = measure(() => {
    const cp = checkpointAtOrBefore(db, 1);
    sample();
    if (!cp) throw new Error('no checkpoint');
    return { bytes: 0, chunks: cp.objects.length };
  }, baseline);
  log.close();
  return m;
}

if (values.child) {
  const S = Number(values.services);
  const r =
    values.child === 'encode'
      ? childEncode(S, values.codec!, values.file!)
      : values.child === 'decode'
        ? childDecode(values.codec!, values.file!)
        : values.child === 'store'
          ? await childStore(S, values.codec!, values.file!)
          : await childRestore(values.file!);
  console.log(JSON.stringify(r));
  process.exit(0);
}

const dir = mkdtempSync(join(tmpdir(), 'sb-cp-mem-'));
const rows: unknown[] = [];
function run(side: string, codec: string, file: string, S: number): Measured | { error: string } {
  const p = spawnSync(
    process.execPath,
    [
      ...(values['heap-mb'] ? [`--max-old-space-size=${values['heap-mb']}`] : []),
      ...['--expose-gc', '--import', 'tsx', import.meta.filename, '--child', side, '--codec', codec, '--file', file],
      ...['--services', String(S), '--endpoints', String(E), '--nodes', String(N), '--chunk-bytes', String(CHUNK)],
    ],
    { encoding: 'utf8', maxBuffer: 16 * MB },
  );
  const last = p.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as Measured;
  } catch {
    return { error: `child exited ${p.status ?? p.signal}: ${p.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  }
}
try {
  for (const S of values.services.split(',').map(Number)) {
    // both decoders read the streamed encoder's chunks (the same bytes as the joined one's: tested)
    const file = join(dir, `cp-${S}.bin`);
    const scratch = join(dir, `cp-${S}-joined.bin`);
    const enc = { streamed: run('encode', 'streamed', file, S), joined: run('encode', 'joined', scratch, S) };
    rmSync(scratch, { force: true });
    for (const codec of ['joined', 'streamed'] as const) {
      const decode = run('decode', codec, file, S);
      // event log: the same objects written as one text (joined) or in pieces (streamed), then read
      const db = join(dir, `log-${S}-${codec}.db`);
      const store = run('store', codec, db, S);
      const restore = 'error' in store ? undefined : run('restore', codec, db, S);
      for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
      const row = {
        services: S,
        endpoints: E,
        nodes: N,
        chunkBytes: CHUNK,
        codec,
        encode: enc[codec],
        decode,
        store,
        restore,
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    }
    rmSync(file, { force: true });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (values.out) writeFileSync(values.out, `${JSON.stringify(rows, null, 2)}\n`);
console.log(JSON.stringify(rows));
