// A recording, in-memory NftRunner for tests of nftables logic that need no netns (knftables'
// fake.go in spirit). It keeps the last transaction, and dumps its tables as `nft list table`
// style text.
//
// Like the kernel: a transaction is atomic (it runs on a copy that replaces the state only when
// every op succeeded), and it fails where nf_tables fails on structure: a rule, element or jump
// naming a chain or set that does not exist (ENOENT), deleting or flushing what does not exist
// (ENOENT), `create` of an existing object (EEXIST), an element key re-added with another value
// (EEXIST), deleting a chain or set something still references (EBUSY).
// Weaker than the kernel (on purpose, and never the other way round): rule texts are stored
// verbatim, not parsed or normalised, so a rule nft would reject is accepted here and the dump
// prints rules as written (`0x4000`, where nft prints `0x00004000`); dynamic sets never learn
// entries; hooks are not validated. Tests that need those run against the kernel (test/netns).
import { NftError, type NftRunner } from '../../libs/dataplane/index.ts';
import type { NftObject, NftOp, NftTransaction } from '../../libs/dataplane/index.ts';
import type { NftReadBack } from '../../libs/dataplane/index.ts';
import { summarizeRules } from '../../libs/dataplane/index.ts';
import { checkSkeleton, SKELETON_CHAINS, SKELETON_MAPS, SKELETON_SETS } from '../../libs/dataplane/index.ts';

interface FakeChain {
  hook?: string;
  rules: string[];
}
interface FakeTable {
  handle: number;
  chains: Map<string, FakeChain>;
  sets: Map<string, { decl: string; elements: Map<string, string> }>;
  maps: Map<string, { decl: string; elements: Map<string, string> }>;
}

const refsOf = (text: string): { chains: string[]; sets: string[] } => ({
  chains: [...text.matchAll(/\b(?:goto|jump) ([^\s,}]+)/g)].map((m) => m[1]!),
  sets: [...text.matchAll(/@([^\s,}]+)/g)].map((m) => m[1]!),
});

class OpError extends Error {
  constructor(
    readonly errno: 'ENOENT' | 'EEXIST' | 'EBUSY',
    what: string,
  ) {
    const text = { ENOENT: 'No such file or directory', EEXIST: 'File exists', EBUSY: 'Device or resource busy' }[
      errno
    ];
    super(`Error: Could not process rule: ${text}\n${what}`);
  }
}

function cloneTable(t: FakeTable): FakeTable {
  return {
    handle: t.handle,
    chains: new Map([...t.chains].map(([n, c]) => [n, { ...c, rules: [...c.rules] }])),
    sets: new Map([...t.sets].map(([n, m]) => [n, { decl: m.decl, elements: new Map(m.elements) }])),
    maps: new Map([...t.maps].map(([n, m]) => [n, { decl: m.decl, elements: new Map(m.elements) }])),
  };
}

export class FakeNftRunner implements NftRunner {
  readonly backend = 'fake';
  /** The last transaction passed to run (also when it failed), like knftables' fake. */
  lastTransaction: NftTransaction | undefined;
  /** Transactions that ran to completion. */
  committed = 0;
  private tables = new Map<string, FakeTable>();
  private nextHandle = 1;

  async run(tx: NftTransaction): Promise<void> {
    this.lastTransaction = tx;
    if (tx.error) throw tx.error;
    const key = `${tx.family} ${tx.table}`;
    const next = new Map(this.tables);
    const original = next.get(key);
    if (original) next.set(key, cloneTable(original));
    let handle = this.nextHandle;
    for (const op of tx.ops) {
      try {
        handle = this.apply(next, key, op, handle);
      } catch (e) {
        if (!(e instanceof OpError)) throw e;
        throw new NftError(['-f', '-'], 1, `${e.message}\n${describeOp(tx, op)}`);
      }
    }
    this.tables = next; // atomic, like one nft -f / one netlink batch
    this.nextHandle = handle;
    this.committed++;
  }

  async listTable(family: string, table: string): Promise<NftReadBack | undefined> {
    const t = this.tables.get(`${family} ${table}`);
    if (!t) return undefined;
    const skeleton = new Set(SKELETON_CHAINS.map((c) => c.name));
    const chains = new Map<string, string>();
    for (const [n, c] of t.chains) if (!skeleton.has(n)) chains.set(n, summarizeRules(c.rules));
    const skeletonCheck = checkSkeleton(
      (c) => t.chains.get(c)?.rules.length,
      (s) => t.maps.has(s) || t.sets.has(s),
    );
    // As the kernel read-backs: per-group set and map names; elements of all but learned sets.
    const skeletonSets = new Set([...SKELETON_MAPS, ...SKELETON_SETS].map((x) => x.name));
    const learned = (n: string) => n.startsWith('affinity-');
    const all = [...t.sets, ...t.maps];
    return {
      tableHandle: t.handle,
      inventory: {
        chains,
        sets: new Set(all.map(([n]) => n).filter((n) => !skeletonSets.has(n))),
        elements: new Map(all.filter(([n]) => !learned(n)).map(([n, m]) => [n, new Map(m.elements)])),
      },
      skeletonProblems: skeletonCheck.problems,
      skeletonDamage: skeletonCheck.damage,
      setElementCounts: new Map([...t.sets.keys()].filter(learned).map((n) => [n, 0])),
    };
  }

  close(): void {}

  /** Test hook standing for someone editing the kernel behind our back (`nft flush chain ...`). */
  tamper(
    family: string,
    table: string,
    edit: (t: { chains: Map<string, FakeChain>; sets: FakeTable['sets']; maps: FakeTable['maps'] }) => void,
  ): void {
    const t = this.tables.get(`${family} ${table}`);
    if (!t) throw new Error(`fake nft: no table ${family} ${table}`);
    edit(t);
  }

  /** The table as `nft list table` style text (sets and maps first, then chains, in creation order). */
  dump(family: string, table: string): string {
    const t = this.tables.get(`${family} ${table}`);
    if (!t) return '';
    const blocks: string[] = [];
    const block = (kind: string, n: string, s: { decl: string; elements: Map<string, string> }) => {
      const elems = [...s.elements].map(([k, v]) => (v === '' ? k : `${k} : ${v}`));
      blocks.push(
        `\t${kind} ${n} {\n${s.decl
          .split(';')
          .map((p) => p.trim())
          .filter(Boolean)
          .map((p) => `\t\t${p}\n`)
          .join('')}${elems.length ? `\t\telements = { ${elems.join(',\n\t\t\t     ')} }\n` : ''}\t}\n`,
      );
    };
    for (const [n, s] of t.sets) block('set', n, s);
    for (const [n, m] of t.maps) block('map', n, m);
    for (const [n, c] of t.chains) {
      blocks.push(
        `\tchain ${n} {\n${[...(c.hook ? [c.hook] : []), ...c.rules].map((r) => `\t\t${r}\n`).join('')}\t}\n`,
      );
    }
    return `table ${family} ${table} {\n${blocks.join('\n')}}\n`;
  }

  private apply(tables: Map<string, FakeTable>, key: string, op: NftOp, handle: number): number {
    const o = op.object;
    if (o.kind === 'table') {
      const t = tables.get(key);
      if (op.verb === 'add' || op.verb === 'create') {
        if (t && op.verb === 'create') throw new OpError('EEXIST', `table ${key}`);
        if (!t) tables.set(key, { handle: handle++, chains: new Map(), sets: new Map(), maps: new Map() });
      } else if (!t) throw new OpError('ENOENT', `table ${key}`);
      else if (op.verb === 'delete') tables.delete(key);
      else for (const c of t.chains.values()) c.rules = [];
      return handle;
    }
    const t = tables.get(key);
    if (!t) throw new OpError('ENOENT', `table ${key}`);
    this.applyInTable(t, op.verb, o);
    return handle;
  }

  private applyInTable(t: FakeTable, verb: NftOp['verb'], o: Exclude<NftObject, { kind: 'table' }>): void {
    const chainExists = (n: string) => {
      if (!t.chains.has(n)) throw new OpError('ENOENT', `chain ${n}`);
    };
    const setExists = (n: string) => {
      if (!t.sets.has(n) && !t.maps.has(n)) throw new OpError('ENOENT', `set ${n}`);
    };
    const referenced = (pred: (r: ReturnType<typeof refsOf>) => boolean): boolean =>
      [...t.chains.values()].some((c) => c.rules.some((r) => pred(refsOf(r)))) ||
      [...t.maps.values()].some((m) => [...m.elements.values()].some((v) => pred(refsOf(v))));
    switch (o.kind) {
      case 'chain': {
        const c = t.chains.get(o.name);
        if (verb === 'add' || verb === 'create') {
          if (c && verb === 'create') throw new OpError('EEXIST', `chain ${o.name}`);
          if (!c) t.chains.set(o.name, { ...(o.hook ? { hook: o.hook } : {}), rules: [] });
          return;
        }
        if (!c) throw new OpError('ENOENT', `chain ${o.name}`);
        if (verb === 'flush') {
          c.rules = [];
          return;
        }
        if (referenced((r) => r.chains.includes(o.name)))
          throw new OpError('EBUSY', `chain ${o.name} is still referenced`);
        t.chains.delete(o.name);
        return;
      }
      case 'rule': {
        chainExists(o.chain);
        const refs = refsOf(o.rule);
        refs.chains.forEach(chainExists);
        refs.sets.forEach(setExists);
        t.chains.get(o.chain)!.rules.push(o.rule);
        return;
      }
      case 'set':
      case 'map': {
        const own = o.kind === 'set' ? t.sets : t.maps;
        const exists = own.has(o.name);
        if (verb === 'add' || verb === 'create') {
          if (exists && verb === 'create') throw new OpError('EEXIST', `${o.kind} ${o.name}`);
          if (!exists) {
            own.set(o.name, { decl: o.decl, elements: new Map() });
          }
          return;
        }
        if (!exists) throw new OpError('ENOENT', `${o.kind} ${o.name}`);
        if (verb === 'flush') {
          own.get(o.name)!.elements.clear();
          return;
        }
        if (referenced((r) => r.sets.includes(o.name)))
          throw new OpError('EBUSY', `${o.kind} ${o.name} is still referenced`);
        own.delete(o.name);
        return;
      }
      case 'element': {
        const m = t.maps.get(o.map) ?? t.sets.get(o.map);
        if (!m) throw new OpError('ENOENT', `map ${o.map}`);
        const cur = m.elements.get(o.key);
        if (verb === 'delete') {
          if (cur === undefined) throw new OpError('ENOENT', `element ${o.key} in ${o.map}`);
          m.elements.delete(o.key);
          return;
        }
        const value = o.value ?? '';
        refsOf(value).chains.forEach(chainExists);
        if (cur !== undefined && (verb === 'create' || cur !== value))
          throw new OpError('EEXIST', `element ${o.key} in ${o.map}`);
        m.elements.set(o.key, value);
      }
    }
  }
}

function describeOp(tx: NftTransaction, op: NftOp): string {
  const i = tx.ops.indexOf(op);
  return tx.describe()[i] ?? `${op.verb} ${op.object.kind}`;
}
