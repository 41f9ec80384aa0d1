import {
  byCodeUnit,
  HEADLESS_LABEL,
  LATEST_READING_REVISION,
  prefersNonTerminatingDuplicate,
  type ReadingRevision,
  SERVICE_PROXY_NAME_LABEL,
  type Endpoint,
  type EndpointEntry,
  type EndpointSliceObject,
  type NodeFacts,
  type NodeObject,
  type ServiceEntry,
  type ServiceObject,
  type ServicePortEntry,
  runSteps,
} from '../model/index.ts';

/** Endpoints read per step of buildServiceEntrySteps (~1–2 ms here). */
const ENDPOINTS_PER_STEP = 2000;

/**
 * Merges a Service with its EndpointSlices into the node-independent entry that data versions
 * carry. Returns undefined for services the proxy ignores (ExternalName, headless, no cluster IP
 * allocated yet) — as kube-proxy's ShouldSkipService does — and for those labelled with another
 * proxy's name; slices so labelled, or labelled headless, are not read either (kube-proxy's
 * informers select `!service-proxy-name,!headless`). `revision`: the reading revision whose rules
 * decide between duplicates (libs/model/reading-revision.ts).
 */
export function buildServiceEntry(
  svc: ServiceObject,
  slices: Iterable<EndpointSliceObject>,
  revision: ReadingRevision = LATEST_READING_REVISION,
): ServiceEntry | undefined {
  return runSteps(buildServiceEntrySteps(svc, slices, revision));
}

/**
 * buildServiceEntry in steps of about ENDPOINTS_PER_STEP endpoints read, for a caller that must
 * not block for one service of 100 000 endpoints (probe10 H9). The same entry either way; each
 * port's sort is one step (~15 ms for 100 000 endpoints here).
 */
export function* buildServiceEntrySteps(
  svc: ServiceObject,
  slices: Iterable<EndpointSliceObject>,
  revision: ReadingRevision = LATEST_READING_REVISION,
): Generator<void, ServiceEntry | undefined, void> {
  if (svc.type === 'ExternalName' || svc.headless || svc.clusterIPs.length === 0) return undefined;
  if (notOurs(svc.meta.labels)) return undefined;
  const sliceList = [...slices].filter((s) => s.addressType !== 'FQDN' && !notOurs(s.meta.labels));
  // Every object here is built with its keys in code-unit order: canonicalJson (the entry's
  // hash, the delta the log stores) then serialises it with JSON.stringify. Same content either way.
  // Each part is frozen as it is made (entries are frozen values): cheaper than a deep freeze
  // walking the finished entry, which then sees a frozen top and stops there.
  const ports: ServicePortEntry[] = [];
  for (const p of svc.ports)
    ports.push(
      Object.freeze({
        endpoints: yield* endpointsFor(
          p.name,
          p.protocol,
          sliceList,
          prefersNonTerminatingDuplicate(revision) ? rank : rankV1,
        ),
        name: p.name,
        nodePort: svc.type === 'NodePort' || svc.type === 'LoadBalancer' ? p.nodePort : 0,
        port: p.port,
        protocol: p.protocol,
      }),
    );
  ports.sort((a, b) => byCodeUnit(a.name, b.name));
  Object.freeze(ports);
  return Object.freeze({
    affinityTimeoutSeconds: svc.sessionAffinity === 'ClientIP' ? svc.affinityTimeoutSeconds : 0,
    clusterIPs: Object.isFrozen(svc.clusterIPs) ? svc.clusterIPs : Object.freeze(svc.clusterIPs),
    externalIPs: uniqueSorted(svc.externalIPs),
    externalTrafficPolicy: svc.externalTrafficPolicy,
    healthCheckNodePort: svc.healthCheckNodePort,
    internalTrafficPolicy: svc.internalTrafficPolicy,
    key: `${svc.meta.namespace}/${svc.meta.name}`,
    loadBalancerIngress: uniqueSorted(svc.loadBalancerIngress),
    loadBalancerSourceRanges: uniqueSorted(svc.loadBalancerSourceRanges),
    nodePorts: svc.type === 'NodePort' || svc.type === 'LoadBalancer',
    ports,
    topologyAware: svc.topologyAware,
  });
}

/**
 * Endpoints of one service port across all slices, matched by port name and protocol the way the
 * endpoint slice cache does. The same ip:port in two slices (possible during slice moves) is kept
 * once, the copy of higher `rank` (then the tieBreakText), so the result does not depend on slice
 * order.
 */
function* endpointsFor(
  portName: string,
  protocol: string,
  slices: EndpointSliceObject[],
  rank: (e: EndpointEntry) => number,
): Generator<void, EndpointEntry[], void> {
  const byAddr = new Map<string, EndpointEntry>();
  let read = 0;
  for (const slice of slices) {
    const sp = slice.ports.find((p) => p.name === portName && p.protocol === protocol);
    if (!sp) continue;
    for (const ep of slice.endpoints) {
      if (++read % ENDPOINTS_PER_STEP === 0) yield;
      const ip = ep.addresses[0]!; // kube-proxy uses the first address only
      const entry = endpointEntry(ep, ip, sp.port);
      const key = `${ip}|${sp.port}`;
      const prev = byAddr.get(key);
      if (
        !prev ||
        rank(entry) > rank(prev) ||
        (rank(entry) === rank(prev) && byCodeUnit(tieBreakText(entry), tieBreakText(prev)) < 0)
      ) {
        byAddr.set(key, entry);
      }
    }
  }
  if (read >= ENDPOINTS_PER_STEP) yield; // the sort below is a step of its own
  return Object.freeze(
    [...byAddr.values()].sort((a, b) => byCodeUnit(a.ip, b.ip) || a.port - b.port),
  ) as EndpointEntry[];
}

/**
 * One endpoint's entry, its keys in code-unit order (hintNodes only when it has some). Two plain
 * literals rather than one with a spread: no temporary object per endpoint (100 000 in an initial
 * list), and the same keys, values and order, so the same canonical text and hash.
 */
function endpointEntry(ep: Endpoint, ip: string, port: number): EndpointEntry {
  if (ep.hintNodes.length > 0)
    return Object.freeze({
      hintNodes: uniqueSorted(ep.hintNodes),
      hintZones: uniqueSorted(ep.hintZones),
      ip,
      nodeName: ep.nodeName,
      port,
      ready: ep.ready,
      serving: ep.serving,
      terminating: ep.terminating,
      zone: ep.zone,
    });
  return Object.freeze({
    hintZones: uniqueSorted(ep.hintZones),
    ip,
    nodeName: ep.nodeName,
    port,
    ready: ep.ready,
    serving: ep.serving,
    terminating: ep.terminating,
    zone: ep.zone,
  });
}

const notOurs = (labels: Readonly<Record<string, string>>): boolean =>
  Object.hasOwn(labels, SERVICE_PROXY_NAME_LABEL) || Object.hasOwn(labels, HEADLESS_LABEL);

/**
 * Reading revision 2: a non-terminating copy over a terminating one, as kube-proxy's addEndpoints
 * (`!exists || !terminating`: a new pod reusing a terminating pod's IP wins, even before it is
 * ready), then the more usable copy (ready over serving over neither); among non-terminating
 * copies kube-proxy's choice is a map's order, ours the more usable one.
 */
const rank = (e: EndpointEntry): number => (e.terminating ? 0 : 4) + rankV1(e);
/** Reading revision 1: the more usable copy (ready over serving over neither). */
const rankV1 = (e: EndpointEntry): number => (e.ready ? 2 : e.serving ? 1 : 0);

/**
 * Which of two equally usable copies of one ip:port wins: the smaller of these texts. The field
 * order is the one entries were once built in, kept so the choice (and so every recorded
 * version's content) never changes.
 */
const tieBreakText = (e: EndpointEntry): string =>
  JSON.stringify({
    ip: e.ip,
    port: e.port,
    nodeName: e.nodeName,
    zone: e.zone,
    ready: e.ready,
    serving: e.serving,
    terminating: e.terminating,
    hintZones: e.hintZones,
  });

const NONE: string[] = Object.freeze([]) as unknown as string[];

function uniqueSorted(xs: readonly string[]): string[] {
  // Most lists (an endpoint's hint zones, a service's external IPs) are empty: one shared frozen
  // value instead of a Set, an array and a sort per endpoint (100 000 of them at 10k services).
  if (xs.length === 0) return NONE;
  if (xs.length === 1) return Object.freeze([xs[0]!]) as string[];
  return Object.freeze([...new Set(xs)].sort(byCodeUnit)) as string[];
}

/** The facts rendering uses from a Node; status churn outside them makes no new version. */
export function buildNodeFacts(node: NodeObject): NodeFacts {
  return Object.freeze({
    addresses: uniqueSorted(node.addresses.map((a) => a.address)),
    // only when set: a Node that is not leaving hashes as before the field existed
    ...(node.beingRemoved ? { beingRemoved: node.beingRemoved } : {}),
    name: node.meta.name,
    zone: node.zone,
  });
}
