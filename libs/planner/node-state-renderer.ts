import {
  byCodeUnit,
  canonicalJson,
  ipFamily,
  virtualServerKey,
  type DataDelta,
  type IpFamily,
  type IpsetState,
  type NodeProxySettings,
  type NodeState,
  type ProxyConfig,
  type ServiceEntry,
  type VirtualServer,
} from '../model/index.ts';
import type { ClusterDataSource } from './cluster-data-index.ts';
import { IPSET_TABLE, ipsetName } from './ipset-names.ts';
import { NodeStateHashTree, nodeStateItem } from './node-state-hash.ts';
import {
  claimOrder,
  mergeContributions,
  neutralContext,
  renderContext,
  renderServiceForNode,
  type RenderContext,
  type ServiceContribution,
} from './render-node-state.ts';

/** Cluster data as the renderer reads it: by key, since a delta names the services it touched. */
export interface KeyedClusterDataSource extends ClusterDataSource {
  service(key: string): ServiceEntry | undefined;
}

export interface NodeStateRendererOptions {
  /** Called once per service rendered (tests count re-renders with it). */
  readonly onRenderService?: (key: string) => void;
}

/** How a rendered state differs from the one before it (NodeStateRenderer.changeOf). */
export interface RenderedChange {
  readonly previous: NodeState;
  /** Added or replaced services: the new state's objects. */
  readonly virtualServers: readonly VirtualServer[];
  /** Keys (virtualServerKey) of the services the previous state had and this one has not. */
  readonly removedVirtualServers: readonly string[];
}

interface Candidate {
  readonly vs: VirtualServer;
  readonly service: string;
  /** Position in its service's contribution: breaks ties within one service as the merge does. */
  readonly index: number;
}

interface SetInfo {
  readonly name: string;
  readonly type: IpsetState['type'];
  readonly family: IpsetState['family'];
  readonly ipFamily: IpFamily;
}

const FAMILIES: readonly IpFamily[] = ['IPv4', 'IPv6'];
const SETS: readonly SetInfo[] = FAMILIES.flatMap((f) =>
  IPSET_TABLE.map(
    ([base, type]): SetInfo => ({
      name: ipsetName(base, f),
      type,
      ipFamily: f,
      family: type === 'bitmap:port' ? undefined : f === 'IPv4' ? 'inet' : 'inet6',
    }),
  ),
);
const SET_BY_NAME = new Map(SETS.map((s) => [s.name, s]));

/**
 * One node's rendered state kept up to date by deltas: `renderNodeState` + `nodeStateHash` in
 * O(change) instead of O(cluster). It keeps each service's contribution and the merge of all of
 * them with refcounts (two services may claim one VIP:port, where claimOrder picks the winner as
 * in mergeContributions; bound addresses and ipset entries are shared sets), the hash tree of the
 * merged items, and sorted arrays it splices, so `state()` is a cheap copy and `hash()` rehashes
 * only touched buckets. Pure: no I/O. Equal by construction to the full functions (property test
 * in test/libs/planner/node-state-renderer.test.ts).
 */
export class NodeStateRenderer {
  private ctx: RenderContext | undefined;
  private nodeFactsJson = '';
  private readonly settings: NodeProxySettings;
  private readonly contributions = new Map<string, ServiceContribution>();
  private readonly candidates = new Map<string, Candidate[]>();
  private readonly winners = new Map<string, VirtualServer>();
  private readonly vsKeys: string[] = [];
  private readonly vsList: VirtualServer[] = [];
  private readonly bound = new Map<string, number>();
  private readonly boundList: string[] = [];
  /** Every family with at least one virtual server (IPv4 always counts): its sets exist. */
  private readonly familyCount = new Map<IpFamily, number>();
  private readonly entryCount = new Map<string, Map<string, number>>();
  private readonly entryList = new Map<string, string[]>();
  private tree = new NodeStateHashTree();
  private readonly touchedVs = new Set<string>();
  /**
   * Keys whose winner came, went or was replaced since the last state() that rebuilt the list,
   * each with its winner then (undefined: none), so a service that came and went in between is
   * no change.
   */
  private readonly changedVs = new Map<string, VirtualServer | undefined>();
  /** How the cached state differs from the one state() returned before it (undefined: unknown). */
  private cachedChange: RenderedChange | undefined;
  private readonly dirtySets = new Set<string>();
  private vsDirty = true;
  private boundDirty = true;
  private setsDirty = true;
  private cached: NodeState | undefined;

  constructor(
    readonly nodeName: string,
    readonly config: ProxyConfig,
    private readonly options: NodeStateRendererOptions = {},
  ) {
    // the proxy knobs exactly as the full render sets them (they depend on config alone)
    this.settings = mergeContributions(neutralContext(config), []).settings;
    this.clear();
  }

  /** Renders every service again (first use, checkpoint jumps, this node's facts changed). */
  reset(data: KeyedClusterDataSource): void {
    this.clear();
    this.ctx = renderContext(data, this.nodeName, this.config);
    this.nodeFactsJson = factsJson(data, this.nodeName);
    for (const svc of data.services()) this.add(svc);
    this.settle();
  }

  /**
   * Moves to `data`, which already includes `delta`. Only the services the delta names are
   * rendered again (their entries are read from `data`, so a delta merged from several versions
   * works); a change to this node's own facts re-renders everything. Other nodes' facts reach
   * this node's state only through their addresses, which no externalIP may take (probe6 P7):
   * when the set of node addresses changes, the services listing an address that came or went
   * are rendered again too.
   */
  update(data: KeyedClusterDataSource, delta: DataDelta): void {
    if (!this.ctx) return this.reset(data);
    const touchesNode =
      delta.removeNodes.includes(this.nodeName) || delta.upsertNodes.some((n) => n.name === this.nodeName);
    if (touchesNode && factsJson(data, this.nodeName) !== this.nodeFactsJson) return this.reset(data);
    const keys = new Set<string>(delta.removeServices);
    for (const s of delta.upsertServices) keys.add(s.key);
    const addresses = data.nodeAddressOwners();
    if (addresses !== this.ctx.nodeAddresses) {
      const moved = changedKeys(this.ctx.nodeAddresses, addresses);
      // a scan of every service, only when a node's addresses changed (a node joined or left):
      // an externalIP or ingress IP that is a node's address renders otherwise (probe6 P7, P15)
      if (moved.size > 0)
        for (const svc of data.services())
          if (listsAny(svc.externalIPs, moved) || listsAny(svc.loadBalancerIngress, moved)) keys.add(svc.key);
      this.ctx = { ...this.ctx, nodeAddresses: addresses };
    }
    for (const k of keys) {
      // the new contribution goes in before the old one comes out, so that members both share
      // (most of a service, for an endpoint change) keep a count above zero and stay untouched
      const old = this.contributions.get(k);
      const svc = data.service(k);
      if (svc) this.add(svc);
      else this.contributions.delete(k);
      if (old) this.apply(k, old, -1);
    }
    this.settle();
  }

  /** The node state hash (equal to nodeStateHash(this.state())), in O(touched buckets). */
  hash(): string {
    return this.tree.root();
  }

  /** The canonical NodeState; rebuilt only after a change, reusing every unchanged part. */
  state(): NodeState {
    if (this.cached && !this.vsDirty && !this.boundDirty && !this.setsDirty) return this.cached;
    const prev = this.cached;
    this.cachedChange = prev && this.virtualServerChange(prev);
    this.changedVs.clear();
    let ipsets = prev?.ipsets;
    if (!ipsets || this.setsDirty) {
      const old = new Map((prev?.ipsets ?? []).map((s) => [s.name, s]));
      ipsets = SETS.filter((s) => this.hasFamily(s.ipFamily))
        .map((s) => (!this.dirtySets.has(s.name) && old.get(s.name)) || ipsetState(s, this.entryList.get(s.name)!))
        .sort((a, b) => byCodeUnit(a.name, b.name));
    }
    this.cached = {
      node: this.nodeName,
      virtualServers: !prev || this.vsDirty ? this.vsList.slice() : prev.virtualServers,
      boundAddresses: !prev || this.boundDirty ? this.boundList.slice() : prev.boundAddresses,
      ipsets,
      settings: this.settings,
    };
    this.vsDirty = this.boundDirty = this.setsDirty = false;
    this.dirtySets.clear();
    return this.cached;
  }

  /**
   * How `state` (what state() returned last) differs in its virtual servers from the state that
   * state() returned before it: the services added or replaced and the keys removed; every other
   * service is the same object in both. Undefined for any other object, and for the first state
   * after a reset (everything was rendered again). In O(change). The shape the Dataplane's
   * `apply(state, change)` takes (NodeStateChange in libs/dataplane), so a dataplane need not
   * compare every service to find the change.
   */
  changeOf(state: NodeState): RenderedChange | undefined {
    return state === this.cached ? this.cachedChange : undefined;
  }

  private virtualServerChange(previous: NodeState): RenderedChange {
    const virtualServers: VirtualServer[] = [];
    const removedVirtualServers: string[] = [];
    for (const [k, was] of this.changedVs) {
      const vs = this.winners.get(k);
      if (vs === was) continue;
      if (vs) virtualServers.push(vs);
      else removedVirtualServers.push(k);
    }
    return { previous, virtualServers, removedVirtualServers };
  }

  private clear(): void {
    for (const m of [
      this.contributions,
      this.candidates,
      this.winners,
      this.bound,
      this.familyCount,
      this.entryCount,
      this.entryList,
    ])
      m.clear();
    this.vsKeys.length = this.vsList.length = this.boundList.length = 0;
    for (const s of SETS) {
      this.entryCount.set(s.name, new Map());
      this.entryList.set(s.name, []);
    }
    this.familyCount.set('IPv4', 1); // IPv4 sets always exist
    this.touchedVs.clear();
    this.changedVs.clear();
    this.cachedChange = undefined;
    this.dirtySets.clear();
    this.tree = new NodeStateHashTree();
    this.setItem(...nodeStateItem.node(this.nodeName));
    this.setItem(...nodeStateItem.settings(this.settings));
    for (const s of SETS) if (s.ipFamily === 'IPv4') this.setItem(...nodeStateItem.ipset(s));
    this.cached = undefined;
    this.vsDirty = this.boundDirty = this.setsDirty = true;
  }

  private setItem(key: string, value: string | undefined): void {
    this.tree.set(key, value);
  }

  private add(svc: ServiceEntry): void {
    this.options.onRenderService?.(svc.key);
    const c = renderServiceForNode(svc, this.ctx!);
    this.contributions.set(svc.key, c);
    this.apply(svc.key, c, 1);
  }

  /** Adds (+1) or removes (-1) one service's contribution from the refcounted merge. */
  private apply(service: string, c: ServiceContribution, sign: 1 | -1): void {
    c.virtualServers.forEach((vs, index) => {
      const k = virtualServerKey(vs);
      const fam = ipFamily(vs.address);
      this.setFamilyCount(fam, (this.familyCount.get(fam) ?? 0) + sign);
      const list = this.candidates.get(k) ?? [];
      if (sign > 0) list.push({ vs, service, index });
      else {
        const i = list.findIndex((x) => x.vs === vs); // by identity: the service's new candidates may be in too
        if (i >= 0) list.splice(i, 1);
      }
      if (list.length > 0) this.candidates.set(k, list);
      else this.candidates.delete(k);
      this.touchedVs.add(k);
    });
    for (const a of c.boundAddresses) {
      const n = (this.bound.get(a) ?? 0) + sign;
      if (n > 0) this.bound.set(a, n);
      else this.bound.delete(a);
      if (n === 1 && sign > 0) {
        insertSorted(this.boundList, a);
        this.setItem(...nodeStateItem.boundAddress(a));
        this.boundDirty = true;
      }
      if (n === 0) {
        removeSorted(this.boundList, a);
        this.setItem(nodeStateItem.boundAddress(a)[0], undefined);
        this.boundDirty = true;
      }
    }
    for (const [set, entry] of c.ipsetEntries) {
      const counts = this.entryCount.get(set);
      if (!counts) throw new Error(`NodeStateRenderer: unknown ipset ${set}`);
      const n = (counts.get(entry) ?? 0) + sign;
      if (n > 0) counts.set(entry, n);
      else counts.delete(entry);
      const list = this.entryList.get(set)!;
      const present = this.hasFamily(SET_BY_NAME.get(set)!.ipFamily);
      if (n === 1 && sign > 0) {
        insertSorted(list, entry);
        if (present) {
          this.setItem(...nodeStateItem.ipsetEntry(set, entry));
          this.markSet(set);
        }
      }
      if (n === 0) {
        removeSorted(list, entry);
        if (present) {
          this.setItem(nodeStateItem.ipsetEntry(set, entry)[0], undefined);
          this.markSet(set);
        }
      }
    }
  }

  /** Resolves the winner of every touched VIP:port (claimOrder, as mergeContributions). */
  private settle(): void {
    for (const k of this.touchedVs) {
      const list = this.candidates.get(k);
      const prev = this.winners.get(k);
      if (!list) {
        if (!prev) continue;
        this.winners.delete(k);
        const i = removeSorted(this.vsKeys, k);
        this.vsList.splice(i, 1);
        this.setItem(`vs:${k}`, undefined);
        this.vsDirty = true;
        if (!this.changedVs.has(k)) this.changedVs.set(k, prev);
        continue;
      }
      let best = list[0]!;
      for (const x of list) if (better(x, best)) best = x;
      if (best.vs === prev) continue;
      this.winners.set(k, best.vs);
      if (prev) this.vsList[indexOfSorted(this.vsKeys, k)] = best.vs;
      else this.vsList.splice(insertSorted(this.vsKeys, k), 0, best.vs);
      this.setItem(...nodeStateItem.virtualServer(best.vs));
      this.vsDirty = true;
      if (!this.changedVs.has(k)) this.changedVs.set(k, prev);
    }
    this.touchedVs.clear();
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
    for (const s of SETS) {
      if (s.ipFamily !== f) continue;
      const [key, value] = nodeStateItem.ipset(s);
      this.setItem(key, after ? value : undefined);
      for (const e of this.entryList.get(s.name)!) {
        const [ek, ev] = nodeStateItem.ipsetEntry(s.name, e);
        this.setItem(ek, after ? ev : undefined);
      }
      this.markSet(s.name);
    }
  }

  private markSet(name: string): void {
    this.dirtySets.add(name);
    this.setsDirty = true;
  }
}

function better(a: Candidate, b: Candidate): boolean {
  const c = claimOrder(a.vs, b.vs) || byCodeUnit(a.service, b.service);
  return c < 0 || (c === 0 && a.index < b.index);
}

function listsAny(list: readonly string[], set: ReadonlySet<string>): boolean {
  return list.some((a) => set.has(a));
}

/** The keys in one map and not the other. */
export function changedKeys(a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): Set<string> {
  const out = new Set<string>();
  for (const k of a.keys()) if (!b.has(k)) out.add(k);
  for (const k of b.keys()) if (!a.has(k)) out.add(k);
  return out;
}

function factsJson(data: ClusterDataSource, node: string): string {
  const f = data.node(node);
  return f ? canonicalJson(f) : '';
}

function ipsetState(s: SetInfo, entries: readonly string[]): IpsetState {
  return { name: s.name, type: s.type, ...(s.family ? { family: s.family } : {}), entries: entries.slice() };
}

/** Index of the first element >= v (code-unit order). */
function lowerBound(xs: readonly string[], v: string): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(xs: string[], v: string): number {
  const i = lowerBound(xs, v);
  xs.splice(i, 0, v);
  return i;
}

function removeSorted(xs: string[], v: string): number {
  const i = indexOfSorted(xs, v);
  xs.splice(i, 1);
  return i;
}

function indexOfSorted(xs: readonly string[], v: string): number {
  const i = lowerBound(xs, v);
  if (xs[i] !== v) throw new Error(`NodeStateRenderer: ${v} missing from a sorted list (bug)`);
  return i;
}
