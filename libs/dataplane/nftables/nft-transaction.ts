import type { NftObjects } from './nft-objects.ts';

/**
 * A typed nftables transaction, knftables style: a queue of (verb, object) operations on one
 * table. Queuing never throws: the first invalid operation is stored in `error` (and every
 * later one ignored), and a runner refuses to run a transaction that carries one, so the
 * planning code stays straight-line. Runners turn the queue into one atomic kernel change:
 * `nft -f` text (NftCliRunner) or one nf_tables netlink batch (NftNetlinkRunner).
 */

export type NftVerb = 'add' | 'create' | 'flush' | 'delete';

/** The objects of our table; rules and set bodies are nft syntax (the subset we render). */
export type NftObject =
  | { readonly kind: 'table' }
  /** `hook`: base chain spec, e.g. `type nat hook prerouting priority dstnat; policy accept;`. */
  | { readonly kind: 'chain'; readonly name: string; readonly hook?: string }
  | { readonly kind: 'rule'; readonly chain: string; readonly rule: string }
  /** `decl`: set body, e.g. `type ipv4_addr; flags dynamic,timeout; timeout 60s;`. */
  | { readonly kind: 'set'; readonly name: string; readonly decl: string }
  /**
   * `decl`: map body, e.g. `type ipv4_addr . inet_proto . inet_service : verdict;` or
   * `typeof numgen random mod 65536 : ip daddr . tcp dport; flags interval;`.
   */
  | { readonly kind: 'map'; readonly name: string; readonly decl: string }
  /**
   * An element of a map or set (`map` names either): `key` like `10.0.0.1 . tcp . 80` or
   * `0-21845`, `value` a verdict or data (`10.1.0.1 . 8080`); absent for delete and for set elements.
   */
  | { readonly kind: 'element'; readonly map: string; readonly key: string; readonly value?: string };

export interface NftOp {
  readonly verb: NftVerb;
  readonly object: NftObject;
}

// nft identifiers as our renderer produces them (nft-names.ts); anything else is a bug upstream.
const NAME = /^[A-Za-z][A-Za-z0-9/_.-]*$/;
const MAX_NAME = 256;

let lastGoodMap = '';

function invalid(op: NftOp): string | undefined {
  const o = op.object;
  const badName = (n: string) => n.length > MAX_NAME || !NAME.test(n);
  switch (o.kind) {
    case 'table':
      return op.verb === 'add' || op.verb === 'delete' || op.verb === 'flush' ? undefined : `cannot ${op.verb} a table`;
    case 'chain':
      if (badName(o.name)) return `invalid chain name ${JSON.stringify(o.name)}`;
      if (o.hook !== undefined && op.verb !== 'add' && op.verb !== 'create') return `${op.verb} chain takes no hook`;
      return undefined;
    case 'rule':
      if (badName(o.chain)) return `invalid chain name ${JSON.stringify(o.chain)}`;
      if (op.verb !== 'add') return `cannot ${op.verb} a rule (rules are replaced by flushing their chain)`;
      return o.rule.trim() === '' || /[\n;]/.test(o.rule) ? `invalid rule ${JSON.stringify(o.rule)}` : undefined;
    case 'set':
    case 'map':
      if (badName(o.name)) return `invalid ${o.kind} name ${JSON.stringify(o.name)}`;
      if ((op.verb === 'add' || op.verb === 'create') && o.decl.trim() === '') {
        return `${o.kind} ${o.name} has no type`;
      }
      return undefined;
    case 'element':
      if (o.map !== lastGoodMap) {
        if (badName(o.map)) return `invalid map name ${JSON.stringify(o.map)}`;
        lastGoodMap = o.map; // element ops come in runs on one map: check its name once per run
      }
      if (op.verb === 'flush') return 'cannot flush an element';
      if (o.key.trim() === '' || /[{},;\n]/.test(o.key)) return `invalid element key ${JSON.stringify(o.key)}`;
      if (op.verb === 'delete') return o.value === undefined ? undefined : 'delete element takes no value';
      return o.value !== undefined && (o.value.trim() === '' || /[{},;\n]/.test(o.value))
        ? `element ${o.key} of ${o.map} has an invalid value ${JSON.stringify(o.value)}`
        : undefined;
  }
}

export class NftTransaction {
  private readonly queued: NftOp[] = [];
  private firstError: Error | undefined;
  /** Kernel objects this transaction writes, as counted by the planner that built it. */
  writes = 0;
  /** Chains whose rules this transaction (re)fills. */
  readonly touchedChains: string[] = [];
  /** Queues the deferred operations (see `deferred`) on first use of the queue. */
  private fill: ((tx: NftTransaction) => void) | undefined;
  private deferredSize = 0;
  /**
   * Set for a whole-table load (planFullLoad): the objects it loads. Its operations are queued
   * only when something reads them (the `nft` runner's script, an audit's text): the netlink
   * runner encodes the load straight from these objects (emitFullLoad, the same order), so a
   * 10k-service load does not build and keep ~250k operation objects until it is sent.
   */
  fullLoad: NftObjects | undefined;

  constructor(
    readonly family: string,
    readonly table: string,
  ) {}

  /** A transaction whose `size` operations `fill` queues on first use of the queue. */
  static deferred(family: string, table: string, size: number, fill: (tx: NftTransaction) => void): NftTransaction {
    const tx = new NftTransaction(family, table);
    tx.fill = fill;
    tx.deferredSize = size;
    return tx;
  }

  private materialize(): void {
    const fill = this.fill;
    if (!fill) return;
    this.fill = undefined;
    fill(this);
  }

  get ops(): readonly NftOp[] {
    this.materialize();
    return this.queued;
  }

  /** The first invalid operation queued, if any; a runner refuses the whole transaction. */
  get error(): Error | undefined {
    this.materialize();
    return this.firstError;
  }

  get size(): number {
    return this.fill ? this.deferredSize : this.queued.length;
  }

  add(object: NftObject): this {
    return this.queue('add', object);
  }
  /** Like add, but fails in the kernel when the object exists. */
  create(object: NftObject): this {
    return this.queue('create', object);
  }
  flush(object: NftObject): this {
    return this.queue('flush', object);
  }
  delete(object: NftObject): this {
    return this.queue('delete', object);
  }

  private queue(verb: NftVerb, object: NftObject): this {
    if (this.fill) {
      this.materialize();
      this.fullLoad = undefined; // more than the load now: runners must use the queue
    }
    if (this.firstError) return this;
    const op = { verb, object };
    const why = invalid(op);
    if (why) this.firstError = new Error(`nft transaction on ${this.family} ${this.table}: ${why}`);
    else this.queued.push(op);
    return this;
  }

  /** The transaction as one `nft -f` script (empty for an empty transaction). */
  toScript(): string {
    this.materialize();
    const t = `${this.family} ${this.table}`;
    const lines: string[] = [];
    let group: { verb: NftVerb; map: string; items: string[] } | undefined;
    const endGroup = () => {
      if (group) lines.push(`${group.verb} element ${t} ${group.map} { ${group.items.join(', ')} }`);
      group = undefined;
    };
    for (const { verb, object: o } of this.queued) {
      if (o.kind === 'element') {
        // Consecutive element ops on one map share a line: nft parses one big line far faster.
        const item = o.value === undefined ? o.key : `${o.key} : ${o.value}`;
        if (group && group.verb === verb && group.map === o.map) {
          group.items.push(item);
          continue;
        }
        endGroup();
        group = { verb, map: o.map, items: [item] };
        continue;
      }
      endGroup();
      lines.push(opLine(t, verb, o));
    }
    endGroup();
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  }

  /** One `nft -f` line per operation (no element grouping): for reading and tests. */
  describe(): string[] {
    return this.ops.map((_, i) => this.describeOp(i));
  }

  /** The `nft -f` line of operation `i` (built on demand: a 10k-service load has ~250k ops). */
  describeOp(i: number): string {
    return describeOp(this.family, this.table, this.ops[i]!);
  }
}

/** The `nft -f` line of one operation on table `family table`. */
export function describeOp(family: string, table: string, { verb, object: o }: NftOp): string {
  const t = `${family} ${table}`;
  return o.kind === 'element'
    ? `${verb} element ${t} ${o.map} { ${o.value === undefined ? o.key : `${o.key} : ${o.value}`} }`
    : opLine(t, verb, o);
}

/** Why `name` is not a chain, set or map name our renderer produces (undefined: it is one). */
export function invalidObjectName(name: string): string | undefined {
  return name.length > MAX_NAME || !NAME.test(name) ? `invalid object name ${JSON.stringify(name)}` : undefined;
}

function opLine(t: string, verb: NftVerb, o: Exclude<NftObject, { kind: 'element' }>): string {
  switch (o.kind) {
    case 'table':
      return `${verb} table ${t}`;
    case 'chain':
      return `${verb} chain ${t} ${o.name}${o.hook ? ` { ${o.hook} }` : ''}`;
    case 'rule':
      return `${verb} rule ${t} ${o.chain} ${o.rule}`;
    case 'set':
      return verb === 'add' || verb === 'create'
        ? `${verb} set ${t} ${o.name} { ${o.decl} }`
        : `${verb} set ${t} ${o.name}`;
    case 'map':
      return verb === 'add' || verb === 'create'
        ? `${verb} map ${t} ${o.name} { ${o.decl} }`
        : `${verb} map ${t} ${o.name}`;
  }
}
