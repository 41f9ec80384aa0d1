import type { WatchEvent } from '../../../../libs/model/index.ts';
import type { EventLog } from '../../../../libs/eventlog/index.ts';
import { DataAxis, type NewVersion } from '../../../../libs/versioning/index.ts';

/** Seeded PRNG (mulberry32): the same seed gives the same history on every machine. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One step of a history, as the fixture files store them. */
export type HistoryStep =
  | { readonly batch: readonly WatchEvent[] }
  | { readonly pin: number; readonly reason: string }
  | { readonly unpin: true };

/**
 * Generates watch events for a small cluster: services, their slices (sometimes relabelled to
 * another service), nodes; adds, modifies (including resourceVersion-only no-ops), deletes, and
 * the odd invalid object, with pins/rollbacks and unpins interleaved.
 */
export function* randomHistory(opts: { seed: number; steps: number; pinRate?: number }): Generator<HistoryStep> {
  const rnd = prng(opts.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  let rv = 0;
  let versionsSoFar = 0;
  let pinned = false;
  const live = new Map<string, unknown>(); // "Kind ns/name" → raw object
  const svcNames = Array.from({ length: 8 }, (_, i) => `svc-${i}`);
  const nodeNames = Array.from({ length: 4 }, (_, i) => `node-${i}`);
  const event = (
    kind: WatchEvent['kind'],
    type: WatchEvent['type'],
    ns: string,
    name: string,
    object: unknown,
  ): WatchEvent => ({
    kind,
    type,
    origin: rnd() < 0.1 ? 'relist' : 'watch',
    namespace: ns,
    name,
    uid: `uid-${kind}-${ns}-${name}`,
    resourceVersion: String(++rv),
    object,
  });
  const upsert = (kind: WatchEvent['kind'], ns: string, name: string, object: unknown): WatchEvent => {
    const key = `${kind} ${ns}/${name}`;
    const type = live.has(key) ? 'MODIFIED' : 'ADDED';
    live.set(key, object);
    return event(kind, type, ns, name, object);
  };
  const service = (name: string): unknown => ({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default', uid: `u-${name}`, resourceVersion: String(rv + 1) },
    spec: {
      type: pick(['ClusterIP', 'NodePort']),
      clusterIP: `10.96.0.${1 + svcNames.indexOf(name)}`,
      ports: [
        {
          name: 'http',
          protocol: 'TCP',
          port: pick([80, 8080]),
          ...(rnd() < 0.3 ? { nodePort: 30000 + Math.floor(rnd() * 100) } : {}),
        },
      ],
      ...(rnd() < 0.1 ? { clusterIP: 'not-an-ip' } : {}),
    },
  });
  const slice = (name: string): unknown => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    addressType: 'IPv4',
    metadata: {
      name,
      namespace: 'default',
      resourceVersion: String(rv + 1),
      labels: { 'kubernetes.io/service-name': pick(svcNames) },
    },
    ports: [{ name: 'http', protocol: 'TCP', port: 8080 }],
    endpoints: Array.from({ length: Math.floor(rnd() * 4) }, () => ({
      addresses: [`10.244.${Math.floor(rnd() * 4)}.${1 + Math.floor(rnd() * 200)}`],
      conditions: { ready: rnd() < 0.8 },
      nodeName: pick(nodeNames),
    })),
  });
  const node = (name: string): unknown => ({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, resourceVersion: String(rv + 1), labels: { 'topology.kubernetes.io/zone': pick(['a', 'b']) } },
    status: { addresses: [{ type: 'InternalIP', address: `192.168.0.${1 + nodeNames.indexOf(name)}` }] },
  });

  for (let step = 0; step < opts.steps; step++) {
    const r = rnd();
    if (versionsSoFar > 0 && r < (opts.pinRate ?? 0.05)) {
      if (pinned && rnd() < 0.6) {
        pinned = false;
        yield { unpin: true };
        continue;
      }
      pinned = true;
      const target = 1 + Math.floor(rnd() * versionsSoFar);
      yield { pin: target, reason: rnd() < 0.5 ? `pin to ${target}` : `rollback to ${target}` };
      versionsSoFar++;
      continue;
    }
    const batch: WatchEvent[] = [];
    const n = 1 + Math.floor(rnd() * 6);
    for (let i = 0; i < n; i++) {
      const what = rnd();
      if (what < 0.3) {
        const name = pick(svcNames);
        const key = `Service default/${name}`;
        if (live.has(key) && rnd() < 0.2) {
          batch.push(event('Service', 'DELETED', 'default', name, live.get(key)));
          live.delete(key);
        } else batch.push(upsert('Service', 'default', name, service(name)));
      } else if (what < 0.75) {
        const name = `slice-${Math.floor(rnd() * 12)}`;
        const key = `EndpointSlice default/${name}`;
        if (live.has(key) && rnd() < 0.2) {
          batch.push(event('EndpointSlice', 'DELETED', 'default', name, live.get(key)));
          live.delete(key);
        } else batch.push(upsert('EndpointSlice', 'default', name, slice(name)));
      } else if (what < 0.9) {
        const name = pick(nodeNames);
        const key = `Node /${name}`;
        if (live.has(key) && rnd() < 0.15) {
          batch.push(event('Node', 'DELETED', '', name, live.get(key)));
          live.delete(key);
        } else batch.push(upsert('Node', '', name, node(name)));
      } else {
        // resourceVersion-only update: must make no version.
        const keys = [...live.keys()];
        if (keys.length === 0) continue;
        const key = pick(keys);
        const [kind, rest] = key.split(' ') as [WatchEvent['kind'], string];
        const [ns, name] = rest.split('/') as [string, string];
        const obj = structuredClone(live.get(key)) as { metadata: { resourceVersion: string } };
        obj.metadata.resourceVersion = String(rv + 1);
        batch.push(upsert(kind, ns, name, obj));
      }
    }
    if (batch.length === 0) continue;
    // A version follows only if the batch changed content; the driver decides, we estimate for pin targets.
    yield { batch };
    if (!pinned) versionsSoFar = Math.max(versionsSoFar, 1);
  }
}

export interface DrivenVersion {
  readonly version: number;
  readonly hash: string;
}

/**
 * Drives a log through the planner's real data axis (libs/versioning): each batch is ingested and
 * synced (a version only when the content moved, none while pinned), a checkpoint is written when
 * due, pins and rollbacks hold an earlier version's content, unpin releases. Returns every version
 * made, with its hash as recorded at the time: the oracle replay must match.
 */
export function driveDataAxis(
  log: EventLog,
  steps: Iterable<HistoryStep>,
  opts: { checkpointEvery?: number; axis?: DataAxis } = {},
): DrivenVersion[] {
  const axis = opts.axis ?? DataAxis.restore(log);
  const out: DrivenVersion[] = [];
  const who = { actor: 'test', reason: 'random history' };
  const made = (v: NewVersion | undefined) => {
    if (v) out.push({ version: v.record.version, hash: v.record.hash });
  };
  for (const step of steps) {
    if ('batch' in step) {
      axis.ingest(step.batch);
      made(axis.sync());
      axis.checkpointIfDue(opts.checkpointEvery ?? 0);
    } else if ('pin' in step) {
      const latest = log.latestVersion();
      if (!latest || step.pin > latest.version) continue;
      made(
        axis.holdAt(step.pin, step.reason.startsWith('pin') ? 'pin' : 'rollback', { ...who, reason: step.reason })
          .version,
      );
    } else if (axis.pin) {
      made(axis.release(who).version);
    }
  }
  return out;
}
