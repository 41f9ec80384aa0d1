import { HEADLESS_LABEL, SERVICE_NAME_LABEL, SERVICE_PROXY_NAME_LABEL, ZONE_LABEL } from './kube-objects.ts';

/**
 * What of a Kubernetes object the planner keeps: the fields the readers (kube-readers.ts) read,
 * and nothing else. The planner logs this projection of every watch event instead of the whole
 * object (review3 K3: a tenant's 200 KiB annotation rewritten in a loop grew the log and the
 * replicated stream by the object's size per update, with no version made), and its sources
 * compare projections, so a change to a field nobody reads is not a change.
 *
 * The rule: readKubeObject(projectKubeObject(o)) reads exactly what readKubeObject(o) reads —
 * the same model object (labels and annotations aside: only the kept ones are left) or the same
 * rejection, for any input, well-formed or not. Hence the shape below mirrors the readers field by
 * field, and keeps a value as it is wherever it is not of the type the readers expect there (so
 * the readers refuse it with the same reason). test/libs/model/kube-projection.test.ts holds the
 * readers to it: on full API objects with every field set, mutated at random, the readers give
 * the same answers for the object and its projection. A reader that starts using a field must
 * add it here, or that test fails.
 *
 * Old logs hold whole objects: the readers still read them as before (versions replay bit-identical).
 */
export function projectKubeObject(raw: unknown): unknown {
  if (!isObj(raw)) return raw;
  switch (raw.kind) {
    case 'Service':
      return keep(raw, SERVICE);
    case 'EndpointSlice':
      return keep(raw, ENDPOINT_SLICE);
    case 'Node':
      return keep(raw, NODE);
    default:
      return keep(raw, OTHER); // the readers refuse it by kind, naming it by its metadata
  }
}

/** Annotations the Service reader reads, in the order it reads them (topology-aware routing). */
export const TOPOLOGY_ANNOTATIONS = [
  'service.kubernetes.io/topology-mode',
  'service.kubernetes.io/topology-aware-hints',
] as const;

/** The annotation naming the file (relative to the directory) an object of `planner --manifests` comes from. */
export const MANIFEST_FILE_ANNOTATION = 'switchboard.io/manifest-file';

/**
 * How a kept field is kept: whole (`true`), as some of its fields, as a list of such, or as a map
 * of strings (labels, annotations) of which only some keys are kept.
 */
type Keep = true | { readonly fields: Readonly<Record<string, Keep>> } | { readonly each: Keep } | StringsKeep;
interface StringsKeep {
  /** Kept keys, each with the most characters of its value that can matter to a reader. */
  readonly strings: Readonly<Record<string, number>>;
  /** Every other key is kept too, whole (a selector may name any of them). */
  readonly others?: true;
}

const fields = (f: Record<string, Keep>): Keep => ({ fields: f });
const each = (k: Keep): Keep => ({ each: k });

const ALL = Number.POSITIVE_INFINITY;
const ANNOTATIONS: StringsKeep = {
  strings: {
    // The reader acts only on "Auto"/"auto": a longer value means nothing more than its first
    // 16 characters do, so a tenant cannot make the kept part of its annotations large.
    [TOPOLOGY_ANNOTATIONS[0]]: 16,
    [TOPOLOGY_ANNOTATIONS[1]]: 16,
    // Written by the manifests source (a relative path: at most PATH_MAX); read back after a restart.
    [MANIFEST_FILE_ANNOTATION]: 4096,
  },
};
const metaKeeping = (labels: StringsKeep, more: Record<string, Keep> = {}) =>
  fields({
    ...more,
    name: true,
    namespace: true,
    uid: true,
    resourceVersion: true,
    labels,
    annotations: ANNOTATIONS,
  });
// The proxy-name and headless labels: only their presence is read (kube-proxy's informer
// selector); a label value is at most 63 characters.
const META = metaKeeping({
  strings: { [SERVICE_NAME_LABEL]: ALL, [ZONE_LABEL]: ALL, [SERVICE_PROXY_NAME_LABEL]: 63, [HEADLESS_LABEL]: 63 },
});
/**
 * A Node keeps every label: `planner --node-selector` (the fleet: which Nodes run an applier) may
 * name any of them. Node labels are written by the kubelet (the NodeRestriction admission plugin
 * bounds which), node controllers and admins, never by a tenant, and each value is at most 63
 * characters, so this cannot grow the log the way a tenant's annotation could. Its
 * deletionTimestamp and its taints' keys are read too (a Node on its way out: kube-readers.ts).
 */
const NODE_META = metaKeeping(
  { strings: { [SERVICE_NAME_LABEL]: ALL, [ZONE_LABEL]: ALL }, others: true },
  {
    deletionTimestamp: true,
  },
);

const SERVICE = fields({
  apiVersion: true,
  kind: true,
  metadata: META,
  spec: fields({
    type: true,
    clusterIP: true,
    clusterIPs: true,
    ports: each(fields({ name: true, protocol: true, port: true, nodePort: true })),
    externalIPs: true,
    loadBalancerSourceRanges: true,
    sessionAffinity: true,
    sessionAffinityConfig: fields({ clientIP: fields({ timeoutSeconds: true }) }),
    externalTrafficPolicy: true,
    internalTrafficPolicy: true,
    healthCheckNodePort: true,
    trafficDistribution: true,
  }),
  status: fields({ loadBalancer: fields({ ingress: each(fields({ ip: true, ipMode: true })) }) }),
});

const ENDPOINT_SLICE = fields({
  apiVersion: true,
  kind: true,
  metadata: META,
  addressType: true,
  ports: each(fields({ name: true, protocol: true, port: true })),
  endpoints: each(
    fields({
      addresses: true,
      conditions: fields({ ready: true, serving: true, terminating: true }),
      nodeName: true,
      zone: true,
      hints: fields({ forZones: each(fields({ name: true })), forNodes: each(fields({ name: true })) }),
    }),
  ),
});

const NODE = fields({
  apiVersion: true,
  kind: true,
  metadata: NODE_META,
  // the readers look for the cluster autoscaler's taint by its key alone
  spec: fields({ taints: each(fields({ key: true })) }),
  status: fields({ addresses: each(fields({ type: true, address: true })) }),
});

const OTHER = fields({ apiVersion: true, kind: true, metadata: META });

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The kept part of v. Copies only where something is dropped or cut: a value that is already its
 * own projection (a logged one, or an object with nothing unread) comes back as it is, so the
 * projection costs no allocation where it saves nothing.
 */
function keep(v: unknown, k: Keep): unknown {
  if (k === true) return v;
  if ('each' in k) {
    if (!Array.isArray(v)) return v;
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x = keep(v[i], k.each);
      if (out === undefined && x !== v[i]) out = v.slice(0, i);
      out?.push(x);
    }
    return out ?? v;
  }
  if (!isObj(v)) return v; // not what the readers expect here: they refuse it as it is
  const keys = Object.keys(v);
  let out: Raw | undefined;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const val = v[key];
    let kept: unknown;
    let dropped = false;
    if ('strings' in k) {
      // A value that is not a string makes the readers refuse the object (naming the key, not the
      // value): kept as null, which they refuse the same way.
      if (typeof val !== 'string') kept = null;
      else if (Object.hasOwn(k.strings, key)) kept = val.length > k.strings[key]! ? val.slice(0, k.strings[key]) : val;
      else if (k.others) kept = val;
      else dropped = true;
    } else if (Object.hasOwn(k.fields, key)) kept = keep(val, k.fields[key]!);
    else dropped = true;
    if (out === undefined) {
      if (!dropped && kept === val) continue;
      out = {};
      for (let j = 0; j < i; j++) put(out, keys[j]!, v[keys[j]!]);
    }
    if (!dropped) put(out, key, kept);
  }
  return out ?? v;
}

/** out[key] = val, also for a key named __proto__ (JSON.parse makes it an own property; so must we). */
function put(out: Raw, key: string, val: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(out, key, { value: val, enumerable: true, writable: true, configurable: true });
  else out[key] = val;
}
