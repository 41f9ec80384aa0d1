import {
  byCodeUnit,
  ipFamily,
  virtualServerKey,
  type EndpointEntry,
  type IpFamily,
  type Protocol,
  type ProxyConfig,
  type ServiceEntry,
  type VirtualServer,
} from '../model/index.ts';
import type { ClusterDataSource } from './cluster-data-index.ts';
import { IPSET_TABLE, ipsetName } from './ipset-names.ts';
import { bucketOf, OverlayMemo, type IdentifiedItems } from './bucket-hash-tree.ts';
import {
  NodeStateHashTree,
  nodeStateHash,
  nodeStateItem,
  virtualServerCopies,
  type VirtualServerCopies,
} from './node-state-hash.ts';
import { changedKeys } from './node-state-renderer.ts';
import {
  claimOrder,
  loopBackEntry,
  mergeContributions,
  neutralContext,
  renderContext,
  renderNodeState,
  renderServiceForNode,
  type RenderContext,
  type ServiceContribution,
} from './render-node-state.ts';

interface Candidate {
  readonly vs: VirtualServer;
  readonly service: string;
  /** Position in its service's contribution (ties within one service, as NodeStateRenderer). */
  readonly index: number;
}

interface Held {
  readonly entry: ServiceEntry;
  /** The service rendered for no node in particular: what it gives every node it is not sensitive to. */
  readonly shared: ServiceContribution;
  /** What its NodePorts add on any node's addresses (undefined: none, or not to be laid over: rendered per node). */
  readonly nodePorts: NodePortTemplate | undefined;
  /** Its endpoints by node, made at its first KUBE-LOOP-BACK scan (see endpointNodesOf). */
  endpointNodes?: EndpointNodes;
  /** Unique among every Held's (a changed entry is a new Held): names its KUBE-LOOP-BACK members (LoopBackMembers). */
  readonly stamp: number;
}

/**
 * A service's endpoints by node, under one generation of node numbers: for each endpoint its
 * node's number × 2^32 + its place (its ports in order, each one's endpoints in order), sorted, so
 * a node's endpoints are found by a binary search (8 bytes an endpoint). `portStarts[p]` is port
 * p's first place.
 */
interface EndpointNodes {
  readonly generation: number;
  readonly byNode: Float64Array;
  readonly portStarts: Int32Array;
  /** By place: 1 for an IPv6 endpoint, 0 for IPv4. */
  readonly v6: Uint8Array;
  /** By place: the bucket of the endpoint's KUBE-LOOP-BACK member's item (the same on every node). */
  readonly loopBackBuckets: Uint8Array;
}

const PLACES = 2 ** 32;
/** A KUBE-LOOP-BACK member's id: its service's Held stamp × this + its endpoint's place (exact below 2^53: stamps below 2^33). */
const MEMBER_PLACES = 2 ** 20;

/**
 * A node's KUBE-LOOP-BACK members of its laid-over local services as the overlay's identified
 * items: a member depends only on its service's entry and its endpoint (not on the node), so it is
 * named by its Held's stamp and the endpoint's place, its bucket kept with the service's endpoints
 * by node. Only where no other source has members of the set on the node (see hashSteps).
 */
class LoopBackMembers implements IdentifiedItems {
  private helds: Held[] = [];
  private numbers: number[] = [];
  private numbered: Float64Array | undefined;
  /** Each member's bucket, beside its id: the overlay asks for every member's at each hash. */
  private buckets: number[] | Uint8Array = [];
  /** Members made into items so far (by the hash that found them, or the last that kept them). */
  made = 0;

  constructor(readonly label: string) {}

  /** `bucket`: the member's bucket, from its service's endpoints by node (EndpointNodes.loopBackBuckets). */
  add(held: Held, place: number, bucket: number): void {
    this.helds.push(held);
    this.numbers.push(held.stamp * MEMBER_PLACES + place);
    (this.buckets as number[]).push(bucket);
    this.numbered = undefined;
  }

  /** Kept past its hash (LoopBackKept): ids and buckets in typed arrays, arrays at their length, ~20 bytes a member. */
  compact(): void {
    this.numbered = this.ids;
    this.numbers = [];
    this.buckets = Uint8Array.from(this.buckets);
    this.helds = this.helds.slice();
  }

  get ids(): Float64Array {
    this.numbered ??= Float64Array.from(this.numbers);
    return this.numbered;
  }

  /**
   * A new block of this one's members less those of the services in `stale` (LoopBackKept: the
   * rest kept, the stale ones walked again into it).
   */
  without(stale: ReadonlySet<string>): LoopBackMembers {
    const out = new LoopBackMembers(this.label);
    const ids = this.ids;
    for (let j = 0; j < ids.length; j++) {
      const held = this.helds[j]!;
      if (stale.has(held.entry.key)) continue;
      out.helds.push(held);
      out.numbers.push(ids[j]!);
      (out.buckets as number[]).push(this.buckets[j]!);
    }
    return out;
  }

  /** A member's endpoint place: its id's low part. */
  private place(j: number): number {
    return this.ids[j]! % MEMBER_PLACES;
  }

  bucket(j: number): number | undefined {
    return this.buckets[j];
  }

  item(j: number): readonly [string, string] {
    const held = this.helds[j]!;
    const [ep, protocol, set] = loopBackMemberAt(held, held.endpointNodes!, this.place(j));
    this.made += 1;
    return nodeStateItem.ipsetEntry(set, loopBackEntry(ep, protocol));
  }
}

/** The endpoint at a place of a service's endpoints, its port's protocol and its family's KUBE-LOOP-BACK set. */
function loopBackMemberAt(held: Held, nodes: EndpointNodes, place: number): [EndpointEntry, Protocol, string] {
  const { portStarts } = nodes;
  let p = 0;
  while (portStarts[p + 1]! <= place) p += 1;
  const port = held.entry.ports[p]!;
  const set = nodes.v6[place] ? LOOP_BACK_V6 : LOOP_BACK_V4;
  return [port.endpoints[place - portStarts[p]!]!, port.protocol, set];
}

/**
 * The NodePort template virtual servers of every service whose copies on a node address share one
 * key (same family, protocol and port): on a node that lays them all over, the claim on that key is
 * theirs alone unless a shared or rendered claim sits on it too, so its winner is decided once per
 * version (pick over the templates: claimOrder and content do not depend on the address, which the
 * copies share) and each node only hashes the winner's copy on its address.
 */
interface NodePortGroup {
  readonly family: IpFamily;
  readonly protocol: VirtualServer['protocol'];
  readonly port: number;
  readonly members: Candidate[];
  /** pick(members) as of the last settle: undefined only while members is empty. */
  winner: Candidate | undefined | 'ambiguous';
  /** The winner's node-state items on the nodes' addresses (undefined: no winner, or ambiguous). */
  copies: VirtualServerCopies | undefined;
  /** The group's place in each node's CopyDigests, free again when the group goes. */
  readonly slot: number;
  /** Unique among every group's: a new one each time copies changes (a digest kept under an older one is stale). */
  stamp: number;
}

/**
 * One node address's NodePort copy digests, by group slot, each kept with the stamp of its
 * group's copies when made: a later version hashes only the copies whose winner changed instead
 * of every group's (~400 SHA-256 of ~1 kB a node at 10k services), and each copy's bucket, so that
 * a copy is made into its item only where the overlay hashes its bucket (DecidedCopies). 41
 * bytes a group.
 */
class CopyDigests {
  private stamps: Float64Array;
  private digests: Buffer;
  /** The copy's bucket in the node-state tree (bucketOf its key), kept with its digest. */
  private buckets: Uint8Array;

  constructor(slots: number) {
    this.stamps = new Float64Array(slots);
    this.digests = Buffer.alloc(slots * 32);
    this.buckets = new Uint8Array(slots);
  }

  /** The group's copy value kept for this address, if kept under the group's current stamp. */
  kept(group: NodePortGroup): string | undefined {
    const { slot, stamp } = group;
    if (this.stamps[slot] !== stamp) return undefined; // never kept, kept under an older stamp, or past the end
    return this.digests.toString('hex', slot * 32, slot * 32 + 32);
  }

  /** The bucket of the group's copy on this address, if kept under the group's current stamp. */
  bucket(group: NodePortGroup): number | undefined {
    return this.stamps[group.slot] === group.stamp ? this.buckets[group.slot] : undefined;
  }

  keep(group: NodePortGroup, value: string, bucket: number): void {
    const { slot, stamp } = group;
    if (slot >= this.stamps.length) this.grow(slot + 1);
    this.digests.write(value, slot * 32, 'hex');
    this.buckets[slot] = bucket;
    this.stamps[slot] = stamp;
  }

  private grow(slots: number): void {
    const n = Math.max(slots, this.stamps.length * 2);
    const stamps = new Float64Array(n);
    stamps.set(this.stamps);
    const digests = Buffer.alloc(n * 32);
    this.digests.copy(digests);
    const buckets = new Uint8Array(n);
    buckets.set(this.buckets);
    this.stamps = stamps;
    this.digests = digests;
    this.buckets = buckets;
  }
}

/**
 * A node address's decided NodePort copies as the overlay's identified items: each named by its
 * group's stamp (unique to the group and its winner, so to the copy's key and value on this
 * address), made into its item only where the overlay needs it. A later version in which none of
 * them moved then costs no key, value or bucket lookup per copy, only the stamps' digest.
 */
class DecidedCopies implements IdentifiedItems {
  private readonly groups: NodePortGroup[] = [];
  private stamps: Float64Array;
  private count = 0;

  constructor(
    readonly label: string,
    capacity: number,
    private readonly digests: CopyDigests,
    private readonly copyOf: (group: NodePortGroup) => readonly [string, string],
  ) {
    this.stamps = new Float64Array(capacity);
  }

  add(group: NodePortGroup): void {
    this.stamps[this.count++] = group.stamp;
    this.groups.push(group);
  }

  /** Every group of `decided` (DecidedGroups), at once: the usual case of an address nothing else claims. */
  addAll(decided: DecidedGroups): void {
    this.stamps.set(decided.stamps, this.count);
    this.count += decided.stamps.length;
    for (const g of decided.groups) this.groups.push(g);
  }

  get ids(): Float64Array {
    return this.stamps.subarray(0, this.count);
  }

  bucket(j: number): number | undefined {
    return this.digests.bucket(this.groups[j]!);
  }

  item(j: number): readonly [string, string] {
    return this.copyOf(this.groups[j]!);
  }
}

/**
 * A family's NodePort groups as one version has them, made once for every node: those whose claim
 * is decided (copies made), in the groups' order with their stamps, and the others (key and group).
 */
interface DecidedGroups {
  readonly groups: readonly NodePortGroup[];
  readonly stamps: Float64Array;
  readonly undecided: readonly (readonly [string, NodePortGroup])[];
}

/** What is kept per node between versions (only for nodes the data has). */
interface NodeMemo {
  readonly overlay: OverlayMemo;
  /** By NodePort address of the node; addresses it no longer has are dropped at its next hash. */
  readonly copies: Map<string, CopyDigests>;
  /** Its KUBE-LOOP-BACK members as the last hash found them, when all were identified (see LoopBackKept). */
  loopBack?: LoopBackKept;
  /** The update (ExpectedNodeStateHashes.updates) its last hash followed. */
  hashedAt: number;
}

/**
 * A node's LoopBackMembers kept with what they were found from, so that a later version in which
 * none of it moved takes them as they are instead of reading each of its local services again
 * (~100 services a node at 10k × 10: a third of a later version's check). What that walk reads:
 * the node's local services and their Held records, which of them are rendered here, and per
 * family whether its set exists and whether anything else has members of it. Every change to a
 * local service re-indexes it, which marks it stale in the walk kept for each of its endpoint
 * nodes, before and after: the next hash walks the stale services again and takes the rest (see
 * `stale`); a walk with stale services is dropped at the end of an update once its node missed
 * a version, so a silent node keeps a replaced Held alive for at most two versions;
 * which services are rendered here changes with them or with the node's facts (node: the entry,
 * replaced when they change); the walk's conditions per family are compared
 * (sets: in every case known they move only with a local service, so this only mirrors the walk).
 * Kept only when every member was identified (a service rendered here with members of the set
 * makes the walk count them the plain way, each time). Members are named by a Held stamp and an
 * endpoint place, not by node numbers, so numbers starting over leave them as they are.
 */
interface LoopBackKept {
  readonly block: LoopBackMembers;
  readonly node: unknown;
  readonly sets: number;
  /** The walk's share of ExpectedHashStats.servicesLaidOver. */
  readonly laidOver: number;
  /**
   * Local services (before or after) indexed in or out since: their members are walked again,
   * the others' taken as kept, while nothing else the walk reads moved and no service rendered
   * here has members of a KUBE-LOOP-BACK set (past STALE_MAX of them the walk is made whole).
   */
  readonly stale: Set<string>;
}

/** Stale services past which a node's kept KUBE-LOOP-BACK walk is dropped and made whole again. */
const STALE_MAX = 32;

/**
 * What a service adds to its shared rendering on a node's NodePort addresses, with a stand-in
 * address per family where the node's go: its NodePort virtual servers and any ipset members
 * naming the address (SCTP NodePorts). Found by rendering the service once with the stand-ins as
 * the node's NodePort addresses (renderServiceForNode itself: one home for what a NodePort is),
 * kept only when that rendering is exactly the shared one plus items naming a stand-in, each
 * address giving its own copies (renderFamily renders each NodePort address alone).
 */
interface NodePortTemplate {
  readonly virtualServers: readonly { readonly vs: VirtualServer; readonly family: IpFamily }[];
  readonly ipsetEntries: readonly { readonly set: string; readonly entry: string; readonly family: IpFamily }[];
}

/** Stand-in NodePort addresses: never an address (ipFamily tells their family by the colon alone). */
const STAND_IN: Readonly<Record<IpFamily, string>> = { IPv4: '%node-address-v4%', IPv6: '%node:address:v6%' };

/** How the last hash() was computed (tests and metrics). */
export interface ExpectedHashStats {
  /** Services rendered again for the node: the ones its facts or endpoints reach in ways not laid over. */
  readonly servicesRendered: number;
  /** Services the node reaches only through its NodePort addresses or endpoints on it: their items laid over, no render. */
  readonly servicesLaidOver: number;
  /** Item changes against the shared items (the node item included). */
  readonly ownItems: number;
  /** True when the fast path could not tell and the node was rendered in full. */
  readonly fullRender: boolean;
  /**
   * Buckets of the node's state hashed again for its overlay (of 256): those its own items fall
   * in, on its first hash; later, only those where its own items or the shared items moved. -1
   * for a node the data does not have (no memo kept: every bucket of its own items each time).
   */
  readonly bucketsHashed: number;
  /** NodePort claims on the node's addresses taken from their group's winner, decided once per version. */
  readonly claimsDecidedOnce: number;
  /**
   * Of those, the copies hashed (SHA-256 of the winner's text on the address): on a node's first
   * hash all, later only those whose group's winner changed since (the rest kept per node). Every
   * one for a node the data does not have.
   */
  readonly copiesHashed: number;
  /**
   * Of those, the copies made into items (key and value) for the overlay: for a node with a memo
   * only those in buckets hashed again (see DecidedCopies; BucketHashTree's memo overlay); every
   * one for a node the data does not have.
   */
  readonly copiesMade: number;
  /**
   * KUBE-LOOP-BACK members of laid-over services made into items for the overlay: for a node with
   * a memo, where nothing else has members of the set, only those in buckets hashed again (see
   * LoopBackMembers); otherwise every one.
   */
  readonly loopBackMembersMade: number;
  /** True when the node's KUBE-LOOP-BACK members were taken as its last hash found them (LoopBackKept). */
  readonly loopBackKept: boolean;
  /** True when they were taken so but for those of its local services that moved, walked again (LoopBackKept.stale). */
  readonly loopBackPatched: boolean;
  /** VIP:port claims merged for the node itself (something beyond one NodePort group claims the key here). */
  readonly claimsMerged: number;
}

const LOOP_BACK_V4 = ipsetName('KUBE-LOOP-BACK', 'IPv4');
const LOOP_BACK_V6 = ipsetName('KUBE-LOOP-BACK', 'IPv6');
const SET_FAMILY = new Map<string, IpFamily>(
  (['IPv4', 'IPv6'] as const).flatMap((f) => IPSET_TABLE.map(([base]) => [ipsetName(base, f), f] as const)),
);
const SETS_OF = (f: IpFamily) =>
  IPSET_TABLE.map(([base, type]) => ({
    name: ipsetName(base, f),
    type,
    family: type === 'bitmap:port' ? undefined : f === 'IPv4' ? ('inet' as const) : ('inet6' as const),
  }));

/** Work units per updateSteps step: about 16 renders of a small service (~0.5–2 ms), or 256 comparisons. */
const STEP_WORK = 256;
const RENDER_WORK = 16;
/** Groups, laid-over services or items per hashSteps step (~1–5 µs each); a service rendered again counts renderWork. */
const HASH_STEP_WORK = 256;

/**
 * Work units of rendering, indexing or hashing a service of `endpoints` endpoints (or a virtual
 * server of as many real servers): each costs O(them), so a step of 250-endpoint services holds
 * two of them, not sixteen (sixteen made steps of 13–19 ms at 2,000 such services, 62–75 ms at
 * 10,000: docs/benchmarks.md, Planner eleventh round).
 */
function renderWork(endpoints: number): number {
  return RENDER_WORK + (endpoints >> 1);
}

function endpointCount(entry: ServiceEntry): number {
  let n = 0;
  for (const port of entry.ports) n += port.endpoints.length;
  return n;
}

/** An item value computed once per virtual server object (versions share unchanged services' objects). */
const vsItems = new WeakMap<VirtualServer, readonly [string, string]>();
function vsItem(vs: VirtualServer): readonly [string, string] {
  let item = vsItems.get(vs);
  if (!item) vsItems.set(vs, (item = nodeStateItem.virtualServer(vs)));
  return item;
}

/**
 * The node-state hashes the planner expects many nodes to echo for one data version and one
 * proxy config: nodeStateHash(renderNodeState(data, node, config)) for each, in O(cluster) once
 * (O(changed services) when moved to a later version) plus O(the node's own items) per node,
 * instead of O(cluster) per node (issue 15 item 3).
 *
 * Most of a node's state is the same on every node. Each service is rendered once for no node in
 * particular (no name, no facts: no NodePorts, no local endpoints, no zone); those contributions
 * are merged as NodeStateRenderer merges them (refcounts, claimOrder for VIP:port claims) into a
 * tree of shared items. A service's rendering depends on the node only through: its NodePorts
 * (served on the node's addresses), a load balancer's source ranges (checked against them),
 * endpoints on that node (KUBE-LOOP-BACK, traffic policy Local) and topology hints (the node's
 * zone); node addresses in its externalIPs or ingress IPs count alike for every node. For a node, only
 * the services it reaches so are rendered again; their shared contributions are taken out of
 * the merge and theirs put in, and the items that differ are laid over the shared tree
 * (BucketHashTree.overlayRoot: only the buckets they fall in are rehashed). What this cannot
 * follow (a node that would add or drop a whole address family's ipsets) is rendered in full.
 * The same value as the full functions for every node (property test in
 * test/libs/planner/expected-node-state-hashes.test.ts). Pure; holds the data source it was
 * last moved to, which must not change between update() and hash().
 */
export class ExpectedNodeStateHashes {
  private data: ClusterDataSource | undefined;
  /** The context of the shared renderings: no node; the node addresses of the data last moved to. */
  private neutral: RenderContext;
  /** The node addresses of the last update that ran to its end: every held rendering agrees with them... */
  private settledAddresses: ReadonlyMap<string, readonly string[]> = new Map();
  /** ...but for services listing one of these (node addresses that came or went since; see updateSteps). */
  private readonly unsettledAddresses = new Set<string>();
  private readonly held = new Map<string, Held>();
  private readonly candidates = new Map<string, Candidate[]>();
  /**
   * How many VIP:port keys of candidates each address has: a node address with none (nearly
   * every one) lets hashSteps take each NodePort group's decided copy without building its key
   * and looking it up.
   */
  private readonly claimedAddresses = new Map<string, number>();
  private readonly winners = new Map<string, VirtualServer>();
  private readonly bound = new Map<string, number>();
  private readonly entryCount = new Map<string, Map<string, number>>();
  private readonly familyCount = new Map<IpFamily, number>([['IPv4', 1]]); // IPv4 sets always exist
  private readonly tree = new NodeStateHashTree();
  private readonly touched = new Set<string>();
  /** VIP:ports claimed twice with equal rank and different content (see pick): every node is rendered in full. */
  private readonly ambiguous = new Set<string>();
  // which services a node's facts or name reach (see hashSteps)
  private readonly byEndpointNode = new Map<string, Set<string>>();
  /**
   * Node names as numbers, for each service's endpointNodes: a node finds its KUBE-LOOP-BACK members
   * by a binary search in each local service's endpoints sorted by node number instead of reading
   * every endpoint of it (at 250 endpoints a service, ~110k endpoints read a node: ~6 ms of a later
   * version's ~11 ms a node at 2,000 services and 1,000 nodes). Names of nodes gone stay until the
   * map outgrows the names endpoints have twice over; then it starts over, in a new generation, and
   * each service's array is made again at its next scan.
   */
  private nodeIds = new Map<string, number>();
  private nodeIdsGeneration = 0;
  /** The last Held stamp given (see Held.stamp). */
  private heldStamps = 0;
  /** Services by externalIP and ingress IP: rendered again when a node's address comes or goes. */
  private readonly byExternalIP = new Map<string, Set<string>>();
  private readonly withNodePorts = new Set<string>();
  private readonly withSourceRanges = new Set<string>();
  // services with zone hints (they read the node's zone) and with node hints (they read its name)
  private readonly zoneHinted = new Set<string>();
  private readonly nodeHinted = new Set<string>();
  /** Services with NodePorts laid over from a template (the rest of withNodePorts is in untemplated). */
  private readonly templated = new Set<string>();
  private readonly untemplated = new Set<string>();
  /** Templated services whose template has ipset members (SCTP NodePorts): few, copied per node. */
  private readonly templateEntries = new Set<string>();
  /** Services with a traffic policy Local: rendered again on a node with endpoints of theirs. */
  private readonly localPolicy = new Set<string>();
  /** Template virtual servers by the key of their copies less the address (see NodePortGroup). */
  private readonly groups = new Map<string, NodePortGroup>();
  private readonly touchedGroups = new Set<string>();
  /** Per family, this version's groups split as DecidedGroups (made at the first hash that needs them). */
  private decidedGroups = new Map<IpFamily, DecidedGroups>();
  /** Template virtual servers per family: what laying every template over adds per node address of it. */
  private readonly templateFamilyCount = new Map<IpFamily, number>();
  private last: ExpectedHashStats = {
    servicesRendered: 0,
    servicesLaidOver: 0,
    ownItems: 0,
    fullRender: false,
    claimsDecidedOnce: 0,
    copiesHashed: 0,
    copiesMade: 0,
    loopBackMembersMade: 0,
    loopBackKept: false,
    loopBackPatched: false,
    claimsMerged: 0,
    bucketsHashed: 0,
  };
  /**
   * Per node: its last overlay (OverlayMemo, ~13 kB a node): a later version hashes again only the
   * buckets where the node's own items or the shared items moved, not every bucket its own items
   * fall in (~2.4 ms of a node's ~3.6 ms at 10k services and 1,000 nodes); and its NodePort
   * copies' digests (CopyDigests, 41 bytes a NodePort group). Kept only for nodes the data has;
   * those it no longer has are dropped at each update's end.
   */
  private readonly nodeMemos = new Map<string, NodeMemo>();
  /** Updates begun (updateSteps), for NodeMemo.hashedAt. */
  private updates = 0;
  /** Group slots free for the next new group, and the last stamp given (see NodePortGroup). */
  private readonly freeSlots: number[] = [];
  private slots = 0;
  private lastStamp = 0;

  constructor(readonly config: ProxyConfig) {
    this.neutral = neutralContext(config);
    // the proxy knobs exactly as the full render sets them (they depend on config alone)
    this.tree.set(...nodeStateItem.settings(mergeContributions(this.neutral, []).settings));
    for (const [set] of SET_FAMILY) this.entryCount.set(set, new Map());
    for (const s of SETS_OF('IPv4')) this.tree.set(...nodeStateItem.ipset(s));
  }

  /**
   * Moves to `data`: every service whose entry is not the object held (entries are immutable
   * values, replaced on change) is rendered again, removed ones leave. O(services) comparisons
   * plus O(changed services) work; the first call renders everything.
   */
  update(data: ClusterDataSource): void {
    for (const _ of this.updateSteps(data));
  }

  /**
   * update(data) in bounded steps, for a caller that must not block for the whole of it (the
   * first build of a 10k-service cluster renders every service: seconds on a loaded host): each
   * next() does at most about STEP_WORK units of work (a comparison 1, a render or a resolved
   * VIP:port renderWork of its endpoints). hash() refuses until the last step is done. A run left
   * unfinished (a newer version superseded it) leaves a consistent state, each service either as
   * it was or moved, which the next update completes; `data` must not change while the steps run.
   */
  *updateSteps(data: ClusterDataSource): Generator<void, void, void> {
    this.updates += 1;
    this.data = undefined;
    this.decidedGroups = new Map();
    let work = 0;
    const seen = new Set<string>();
    // Node addresses are no externalIP's (probe6 P7): a service listing one that came or went
    // renders otherwise for every node, so it is rendered again like a changed entry. The
    // addresses stay unsettled until a run ends: one left unfinished rendered some services with
    // its addresses, and any address where those differ from the next run's came or went in one
    // of the two runs, so each service listing it (indexed by the entry it holds) renders again.
    const addresses = data.nodeAddressOwners();
    if (addresses !== this.settledAddresses)
      for (const a of changedKeys(this.settledAddresses, addresses)) this.unsettledAddresses.add(a);
    const stale = new Set<string>();
    for (const a of this.unsettledAddresses) for (const k of this.byExternalIP.get(a) ?? []) stale.add(k);
    this.neutral = { ...this.neutral, nodeAddresses: addresses };
    for (const svc of data.services()) {
      seen.add(svc.key);
      work += 1;
      const old = this.held.get(svc.key);
      if (old?.entry !== svc || stale.has(svc.key)) {
        // the new contribution goes in before the old one comes out: shared members keep a count
        const shared = renderServiceForNode(svc, this.neutral);
        const held: Held = {
          entry: svc,
          shared,
          nodePorts: this.nodePortTemplate(svc, shared),
          stamp: ++this.heldStamps,
        };
        this.held.set(svc.key, held);
        this.apply(svc.key, shared, 1);
        if (old) {
          this.apply(svc.key, old.shared, -1);
          this.index(old, -1);
        }
        this.index(held, 1);
        work += renderWork(endpointCount(svc));
      }
      if (work >= STEP_WORK) {
        work = 0;
        yield;
      }
    }
    for (const [key, old] of this.held) {
      if (seen.has(key)) continue;
      this.held.delete(key);
      this.apply(key, old.shared, -1);
      this.index(old, -1);
      work += renderWork(endpointCount(old.entry));
      if (work >= STEP_WORK) {
        work = 0;
        yield;
      }
    }
    for (const k of this.touched) {
      work += renderWork(this.settle(k));
      this.touched.delete(k);
      if (work >= STEP_WORK) {
        work = 0;
        yield;
      }
    }
    for (const g of this.touchedGroups) {
      work += renderWork(this.settleGroup(g));
      this.touchedGroups.delete(g);
      if (work >= STEP_WORK) {
        work = 0;
        yield;
      }
    }
    yield* this.tree.rootSteps(); // every changed bucket hashed here, not in the first node's hash()
    for (const [n, memo] of this.nodeMemos) {
      if (!data.node(n)) this.nodeMemos.delete(n);
      // a kept walk with stale services holds their replaced Helds until its node's next hash:
      // dropped once the node missed a version (a silent node must not keep them alive)
      else if (memo.loopBack && memo.loopBack.stale.size > 0 && memo.hashedAt < this.updates - 1)
        memo.loopBack = undefined;
    }
    if (this.nodeIds.size > 2 * this.byEndpointNode.size + 64) {
      this.nodeIds = new Map();
      this.nodeIdsGeneration += 1;
    }
    this.settledAddresses = addresses;
    this.unsettledAddresses.clear();
    this.data = data;
  }

  /** The node-state hash `nodeName` must echo: nodeStateHash(renderNodeState(data, nodeName, config)). */
  hash(nodeName: string): string {
    const steps = this.hashSteps(nodeName);
    for (;;) {
      const r = steps.next();
      if (r.done) return r.value;
    }
  }

  /**
   * hash(nodeName) in bounded steps (about HASH_STEP_WORK units each, then the overlay in steps
   * of 16 buckets), for a caller that must not block for a whole node. Nothing here may change
   * between its steps (no update).
   *
   * O(the node's own items), not O(services it reaches): a service reaches a node through its
   * NodePort addresses (NodePorts, LB source ranges), endpoints on it (KUBE-LOOP-BACK, traffic
   * policy Local), its zone (zone hints) and its name (node hints): the complete list of what
   * renderServiceForNode reads from the context besides the config (see the class note). Those
   * the node changes by additions only are laid over without a render: NodePort copies of a
   * template (their claims decided once per version by NodePortGroup, each copy on the node's
   * addresses an own item) and KUBE-LOOP-BACK members (made once per version of the service, each
   * an own item). The others (zones, node hints, LB source ranges, NodePorts without a template,
   * Local policies with endpoints here) are rendered again: their shared contributions taken out
   * of the merge and theirs put in.
   */
  *hashSteps(nodeName: string): Generator<void, string, void> {
    const data = this.data;
    if (!data) throw new Error('ExpectedNodeStateHashes: hash() before update() finished');
    const ctx = renderContext(data, nodeName, this.config);
    const full = (): string => {
      this.last = {
        servicesRendered: this.held.size,
        servicesLaidOver: 0,
        ownItems: 0,
        fullRender: true,
        claimsDecidedOnce: 0,
        copiesHashed: 0,
        copiesMade: 0,
        loopBackMembersMade: 0,
        loopBackKept: false,
        loopBackPatched: false,
        claimsMerged: 0,
        bucketsHashed: 256,
      };
      return nodeStateHash(renderNodeState(data, nodeName, this.config));
    };
    if (this.ambiguous.size > 0) return full();
    const onNodePorts = ctx.nodePortIPs.length > 0;
    const local = (nodeName !== '' && this.byEndpointNode.get(nodeName)) || NONE;
    // the services this node changes by more than additions: rendered again
    const rendered = new Set<string>();
    const addAll = (xs: Iterable<string>) => {
      for (const k of xs) rendered.add(k);
    };
    if (onNodePorts) {
      addAll(this.withSourceRanges); // checked against the node's addresses
      addAll(this.untemplated);
    }
    if (ctx.node?.zone) addAll(this.zoneHinted); // slice hints: zone hints read the node's zone (probe6 P5)
    if (nodeName !== '') addAll(this.nodeHinted); // node hints its name
    for (const k of local) if (this.localPolicy.has(k)) rendered.add(k);

    const removed = new Set<VirtualServer>();
    const added = new Map<string, Candidate[]>();
    /** The addresses of added's keys. */
    const addedAddresses = new Set<string>();
    const boundDelta = new Map<string, number>();
    const entryDelta = new Map<string, Map<string, number>>();
    const familyDelta = new Map<IpFamily, number>();
    const addEntry = (set: string, e: string, sign: 1 | -1) => {
      let m = entryDelta.get(set);
      if (!m) entryDelta.set(set, (m = new Map()));
      m.set(e, (m.get(e) ?? 0) + sign);
    };
    const count = (c: ServiceContribution, service: string, sign: 1 | -1) => {
      c.virtualServers.forEach((vs, index) => {
        const fam = ipFamily(vs.address);
        familyDelta.set(fam, (familyDelta.get(fam) ?? 0) + sign);
        const k = virtualServerKey(vs);
        if (sign < 0) removed.add(vs);
        const list = added.get(k) ?? [];
        if (sign > 0) list.push({ vs, service, index });
        added.set(k, list); // a key with an empty list: touched, nothing of the node's own
        addedAddresses.add(vs.address);
      });
      for (const a of c.boundAddresses) boundDelta.set(a, (boundDelta.get(a) ?? 0) + sign);
      for (const [set, e] of c.ipsetEntries) addEntry(set, e, sign);
    };
    let work = 0;
    for (const key of rendered) {
      const held = this.held.get(key)!;
      count(held.shared, key, -1);
      count(renderServiceForNode(held.entry, ctx), key, 1);
      work += renderWork(endpointCount(held.entry));
      if (work >= HASH_STEP_WORK) {
        work = 0;
        yield;
      }
    }

    // only nodes the data has get a memo (one for each name asked about would grow without bound)
    let nodeMemo = this.nodeMemos.get(nodeName);
    if (!nodeMemo && ctx.node)
      this.nodeMemos.set(nodeName, (nodeMemo = { overlay: new OverlayMemo(), copies: new Map(), hashedAt: 0 }));
    if (nodeMemo) nodeMemo.hashedAt = this.updates;
    if (nodeMemo && nodeMemo.copies.size > ctx.nodePortIPs.length)
      for (const ip of nodeMemo.copies.keys()) if (!ctx.nodePortIPs.includes(ip)) nodeMemo.copies.delete(ip);
    const own: (readonly [string, string | undefined])[] = [nodeStateItem.node(nodeName)];
    /**
     * Of a node with a memo: the decided copies on each NodePort address (DecidedCopies) and its
     * laid-over KUBE-LOOP-BACK members (LoopBackMembers): identified, made only where needed.
     */
    const identified: IdentifiedItems[] = [];
    let laidOver = 0;
    let decidedOnce = 0;
    let copiesHashed = 0;
    let copiesMade = 0;
    let membersMade = 0;
    if (onNodePorts) {
      // NodePort copies of every templated service not rendered here: by group, each claim on
      // the node's address decided once per version unless something else claims its key here
      // (a member rendered here claims it in its rendering too, in every case known; `dirty` keeps
      // the group's decision out of the node's claim even where its rendering would not)
      const dirty = new Set<string>();
      const excluded = new Map<IpFamily, number>();
      let renderedTemplated = 0;
      for (const k of rendered) {
        const t = this.held.get(k)!.nodePorts;
        if (!t) continue;
        renderedTemplated += 1;
        for (const { vs, family } of t.virtualServers) {
          dirty.add(groupKey(family, vs));
          excluded.set(family, (excluded.get(family) ?? 0) + 1);
        }
      }
      laidOver += this.templated.size - renderedTemplated;
      for (const ip of ctx.nodePortIPs) {
        const family = ipFamily(ip);
        const copies = (this.templateFamilyCount.get(family) ?? 0) - (excluded.get(family) ?? 0);
        familyDelta.set(family, (familyDelta.get(family) ?? 0) + copies);
        // no claim of anything else on this address (the usual case): no group's copy key to look up
        const unclaimed = !this.claimedAddresses.has(ip) && !addedAddresses.has(ip);
        let digests = nodeMemo?.copies.get(ip);
        if (!digests && nodeMemo) nodeMemo.copies.set(ip, (digests = new CopyDigests(this.slots)));
        const copyOf = (group: NodePortGroup): [string, string] => {
          const copies = group.copies!;
          const key = copies.key(ip);
          copiesMade += 1;
          let value = digests?.kept(group);
          if (value === undefined) {
            value = copies.value(ip);
            digests?.keep(group, value, bucketOf(key));
            copiesHashed += 1;
          }
          return [key, value];
        };
        const decidedCopies = digests && new DecidedCopies(ip, this.groups.size, digests, copyOf);
        if (decidedCopies) identified.push(decidedCopies);
        const take = (group: NodePortGroup) => {
          if (decidedCopies) decidedCopies.add(group);
          else own.push(copyOf(group));
          decidedOnce += 1;
        };
        // nothing else claims this address and no template is rendered here: every decided group
        // taken as this version has them, only the undecided ones looked at one by one
        const wholesale = unclaimed && dirty.size === 0;
        const split = this.decidedGroupsOf(family);
        if (wholesale) {
          if (decidedCopies) decidedCopies.addAll(split);
          else for (const group of split.groups) own.push(copyOf(group));
          decidedOnce += split.groups.length;
          work += split.groups.length >> 4;
        }
        for (const [g, group] of wholesale ? split.undecided : this.groups) {
          if (group.family !== family) continue;
          if (++work >= HASH_STEP_WORK) {
            work = 0;
            yield;
          }
          const decided = group.copies !== undefined && !dirty.has(g);
          if (decided && unclaimed) {
            take(group);
            continue;
          }
          const k = virtualServerKey({ protocol: group.protocol, address: ip, port: group.port });
          if (decided && !this.candidates.has(k) && !added.has(k)) {
            take(group);
            continue;
          }
          const list = added.get(k) ?? [];
          for (const m of group.members)
            if (!rendered.has(m.service))
              list.push({ vs: { ...m.vs, address: ip }, service: m.service, index: m.index });
          added.set(k, list);
          addedAddresses.add(ip);
        }
      }
      for (const k of this.templateEntries) {
        if (rendered.has(k)) continue;
        for (const ip of ctx.nodePortIPs) {
          const family = ipFamily(ip);
          for (const x of this.held.get(k)!.nodePorts!.ipsetEntries)
            if (x.family === family) addEntry(x.set, x.entry.split(STAND_IN[family]).join(ip), 1);
        }
      }
    }
    // KUBE-LOOP-BACK members of the services with endpoints here, laid over: each is an own item
    // unless the shared items or a service rendered here have it (then counted as any other).
    // Where neither has any member of the set, they are identified (LoopBackMembers).
    // Where none of what the walk reads moved since the node's last hash, its members are taken as
    // that hash found them (LoopBackKept).
    const kept = nodeMemo?.loopBack;
    const sets = this.loopBackSets();
    const keepable = nodeMemo !== undefined && local.size > 0;
    const comparable = keepable && kept !== undefined && kept.node === ctx.node && kept.sets === sets;
    const unmoved = comparable && kept.stale.size === 0;
    // some local services moved and nothing else the walk reads: the others' members taken as
    // kept, the moved ones walked again, unless a service rendered here has members of a set
    // (then the walk counts that set's members the plain way, as it does whole)
    const patched =
      comparable &&
      !unmoved &&
      entryDelta.get(LOOP_BACK_V4) === undefined &&
      entryDelta.get(LOOP_BACK_V6) === undefined;
    if (nodeMemo && !unmoved) nodeMemo.loopBack = undefined;
    const members = unmoved
      ? kept.block
      : patched
        ? kept.block.without(kept.stale)
        : nodeMemo && local.size > 0
          ? new LoopBackMembers(`KUBE-LOOP-BACK@${nodeName}`)
          : undefined;
    if (members) identified.push(members);
    if (unmoved) {
      kept.block.made = 0;
      laidOver += kept.laidOver;
    }
    const laidOverBefore = laidOver;
    if (patched)
      for (const k of local)
        if (!kept.stale.has(k) && !rendered.has(k) && !(onNodePorts && this.templated.has(k))) laidOver += 1;
    let allIdentified = true;
    const me = local.size > 0 && !unmoved ? this.nodeId(nodeName) : -1;
    for (const k of unmoved ? NONE : patched ? [...kept.stale].filter((k) => local.has(k)) : local) {
      if (rendered.has(k)) continue;
      if (!(onNodePorts && this.templated.has(k))) laidOver += 1;
      const held = this.held.get(k)!;
      // made at a service's first scan in this generation (the first node asked about pays for
      // each of its local services: O(their endpoints), counted here so that its step stays short)
      if (!this.current(held.endpointNodes)) work += endpointCount(held.entry) >> 1;
      const nodes = this.endpointNodesOf(held);
      for (const clusterIP of held.entry.clusterIPs) {
        const family = ipFamily(clusterIP);
        const set = ipsetName('KUBE-LOOP-BACK', family);
        if (!this.hasFamily(family)) continue; // no such set on this node (a family that comes is rendered in full)
        const counts = this.entryCount.get(set)!;
        const delta = entryDelta.get(set);
        // every endpoint of the family on this node, whatever its condition (selectEndpoints'
        // allLocal), found by its node's number (endpointNodesOf: 8 bytes an endpoint; keeping the
        // members themselves by node per service cost 27 MB at 10k)
        const { byNode } = nodes;
        const v6 = family === 'IPv6' ? 1 : 0;
        // no member of the set elsewhere (the shared renderings have none: they are for no node)
        const identify = members && counts.size === 0 && delta === undefined && byNode.length <= MEMBER_PLACES;
        if (!identify) allIdentified = false;
        for (let x = lowerBound(byNode, me * PLACES); x < byNode.length && byNode[x]! < (me + 1) * PLACES; x++) {
          const place = byNode[x]! % PLACES;
          if (nodes.v6[place] !== v6) continue;
          work += 1;
          if (identify) {
            members.add(held, place, nodes.loopBackBuckets[place]!);
            continue;
          }
          const [ep, protocol] = loopBackMemberAt(held, nodes, place);
          const e = loopBackEntry(ep, protocol);
          membersMade += 1;
          if (counts.has(e) || delta?.has(e)) addEntry(set, e, 1);
          else own.push(nodeStateItem.ipsetEntry(set, e));
        }
      }
      if (++work >= HASH_STEP_WORK) {
        work = 0;
        yield;
      }
    }
    if (members && keepable && !unmoved && allIdentified) {
      members.compact();
      nodeMemo!.loopBack = {
        block: members,
        node: ctx.node,
        sets,
        laidOver: laidOver - laidOverBefore,
        stale: new Set(),
      };
    }
    // a family's ipsets come or go with its first or last virtual server: not laid over, rendered in full
    for (const [f, d] of familyDelta)
      if (d !== 0 && this.hasFamily(f) !== (this.familyCount.get(f) ?? 0) + d > 0) return full();

    for (const [k, mine] of added) {
      if (++work >= HASH_STEP_WORK) {
        work = 0;
        yield;
      }
      const list = (this.candidates.get(k) ?? []).filter((c) => !removed.has(c.vs)).concat(mine);
      const best = pick(list);
      if (best === 'ambiguous') return full();
      const shared = this.winners.get(k);
      if (!best) {
        if (shared) own.push([`vs:${k}`, undefined]);
      } else if (!shared || (best.vs !== shared && !sameJson(best.vs, shared))) own.push(vsItem(best.vs));
    }
    for (const [a, d] of boundDelta) {
      const n = this.bound.get(a) ?? 0;
      if (d !== 0 && n > 0 !== n + d > 0)
        own.push(n + d > 0 ? nodeStateItem.boundAddress(a) : [`addr:${a}`, undefined]);
    }
    for (const [set, m] of entryDelta) {
      if (!this.hasFamily(SET_FAMILY.get(set)!)) continue; // no such set on this node: its entries are left out
      const counts = this.entryCount.get(set)!;
      for (const [e, d] of m) {
        const n = counts.get(e) ?? 0;
        if (d === 0 || n > 0 === n + d > 0) continue;
        const item = nodeStateItem.ipsetEntry(set, e);
        own.push(n + d > 0 ? item : [item[0], undefined]);
      }
    }
    yield;
    const memo = nodeMemo?.overlay;
    const root = yield* this.tree.overlayRootSteps(own, memo, identified);
    this.last = {
      servicesRendered: rendered.size,
      servicesLaidOver: laidOver,
      ownItems: own.length + identified.reduce((n, d) => n + d.ids.length, 0),
      fullRender: false,
      claimsDecidedOnce: decidedOnce,
      copiesHashed,
      copiesMade,
      loopBackMembersMade: membersMade + (members?.made ?? 0),
      loopBackKept: unmoved,
      loopBackPatched: patched,
      claimsMerged: added.size,
      bucketsHashed: memo ? memo.bucketsHashed : -1,
    };
    return root;
  }

  /** Nodes holding a kept KUBE-LOOP-BACK walk (tests: see LoopBackKept for when one is dropped). */
  get keptLoopBackWalks(): number {
    let n = 0;
    for (const memo of this.nodeMemos.values()) if (memo.loopBack) n += 1;
    return n;
  }

  /** Generations of node numbers so far (tests): a new one each time the numbers started over. */
  get nodeNumberGenerations(): number {
    return this.nodeIdsGeneration + 1;
  }

  private nodeId(name: string): number {
    let id = this.nodeIds.get(name);
    if (id === undefined) this.nodeIds.set(name, (id = this.nodeIds.size));
    return id;
  }

  /** Whether a service's endpoints by node are of the current generation (endpointNodesOf makes none). */
  private current(nodes: EndpointNodes | undefined): nodes is EndpointNodes {
    return nodes?.generation === this.nodeIdsGeneration;
  }

  /** held.endpointNodes of the current generation: made (O(its endpoints · log)) when it has none or an older one. */
  private endpointNodesOf(held: Held): EndpointNodes {
    const kept = held.endpointNodes;
    if (this.current(kept)) return kept;
    const ports = held.entry.ports;
    const portStarts = new Int32Array(ports.length + 1);
    ports.forEach((port, p) => {
      portStarts[p + 1] = portStarts[p]! + port.endpoints.length;
    });
    const n = portStarts[ports.length]!;
    const byNode = new Float64Array(n);
    const v6 = new Uint8Array(n);
    const loopBackBuckets = new Uint8Array(n);
    let place = 0;
    for (const port of ports)
      for (const ep of port.endpoints) {
        byNode[place] = this.nodeId(ep.nodeName) * PLACES + place;
        const family = ipFamily(ep.ip);
        v6[place] = family === 'IPv6' ? 1 : 0;
        const set = family === 'IPv6' ? LOOP_BACK_V6 : LOOP_BACK_V4;
        loopBackBuckets[place] = bucketOf(nodeStateItem.ipsetEntry(set, loopBackEntry(ep, port.protocol))[0]);
        place += 1;
      }
    byNode.sort();
    held.endpointNodes = { generation: this.nodeIdsGeneration, byNode, portStarts, v6, loopBackBuckets };
    return held.endpointNodes;
  }

  /** Nodes with an overlay memo (metrics, tests): at most the nodes of the data last moved to, and those asked about since. */
  get memoizedNodes(): number {
    return this.nodeMemos.size;
  }

  /** How the last hash() was computed. */
  get lastStats(): ExpectedHashStats {
    return this.last;
  }
  /**
   * The service's NodePort template (see NodePortTemplate), or undefined when it has no NodePorts
   * or its rendering on the stand-ins is not the shared one plus stand-in items (LB source
   * ranges, checked against the node's real addresses, are never laid over).
   */
  private nodePortTemplate(svc: ServiceEntry, shared: ServiceContribution): NodePortTemplate | undefined {
    if (!(svc.nodePorts && svc.ports.some((p) => p.nodePort !== 0))) return undefined;
    if (svc.loadBalancerIngress.length > 0 && svc.loadBalancerSourceRanges.length > 0) return undefined;
    const standIns: RenderContext = { ...this.neutral, nodePortIPs: [STAND_IN.IPv4, STAND_IN.IPv6] };
    const on = renderServiceForNode(svc, standIns);
    const familyOf = (text: string): IpFamily | undefined => {
      const v4 = text.includes(STAND_IN.IPv4);
      const v6 = text.includes(STAND_IN.IPv6);
      return v4 === v6 ? undefined : v4 ? 'IPv4' : 'IPv6';
    };
    if (!sameJson(on.boundAddresses, shared.boundAddresses)) return undefined;
    const virtualServers: { vs: VirtualServer; family: IpFamily }[] = [];
    let i = 0;
    for (const vs of on.virtualServers) {
      if (i < shared.virtualServers.length && sameJson(vs, shared.virtualServers[i])) {
        i += 1;
        continue;
      }
      const family = vs.address === STAND_IN.IPv4 ? 'IPv4' : vs.address === STAND_IN.IPv6 ? 'IPv6' : undefined;
      if (!family || JSON.stringify(vs).split(STAND_IN[family]).length !== 2) return undefined;
      virtualServers.push({ vs, family });
    }
    if (i !== shared.virtualServers.length) return undefined;
    const ipsetEntries: { set: string; entry: string; family: IpFamily }[] = [];
    let j = 0;
    for (const [set, entry] of on.ipsetEntries) {
      const s = shared.ipsetEntries[j];
      if (s && s[0] === set && s[1] === entry) {
        j += 1;
        continue;
      }
      const family = familyOf(entry);
      if (!family) return undefined;
      ipsetEntries.push({ set, entry, family });
    }
    if (j !== shared.ipsetEntries.length) return undefined;
    return { virtualServers, ipsetEntries };
  }

  private index(held: Held, sign: 1 | -1): void {
    const svc = held.entry;
    const mark = (set: Set<string>, on: boolean) => {
      if (on && sign > 0) set.add(svc.key);
      else if (on) set.delete(svc.key);
    };
    const nodePorts = svc.nodePorts && svc.ports.some((p) => p.nodePort !== 0);
    mark(this.withNodePorts, nodePorts);
    mark(this.templated, nodePorts && held.nodePorts !== undefined);
    mark(this.untemplated, nodePorts && held.nodePorts === undefined);
    mark(this.templateEntries, (held.nodePorts?.ipsetEntries.length ?? 0) > 0);
    mark(this.localPolicy, svc.internalTrafficPolicy === 'Local' || svc.externalTrafficPolicy === 'Local');
    mark(this.withSourceRanges, svc.loadBalancerIngress.length > 0 && svc.loadBalancerSourceRanges.length > 0);
    mark(
      this.zoneHinted,
      svc.ports.some((p) => p.endpoints.some((e) => e.hintZones.length > 0)),
    );
    mark(
      this.nodeHinted,
      svc.ports.some((p) => p.endpoints.some((e) => (e.hintNodes?.length ?? 0) > 0)),
    );
    held.nodePorts?.virtualServers.forEach(({ vs, family }, index) => {
      const g = groupKey(family, vs);
      let group = this.groups.get(g);
      if (!group) {
        const slot = this.freeSlots.pop() ?? this.slots++;
        group = {
          family,
          protocol: vs.protocol,
          port: vs.port,
          members: [],
          winner: undefined,
          copies: undefined,
          slot,
          stamp: 0,
        };
        this.groups.set(g, group);
      }
      if (sign > 0) group.members.push({ vs, service: svc.key, index });
      else {
        const i = group.members.findIndex((m) => m.vs === vs);
        if (i >= 0) group.members.splice(i, 1);
      }
      this.templateFamilyCount.set(family, (this.templateFamilyCount.get(family) ?? 0) + sign);
      this.touchedGroups.add(g);
    });
    const by = (m: Map<string, Set<string>>, k: string) => {
      let s = m.get(k);
      if (sign > 0) {
        if (!s) m.set(k, (s = new Set()));
        s.add(svc.key);
      } else if (s) {
        s.delete(svc.key);
        if (s.size === 0) m.delete(k);
      }
    };
    // externalIPs and load balancer IPs: one that is any node's address is left out (externalIP)
    // or left unbound (ingress IP) on every node alike; updateSteps renders the service again when
    // one comes or goes
    for (const ip of svc.externalIPs) by(this.byExternalIP, ip);
    for (const ip of svc.loadBalancerIngress) by(this.byExternalIP, ip);
    for (const p of svc.ports)
      for (const e of p.endpoints)
        if (e.nodeName !== '') {
          by(this.byEndpointNode, e.nodeName);
          // one of its local services moved: a walk kept for it holds this Held, walked again
          const memo = this.nodeMemos.get(e.nodeName);
          if (memo?.loopBack && memo.loopBack.stale.add(svc.key).size > STALE_MAX) memo.loopBack = undefined;
        }
  }

  /** Adds (+1) or removes (-1) a shared contribution from the refcounted merge of shared items. */
  private apply(service: string, c: ServiceContribution, sign: 1 | -1): void {
    c.virtualServers.forEach((vs, index) => {
      const fam = ipFamily(vs.address);
      this.setFamilyCount(fam, (this.familyCount.get(fam) ?? 0) + sign);
      const k = virtualServerKey(vs);
      const had = this.candidates.get(k);
      const list = had ?? [];
      if (sign > 0) list.push({ vs, service, index });
      else {
        const i = list.findIndex((x) => x.vs === vs);
        if (i >= 0) list.splice(i, 1);
      }
      if (list.length > 0) this.candidates.set(k, list);
      else this.candidates.delete(k);
      const claims = (this.claimedAddresses.get(vs.address) ?? 0) + (list.length > 0 ? 1 : 0) - (had ? 1 : 0);
      if (claims > 0) this.claimedAddresses.set(vs.address, claims);
      else this.claimedAddresses.delete(vs.address);
      this.touched.add(k);
    });
    for (const a of c.boundAddresses) {
      const n = (this.bound.get(a) ?? 0) + sign;
      if (n > 0) this.bound.set(a, n);
      else this.bound.delete(a);
      if (n === 1 && sign > 0) this.tree.set(...nodeStateItem.boundAddress(a));
      if (n === 0) this.tree.set(`addr:${a}`, undefined);
    }
    for (const [set, e] of c.ipsetEntries) {
      const counts = this.entryCount.get(set);
      if (!counts) throw new Error(`ExpectedNodeStateHashes: unknown ipset ${set}`);
      const n = (counts.get(e) ?? 0) + sign;
      if (n > 0) counts.set(e, n);
      else counts.delete(e);
      if (!this.hasFamily(SET_FAMILY.get(set)!)) continue;
      const [key, value] = nodeStateItem.ipsetEntry(set, e);
      if (n === 1 && sign > 0) this.tree.set(key, value);
      if (n === 0) this.tree.set(key, undefined);
    }
  }

  /**
   * Resolves the winner of one touched VIP:port (claimOrder, as mergeContributions); returns the
   * real servers of the winner hashed into the tree (0: none hashed).
   */
  private settle(k: string): number {
    const list = this.candidates.get(k) ?? [];
    const best = pick(list);
    if (best === 'ambiguous') this.ambiguous.add(k);
    else this.ambiguous.delete(k);
    const win = best === 'ambiguous' ? list[0]!.vs : best?.vs;
    const prev = this.winners.get(k);
    if (win === prev) return 0;
    if (win) {
      this.winners.set(k, win);
      this.tree.set(...vsItem(win));
      return win.realServers.length;
    }
    this.winners.delete(k);
    this.tree.set(`vs:${k}`, undefined);
    return 0;
  }

  /**
   * Decides one touched NodePort group's claim (pick over its templates) and how its winner's
   * copies hash; returns the real servers of the winner whose text was made (0: none made).
   */
  private settleGroup(g: string): number {
    const group = this.groups.get(g);
    if (!group) return 0;
    if (group.members.length === 0) {
      this.groups.delete(g);
      this.freeSlots.push(group.slot);
      return 0;
    }
    const best = pick(group.members);
    if (best === group.winner) return 0;
    group.winner = best;
    const decided = best && best !== 'ambiguous' ? best : undefined;
    group.copies = decided && virtualServerCopies(decided.vs);
    group.stamp = ++this.lastStamp;
    return decided?.vs.realServers.length ?? 0;
  }

  /** This version's DecidedGroups of `family`, made by the first hash that asks (updateSteps drops them). */
  private decidedGroupsOf(family: IpFamily): DecidedGroups {
    let split = this.decidedGroups.get(family);
    if (split) return split;
    const groups: NodePortGroup[] = [];
    const undecided: [string, NodePortGroup][] = [];
    for (const [g, group] of this.groups) {
      if (group.family !== family) continue;
      if (group.copies !== undefined) groups.push(group);
      else undecided.push([g, group]);
    }
    split = { groups, stamps: Float64Array.from(groups, (g) => g.stamp), undecided };
    this.decidedGroups.set(family, split);
    return split;
  }

  /** Per family, whether its KUBE-LOOP-BACK set exists and whether the shared items have members of it (LoopBackKept). */
  private loopBackSets(): number {
    return (
      (this.hasFamily('IPv4') ? 1 : 0) |
      (this.hasFamily('IPv6') ? 2 : 0) |
      (this.entryCount.get(LOOP_BACK_V4)!.size === 0 ? 4 : 0) |
      (this.entryCount.get(LOOP_BACK_V6)!.size === 0 ? 8 : 0)
    );
  }

  private hasFamily(f: IpFamily): boolean {
    return (this.familyCount.get(f) ?? 0) > 0;
  }

  /** Keeps a family's count; when its sets appear or vanish, so do their items. */
  private setFamilyCount(f: IpFamily, n: number): void {
    const before = this.hasFamily(f);
    this.familyCount.set(f, n);
    const after = n > 0;
    if (before === after) return;
    for (const s of SETS_OF(f)) {
      const [key, value] = nodeStateItem.ipset(s);
      this.tree.set(key, after ? value : undefined);
      for (const e of this.entryCount.get(s.name)!.keys()) {
        const [ek, ev] = nodeStateItem.ipsetEntry(s.name, e);
        this.tree.set(ek, after ? ev : undefined);
      }
    }
  }
}

const NONE: ReadonlySet<string> = new Set();

/** A NodePort group's key: its copies' virtual server key less the address. */
const groupKey = (family: IpFamily, vs: VirtualServer) => `${family}|${vs.protocol}|${vs.port}`;

/**
 * The winning claim (claimOrder; NodeStateRenderer's tie-breaks), undefined for none, or
 * 'ambiguous' when two claims rank equal by claimOrder with different content: the full merge
 * would pick one by iteration order, which is not ours to guess.
 */
function pick(list: readonly Candidate[]): Candidate | undefined | 'ambiguous' {
  let best: Candidate | undefined;
  for (const x of list) {
    if (!best) {
      best = x;
      continue;
    }
    const c = claimOrder(x.vs, best.vs);
    if (c === 0 && x.vs !== best.vs && !sameJson(x.vs, best.vs)) return 'ambiguous';
    if (c < 0 || (c === 0 && (byCodeUnit(x.service, best.service) || x.index - best.index) < 0)) best = x;
  }
  return best;
}

/** Deep equality of plain JSON values (same canonical JSON, hence the same item hash). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false;
    if (!sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/** The first index of `sorted` (ascending) holding a value ≥ `v`. */
function lowerBound(sorted: Float64Array, v: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
