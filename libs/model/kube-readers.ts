import { sharedName } from './shared-names.ts';
import { parseAllDocuments } from 'yaml';
import { canonicalIp, ipFamily, parseCidr, specialIpKind } from './ip-address.ts';
import {
  PROTOCOLS,
  SERVICE_NAME_LABEL,
  TO_BE_DELETED_TAINT,
  ZONE_LABEL,
  type Endpoint,
  type EndpointPort,
  type EndpointSliceObject,
  type KubeObject,
  type NodeAddress,
  type NodeObject,
  type ObjectMeta,
  type Protocol,
  type ServiceObject,
  type ServicePort,
  type ServiceType,
  type TrafficPolicy,
} from './kube-objects.ts';
import { TOPOLOGY_ANNOTATIONS } from './kube-projection.ts';
import {
  LATEST_READING_REVISION,
  readsServingNilAsTrue,
  refusesDuplicateServicePorts,
  refusesOversizedEndpointSlices,
  refusesSpecialServiceIps,
  skipsEndpointPortsWithoutNameOrNumber,
  type ReadingRevision,
} from './reading-revision.ts';

/** One object the readers refused, with a reason that names it. */
export interface Rejection {
  readonly ref: string; // "Service default/web" or "document 3 of a.yaml" when unnamed
  readonly source: string;
  readonly reason: string;
}

export type ReadResult = { ok: true; object: KubeObject } | { ok: false; rejection: Rejection };

class Invalid extends Error {}
const fail = (reason: string): never => {
  throw new Invalid(reason);
};

type Raw = Record<string, unknown>;
const isObj = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates one raw API object (as decoded from JSON/YAML or a watch event). A field read here
 * must also be kept by projectKubeObject (kube-projection.ts), which is what the planner logs. Kinds other than the
 * three we read are rejected too: a manifests directory may hold them, and saying so beats
 * silently ignoring a typo in `kind`. `revision`: the reading revision's rules (reading-revision.ts);
 * replay passes the one a version was made under, everything else reads with the latest.
 */
export function readKubeObject(
  raw: unknown,
  source = 'input',
  revision: ReadingRevision = LATEST_READING_REVISION,
): ReadResult {
  try {
    if (!isObj(raw)) fail('not an object');
    const o = raw as Raw;
    switch (o.kind) {
      case 'Service':
        return { ok: true, object: readService(o, revision) };
      case 'EndpointSlice':
        return { ok: true, object: readEndpointSlice(o, revision) };
      case 'Node':
        return { ok: true, object: readNode(o) };
      default:
        return fail(
          o.kind === undefined
            ? 'no kind (Service, EndpointSlice or Node expected)'
            : `unsupported kind ${JSON.stringify(o.kind)}`,
        );
    }
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    return { ok: false, rejection: { ref: describe(raw), source, reason: e.message } };
  }
}

function describe(raw: unknown): string {
  if (!isObj(raw)) return 'object';
  const meta = isObj(raw.metadata) ? raw.metadata : {};
  const kind = typeof raw.kind === 'string' ? raw.kind : 'object';
  const name = typeof meta.name === 'string' ? meta.name : '<unnamed>';
  const ns = typeof meta.namespace === 'string' ? meta.namespace : kind === 'Node' ? '' : 'default';
  return ns ? `${kind} ${ns}/${name}` : `${kind} ${name}`;
}

function readMeta(o: Raw, namespaced: boolean): ObjectMeta {
  const m = isObj(o.metadata) ? o.metadata : fail('missing metadata');
  const name = typeof m.name === 'string' && m.name !== '' ? m.name : fail('missing metadata.name');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253)
    fail(`invalid metadata.name ${JSON.stringify(name)}`);
  const namespace = namespaced ? (typeof m.namespace === 'string' && m.namespace !== '' ? m.namespace : 'default') : '';
  return {
    namespace,
    name,
    uid: typeof m.uid === 'string' ? m.uid : '',
    resourceVersion: typeof m.resourceVersion === 'string' ? m.resourceVersion : '',
    labels: stringMap(m.labels, 'metadata.labels'),
    annotations: stringMap(m.annotations, 'metadata.annotations'),
  };
}

/** An absent or empty map of strings (most objects' annotations, once projected): one shared frozen value. */
const NO_STRINGS: Readonly<Record<string, string>> = Object.freeze({});

function stringMap(v: unknown, what: string): Readonly<Record<string, string>> {
  if (v === undefined || v === null) return NO_STRINGS;
  if (!isObj(v)) return fail(`${what} must be a map of strings`);
  let out: Record<string, string> | undefined;
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') fail(`${what}.${k} must be a string`);
    out ??= {};
    out[k] = val as string;
  }
  return out ?? NO_STRINGS;
}

function apiVersion(o: Raw, want: string): void {
  if (o.apiVersion !== want) fail(`apiVersion must be ${want}, got ${JSON.stringify(o.apiVersion)}`);
}

function ip(v: unknown, what: string): string {
  const c = typeof v === 'string' ? canonicalIp(v) : undefined;
  return c ?? fail(`${what}: invalid IP address ${JSON.stringify(v)}`);
}

/**
 * Two ports of one Service with the same port and protocol, or the same nodePort and protocol,
 * reject it, as the API server does: only one of them could be programmed, and which one was a
 * silent accident of the rendering (probe10 H6).
 */
function duplicatePorts(ports: readonly ServicePort[]): void {
  const first = new Map<string, number>();
  ports.forEach((p, i) => {
    const keys = [`port ${p.port}/${p.protocol}`, ...(p.nodePort ? [`nodePort ${p.nodePort}/${p.protocol}`] : [])];
    for (const k of keys) {
      const j = first.get(k);
      if (j !== undefined) fail(`spec.ports[${i}] duplicates ${k} of spec.ports[${j}]`);
      first.set(k, i);
    }
  });
}

/**
 * An external or load balancer address: from revision 3 one the node itself answers on, or that
 * is no unicast address (specialIpKind), rejects the Service, as the API server does (the whole
 * object, like any other invalid field here: probe10 H5).
 */
function serviceIp(v: unknown, what: string, revision: ReadingRevision): string {
  const c = ip(v, what);
  const kind = refusesSpecialServiceIps(revision) ? specialIpKind(c) : undefined;
  return kind ? fail(`${what} ${c} is ${kind}`) : c;
}

function port(v: unknown, what: string, allowZero = false): number {
  if (v === undefined && allowZero) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1) || v > 65535) {
    return fail(`${what}: port out of range ${JSON.stringify(v)}`);
  }
  return v;
}

function protocol(v: unknown, what: string): Protocol {
  if (v === undefined) return 'TCP';
  return PROTOCOLS.includes(v as Protocol) ? (v as Protocol) : fail(`${what}: unknown protocol ${JSON.stringify(v)}`);
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : fail(`${what} must be a list`);
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], dflt: T, what: string): T {
  if (v === undefined || v === null || v === '') return dflt;
  return allowed.includes(v as T)
    ? (v as T)
    : fail(`${what}: must be one of ${allowed.join('|')}, got ${JSON.stringify(v)}`);
}

function readService(o: Raw, revision: ReadingRevision): ServiceObject {
  apiVersion(o, 'v1');
  const meta = readMeta(o, true);
  const spec = isObj(o.spec) ? o.spec : fail('missing spec');
  const type = oneOf<ServiceType>(
    spec.type,
    ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'],
    'ClusterIP',
    'spec.type',
  );
  const rawIPs = list(spec.clusterIPs, 'spec.clusterIPs');
  const ipsText = rawIPs.length ? rawIPs : spec.clusterIP !== undefined ? [spec.clusterIP] : [];
  const headless = ipsText[0] === 'None';
  const clusterIPs =
    type === 'ExternalName' || headless
      ? []
      : ipsText.filter((t) => t !== '').map((t, i) => ip(t, `spec.clusterIPs[${i}]`));
  if (new Set(clusterIPs.map(ipFamily)).size !== clusterIPs.length)
    fail('spec.clusterIPs: at most one address per family');
  const ports = list(spec.ports, 'spec.ports').map((p, i): ServicePort => {
    if (!isObj(p)) return fail(`spec.ports[${i}] must be an object`);
    const what = `spec.ports[${i}]`;
    const name =
      p.name === undefined ? '' : typeof p.name === 'string' ? p.name : fail(`${what}.name must be a string`);
    return {
      name,
      protocol: protocol(p.protocol, what),
      port: port(p.port, what),
      nodePort: port(p.nodePort, `${what}.nodePort`, true),
    };
  });
  if (type !== 'ExternalName' && !headless && ports.length === 0) fail('spec.ports: a service needs at least one port');
  const seen = new Set<string>();
  for (const p of ports) {
    if (ports.length > 1 && p.name === '') fail('spec.ports: every port must be named when there are several');
    const k = `${p.name}`;
    if (seen.has(k)) fail(`spec.ports: duplicate port name ${JSON.stringify(p.name)}`);
    seen.add(k);
  }
  if (refusesDuplicateServicePorts(revision)) duplicatePorts(ports);
  const status = isObj(o.status) ? o.status : {};
  const lb = isObj(status.loadBalancer) ? status.loadBalancer : {};
  // Hostname-only ingress has no VIP to program. An ipMode other than VIP (KEP-1860: `Proxy`, the
  // load balancer proxies and may add a PROXY header or terminate TLS) is not ours to capture:
  // in-cluster clients must go out to the load balancer, as kube-proxy (serviceport.go,
  // IsVIPMode) leaves them. Absent = VIP, so logs written before ipMode was kept read the same.
  const ingress = list(lb.ingress, 'status.loadBalancer.ingress')
    .filter(
      (g) => isObj(g) && g.ip !== undefined && (g.ipMode === undefined || g.ipMode === null || g.ipMode === 'VIP'),
    )
    .map((g, i) => serviceIp((g as Raw).ip, `status.loadBalancer.ingress[${i}].ip`, revision));
  const ranges = list(spec.loadBalancerSourceRanges, 'spec.loadBalancerSourceRanges').map((r, i) => {
    const c = typeof r === 'string' ? parseCidr(r) : undefined;
    return c?.text ?? fail(`spec.loadBalancerSourceRanges[${i}]: invalid CIDR ${JSON.stringify(r)}`);
  });
  const affinity = oneOf(spec.sessionAffinity, ['None', 'ClientIP'] as const, 'None', 'spec.sessionAffinity');
  const cfg =
    isObj(spec.sessionAffinityConfig) && isObj(spec.sessionAffinityConfig.clientIP)
      ? spec.sessionAffinityConfig.clientIP
      : {};
  const timeout = cfg.timeoutSeconds === undefined ? 10800 : cfg.timeoutSeconds;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 1 || timeout > 86400) {
    fail(`spec.sessionAffinityConfig.clientIP.timeoutSeconds out of range ${JSON.stringify(timeout)}`);
  }
  const annotations = meta.annotations;
  const mode = annotations[TOPOLOGY_ANNOTATIONS[0]] ?? annotations[TOPOLOGY_ANNOTATIONS[1]] ?? '';
  return {
    kind: 'Service',
    meta,
    type,
    clusterIPs,
    headless,
    ports,
    externalIPs: list(spec.externalIPs, 'spec.externalIPs').map((t, i) =>
      serviceIp(t, `spec.externalIPs[${i}]`, revision),
    ),
    loadBalancerIngress: type === 'LoadBalancer' ? ingress : [],
    loadBalancerSourceRanges: ranges,
    sessionAffinity: affinity,
    affinityTimeoutSeconds: timeout as number,
    externalTrafficPolicy: oneOf<TrafficPolicy>(
      spec.externalTrafficPolicy,
      ['Cluster', 'Local'],
      'Cluster',
      'spec.externalTrafficPolicy',
    ),
    internalTrafficPolicy: oneOf<TrafficPolicy>(
      spec.internalTrafficPolicy,
      ['Cluster', 'Local'],
      'Cluster',
      'spec.internalTrafficPolicy',
    ),
    healthCheckNodePort: port(spec.healthCheckNodePort, 'spec.healthCheckNodePort', true),
    topologyAware: mode === 'Auto' || mode === 'auto' || spec.trafficDistribution === 'PreferClose',
  };
}

/**
 * The API server refuses an EndpointSlice with more endpoints than this (validation.go,
 * maxEndpoints), so a cluster never holds one; a manifests file can. From revision 4 the reader
 * refuses it too, before reading any endpoint (probe10 H9: one slice of 100 000 endpoints).
 */
const MAX_SLICE_ENDPOINTS = 1000;

function readEndpointSlice(o: Raw, revision: ReadingRevision): EndpointSliceObject {
  apiVersion(o, 'discovery.k8s.io/v1');
  const meta = readMeta(o, true);
  const serviceName = meta.labels[SERVICE_NAME_LABEL] ?? fail(`missing label ${SERVICE_NAME_LABEL}`);
  const addressType = oneOf(o.addressType, ['IPv4', 'IPv6', 'FQDN'] as const, 'IPv4', 'addressType');
  if (o.addressType === undefined) fail('missing addressType');
  const skipsIncomplete = skipsEndpointPortsWithoutNameOrNumber(revision);
  const ports = list(o.ports, 'ports').flatMap((p, i): EndpointPort[] => {
    if (!isObj(p)) return fail(`ports[${i}] must be an object`);
    // Revision 2, as kube-proxy's endpointInfoByServicePort: a port with a nil name ("Ignoring port
    // with nil name") or without a number, or 0 ("Ignoring invalid endpoint port"), is skipped
    // alone; the slice's other ports stay. Revision 1 read a nil name as "" (the unnamed Service
    // port) and refused the whole slice for a missing number.
    if (
      skipsIncomplete &&
      (p.name === undefined || p.name === null || p.port === undefined || p.port === null || p.port === 0)
    )
      return [];
    const name =
      p.name === undefined || p.name === null
        ? ''
        : typeof p.name === 'string'
          ? p.name
          : fail(`ports[${i}].name must be a string`);
    return [{ name, protocol: protocol(p.protocol, `ports[${i}]`), port: port(p.port, `ports[${i}]`) }];
  });
  const rawEndpoints = list(o.endpoints, 'endpoints');
  if (refusesOversizedEndpointSlices(revision) && rawEndpoints.length > MAX_SLICE_ENDPOINTS)
    fail(`${rawEndpoints.length} endpoints, over ${MAX_SLICE_ENDPOINTS} (the API server's limit)`);
  const readsServingNil = readsServingNilAsTrue(revision);
  const endpoints = new Array<Endpoint>(rawEndpoints.length);
  for (let i = 0; i < rawEndpoints.length; i++)
    endpoints[i] = readEndpoint(rawEndpoints[i], i, addressType, readsServingNil);
  return { kind: 'EndpointSlice', meta, serviceName, addressType, ports, endpoints };
}

/**
 * One endpoint of a slice. The hot path of an initial list (every endpoint of the cluster): no
 * closure or message text is made per endpoint unless it is refused (the messages are the same).
 */
function readEndpoint(
  e: unknown,
  i: number,
  addressType: EndpointSliceObject['addressType'],
  readsServingNil: boolean,
): Endpoint {
  if (!isObj(e)) return fail(`endpoints[${i}] must be an object`);
  const addresses = Array.isArray(e.addresses) ? e.addresses : list(e.addresses, `endpoints[${i}].addresses`);
  if (addresses.length === 0) fail(`endpoints[${i}].addresses must not be empty`);
  const canon = new Array<string>(addresses.length);
  for (let j = 0; j < addresses.length; j++) {
    const a = addresses[j];
    if (addressType === 'FQDN') {
      canon[j] = String(a);
      continue;
    }
    const c = typeof a === 'string' ? canonicalIp(a) : undefined;
    if (c === undefined) return fail(`endpoints[${i}].addresses[${j}]: invalid IP address ${JSON.stringify(a)}`);
    if (ipFamily(c) !== addressType) fail(`endpoints[${i}].addresses[${j}]: ${c} is not ${addressType}`);
    canon[j] = c;
  }
  const cond = isObj(e.conditions) ? e.conditions : {};
  // A nil ready means ready. A nil serving: revision 2 reads it as true, as kube-proxy
  // (endpointslicecache.go: `Serving == nil || *Serving`), so a terminating endpoint without it
  // is a fallback; revision 1 read it as "same as ready" (an older API comment's wording).
  const ready = cond.ready === undefined || cond.ready === null ? true : cond.ready === true;
  const servingNil = cond.serving === undefined || cond.serving === null;
  const serving = servingNil ? readsServingNil || ready : cond.serving === true;
  const hints = isObj(e.hints) ? e.hints : undefined;
  return {
    addresses: canon,
    ready,
    serving,
    terminating: cond.terminating === true,
    nodeName: typeof e.nodeName === 'string' ? sharedName(e.nodeName) : '',
    zone: typeof e.zone === 'string' ? sharedName(e.zone) : '',
    hintZones: hints ? hintNames(hints.forZones, i, 'forZones') : NO_HINTS,
    hintNodes: hints ? hintNames(hints.forNodes, i, 'forNodes') : NO_HINTS,
  };
}

/** An endpoint without hints (nearly all of them) shares this list rather than holding two empty ones. */
const NO_HINTS: readonly string[] = Object.freeze([]);

function hintNames(v: unknown, i: number, field: 'forZones' | 'forNodes'): readonly string[] {
  const raw = list(v, `endpoints[${i}].hints.${field}`);
  if (raw.length === 0) return NO_HINTS;
  return raw.map((h) =>
    isObj(h) && typeof h.name === 'string' ? h.name : fail(`endpoints[${i}].hints.${field}: bad entry`),
  );
}

function readNode(o: Raw): NodeObject {
  apiVersion(o, 'v1');
  const meta = readMeta(o, false);
  const status = isObj(o.status) ? o.status : {};
  const addresses = list(status.addresses, 'status.addresses')
    .map((a, i): NodeAddress | undefined => {
      if (!isObj(a) || typeof a.type !== 'string') return fail(`status.addresses[${i}] must have a type`);
      if (a.type !== 'InternalIP' && a.type !== 'ExternalIP') return undefined;
      return { type: a.type, address: ip(a.address, `status.addresses[${i}]`) };
    })
    .filter((a): a is NodeAddress => a !== undefined);
  return { kind: 'Node', meta, addresses, zone: meta.labels[ZONE_LABEL] ?? '', beingRemoved: nodeBeingRemoved(o) };
}

/**
 * kube-proxy's test (proxy_health.go SyncNode): a deletionTimestamp, or a taint keyed
 * ToBeDeletedByClusterAutoscaler. Never a reason to refuse the Node: the API server validates
 * both fields, and a value of another shape is read as not set.
 */
function nodeBeingRemoved(o: Raw): NodeObject['beingRemoved'] {
  const m = isObj(o.metadata) ? o.metadata : {};
  if (typeof m.deletionTimestamp === 'string' && m.deletionTimestamp !== '') return 'deletionTimestamp';
  const taints = isObj(o.spec) ? o.spec.taints : undefined;
  if (Array.isArray(taints) && taints.some((t) => isObj(t) && t.key === TO_BE_DELETED_TAINT))
    return TO_BE_DELETED_TAINT;
  return '';
}

/** Everything read from one or more manifest texts: the good objects and the refused ones. */
export interface ManifestReadResult {
  readonly objects: KubeObject[];
  readonly rejected: Rejection[];
}

/**
 * The raw API objects of a YAML/JSON text (List kinds expanded), its unparseable documents, and
 * the documents that parse but cannot be decoded (an alias to an anchor of another document, an
 * alias bomb over the yaml package's alias limit): each of those is refused alone, by index.
 */
export interface SplitManifest {
  readonly items: unknown[];
  readonly yamlErrors: { readonly document: number; readonly message: string }[];
  readonly decodeErrors: { readonly document: number; readonly message: string }[];
  /** Documents that decoded (empty ones included). */
  readonly decoded: number;
}

/**
 * Splits a YAML or JSON text that may hold several documents and `*List` kinds into raw objects,
 * without validating them (the manifests source needs the raw objects for its watch events).
 */
export function splitManifestText(text: string): SplitManifest {
  const items: unknown[] = [];
  const yamlErrors: SplitManifest['yamlErrors'] = [];
  const decodeErrors: SplitManifest['decodeErrors'] = [];
  let decoded = 0;
  const docs = parseAllDocuments(text);
  (Array.isArray(docs) ? docs : [docs]).forEach((doc, i) => {
    if (doc.errors.length > 0) {
      // The yaml package's first line ends with ':' before a code excerpt we do not show.
      yamlErrors.push({ document: i + 1, message: doc.errors[0]!.message.split('\n')[0]!.replace(/:\s*$/, '') });
      return;
    }
    let raw: unknown;
    try {
      raw = doc.toJS(); // the default maxAliasCount (100) still refuses alias bombs, now per document
    } catch (e) {
      decodeErrors.push({ document: i + 1, message: e instanceof Error ? e.message.split('\n')[0]! : String(e) });
      return;
    }
    decoded += 1;
    if (raw !== null && raw !== undefined) items.push(...expandLists(raw)); // skip empty documents
  });
  return { items, yamlErrors, decodeErrors, decoded };
}

/**
 * Reads a YAML or JSON text that may hold several documents and `*List` kinds. Each bad object
 * is rejected alone; a document that is not even YAML is rejected as a whole, naming its index.
 */
export function parseManifestText(text: string, source: string): ManifestReadResult {
  const objects: KubeObject[] = [];
  const { items, yamlErrors, decodeErrors } = splitManifestText(text);
  const rejected: Rejection[] = [];
  for (const item of items) {
    const r = readKubeObject(item, source);
    if (r.ok) objects.push(r.object);
    else rejected.push(r.rejection);
  }
  for (const e of yamlErrors) rejected.push({ ref: `document ${e.document}`, source, reason: `YAML: ${e.message}` });
  for (const e of decodeErrors)
    rejected.push({ ref: `document ${e.document}`, source, reason: `cannot decode: ${e.message}` });
  return { objects, rejected };
}

function expandLists(raw: unknown): unknown[] {
  if (isObj(raw) && typeof raw.kind === 'string' && raw.kind.endsWith('List') && Array.isArray(raw.items)) {
    // Items of a typed list (ServiceList) often omit kind/apiVersion: take them from the list.
    const itemKind = raw.kind === 'List' ? undefined : raw.kind.slice(0, -'List'.length);
    return raw.items.flatMap((it) =>
      expandLists(
        isObj(it) && itemKind && it.kind === undefined ? { kind: itemKind, apiVersion: raw.apiVersion, ...it } : it,
      ),
    );
  }
  return [raw];
}
