import type { ClusterDataIndex } from '../../libs/planner/index.ts';
import type { EndpointEntry, NodeFacts, ServiceEntry, ServicePortEntry } from '../../libs/model/index.ts';

/** One change inside a service or node: `what` names the place (`port http/TCP`, `endpoint 10.0.0.1:8080`). */
export interface ContentChange {
  readonly what: string;
  readonly change: 'added' | 'removed' | 'changed';
  readonly before?: unknown;
  readonly after?: unknown;
}

export interface VersionDiff {
  readonly addedServices: string[];
  readonly removedServices: string[];
  readonly changedServices: string[];
  readonly addedNodes: string[];
  readonly removedNodes: string[];
  readonly changedNodes: string[];
  /** For each changed service, what changed inside it. */
  readonly serviceChanges: Record<string, ContentChange[]>;
  readonly nodeChanges: Record<string, ContentChange[]>;
}

/** What changed from content a to content b, by service key and node name, down to fields. */
export function versionDiff(a: ClusterDataIndex, b: ClusterDataIndex): VersionDiff {
  const d = b.deltaFrom(a);
  const svc = d.upsertServices.map((s) => s.key);
  const nodes = d.upsertNodes.map((n) => n.name);
  const changedServices = svc.filter((k) => a.service(k) !== undefined);
  const changedNodes = nodes.filter((n) => a.node(n) !== undefined);
  return {
    addedServices: svc.filter((k) => a.service(k) === undefined),
    removedServices: [...d.removeServices],
    changedServices,
    addedNodes: nodes.filter((n) => a.node(n) === undefined),
    removedNodes: [...d.removeNodes],
    changedNodes,
    serviceChanges: Object.fromEntries(changedServices.map((k) => [k, serviceChanges(a.service(k)!, b.service(k)!)])),
    nodeChanges: Object.fromEntries(changedNodes.map((n) => [n, nodeChanges(a.node(n)!, b.node(n)!)])),
  };
}

const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);

function fields<T extends object>(prefix: string, a: T, b: T, skip: readonly (keyof T)[]): ContentChange[] {
  const out: ContentChange[] = [];
  for (const k of Object.keys({ ...a, ...b }) as (keyof T)[]) {
    if (skip.includes(k) || same(a[k], b[k])) continue;
    out.push({ what: prefix ? `${prefix} ${String(k)}` : String(k), change: 'changed', before: a[k], after: b[k] });
  }
  return out;
}

/** Keyed set difference: what was added, removed, and (by `inner`) changed inside kept entries. */
function keyed<T>(
  label: string,
  a: readonly T[],
  b: readonly T[],
  key: (x: T) => string,
  inner: (name: string, x: T, y: T) => ContentChange[],
): ContentChange[] {
  const before = new Map(a.map((x) => [key(x), x]));
  const after = new Map(b.map((x) => [key(x), x]));
  const out: ContentChange[] = [];
  for (const [k, x] of before) {
    const y = after.get(k);
    if (y === undefined) out.push({ what: `${label} ${k}`, change: 'removed' });
    else out.push(...inner(`${label} ${k}`, x, y));
  }
  for (const k of after.keys()) if (!before.has(k)) out.push({ what: `${label} ${k}`, change: 'added' });
  return out;
}

/** What changed inside one service: its fields, its ports, and each port's endpoints. */
export function serviceChanges(a: ServiceEntry, b: ServiceEntry): ContentChange[] {
  const portKey = (p: ServicePortEntry) => `${p.name || '(unnamed)'}/${p.protocol}`;
  const endpoints = (where: string, x: readonly EndpointEntry[], y: readonly EndpointEntry[]) =>
    keyed(
      `${where} endpoint`,
      x,
      y,
      (e) => `${e.ip}:${e.port}`,
      (name, e, f) => fields(name, e, f, ['ip', 'port']),
    );
  return [
    ...fields('', a, b, ['key', 'ports']),
    ...keyed('port', a.ports, b.ports, portKey, (name, p, q) => [
      ...fields(name, p, q, ['name', 'protocol', 'endpoints']),
      ...endpoints(name, p.endpoints, q.endpoints),
    ]),
  ];
}

export function nodeChanges(a: NodeFacts, b: NodeFacts): ContentChange[] {
  return fields('', a, b, ['name']);
}

const show = (v: unknown) => (Array.isArray(v) ? `[${v.join(', ')}]` : String(v));

/** One line per change: `port http/TCP endpoint 10.0.0.2:8080 added`, `clusterIPs [a] → [b]`. */
export function formatContentChange(c: ContentChange): string {
  return c.change === 'changed' ? `${c.what}: ${show(c.before)} → ${show(c.after)}` : `${c.what} ${c.change}`;
}
