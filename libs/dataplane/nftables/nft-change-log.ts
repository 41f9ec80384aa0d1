import type { NftNotification } from '../../netlink/index.ts';

/** The objects of one table that commits changed, by name, as their notifications named them. */
export interface NftTableChanges {
  /** Chains created, deleted, or whose rules were added or deleted. */
  readonly chains: ReadonlySet<string>;
  /** Sets and maps created or deleted, or whose elements were added or deleted (as a whole). */
  readonly sets: ReadonlySet<string>;
  /** Elements added or deleted, one by one (in sets too large to re-read whole for a few). */
  readonly elements: readonly { readonly set: string; readonly key: string }[];
  /** Commits in the range (those that touched other tables too). */
  readonly commits: number;
}

/**
 * How the log records one notification of its table: a chain, a set as a whole, the element
 * keys it names (as the read-back writes keys), or `doubt` (the names cannot say what changed).
 */
export type NftChangeEntry =
  | { readonly chain: string }
  | { readonly set: string }
  | { readonly elements: { readonly set: string; readonly keys: readonly string[] } }
  | 'doubt';

/** What the log returns: the changes, not yet (`waiting`), or why it cannot vouch. */
export type NftChangeAnswer = NftTableChanges | 'waiting' | { readonly unknown: string };

/** Commits kept before the log gives up (a resync that never comes, or a flood of commits). */
const MAX_COMMITS = 100_000;
/** Objects one commit may name before the log stops listing them and asks for a whole read. */
const MAX_OBJECTS_PER_COMMIT = 2_000;

interface Pending {
  readonly chains: Set<string>;
  readonly sets: Set<string>;
  /** `set key` → element. */
  readonly elements: Map<string, { set: string; key: string }>;
  /** Something of the table changed that names cannot say (the table itself, an unknown message, too many objects). */
  doubt: boolean;
}
interface CommitRecord extends Pending {
  readonly gen: number;
}
const emptyPending = (): Pending => ({ chains: new Set(), sets: new Set(), elements: new Map(), doubt: false });

/** `a` comes after `b` in nf_tables' 32-bit generation sequence (a window of 2^31 either way). */
const after = (a: number, b: number): boolean => {
  const d = (a - b) >>> 0;
  return d !== 0 && d < 0x8000_0000;
};

/**
 * Which objects of one table the commits after a generation changed, folded from nf_tables'
 * notifications (NFNLGRP_NFTABLES), so that a resync after the ruleset generation moved can read
 * back only those objects instead of the whole table. Pure: the netlink runner feeds it.
 *
 * What it vouches for, and why: nf_tables multicasts one notification per object a commit
 * changes (rule, chain, set, set element; a deleted table or chain also notifies every object it
 * takes along), then one NEWGEN with the commit's new generation, all while it holds the commit
 * mutex, so on one socket each commit arrives whole and in order. Coverage starts at a
 * generation read (GETGEN) after the subscription: every later commit bumps the generation after
 * that read and notifies after its bump, so it is recorded. Lost notifications — the socket
 * overflowed (ENOBUFS; nf_tables also raises it when it cannot allocate a notification; the
 * listener process ends on it, NftNotificationListener), a gap in the NEWGEN sequence — void the
 * coverage until `begin` is called again with a generation read after the loss was noticed (a
 * commit whose notifications were cut committed before that read, so it is not covered). Anything it cannot name (a table created or deleted, a message type it does not
 * read, an anonymous set, too many objects in one commit) is a `doubt`, and a range with a
 * doubt is not vouched for: the caller reads the whole table.
 */
export class NftChangeLog {
  private records: CommitRecord[] = [];
  private pending = emptyPending();
  /** Commits after this generation are all recorded (undefined: not covering). */
  private coveredAfter: number | undefined;
  /** The generation of the last NEWGEN taken (records may have been forgotten up to it since). */
  private tail: number | undefined;
  /** Why coverage was last lost (kept after `begin`, for notes). */
  lostReason = 'the record started there';
  private readonly waiters = new Set<() => void>();

  /**
   * `classify` turns a notification of the table into what to record (the runner knows which
   * names are skeleton objects, and how to write an element's key).
   */
  constructor(
    private readonly family: number,
    private readonly table: string,
    private readonly classify: (n: Exclude<NftNotification, { kind: 'gen' }>) => NftChangeEntry,
  ) {}

  get covering(): boolean {
    return this.coveredAfter !== undefined;
  }

  /** Coverage from `gen` (a GETGEN answered after the subscription, or after a loss): every later commit is recorded. */
  begin(gen: number): void {
    this.coveredAfter = gen;
    this.records = this.records.filter((r) => after(r.gen, gen));
    this.tail = this.records.at(-1)?.gen ?? gen;
  }

  /** Notifications were lost (or may have been): nothing is vouched for until `begin` again. */
  lose(reason: string): void {
    this.coveredAfter = undefined;
    this.tail = undefined;
    this.lostReason = reason;
    this.records = [];
    this.pending = emptyPending();
    this.wake();
  }

  /** One notification, in the order the socket delivered it. */
  note(n: NftNotification): void {
    if (n.kind === 'gen') {
      this.close(n.gen);
      return;
    }
    if (n.family !== this.family || n.table !== this.table) return;
    const p = this.pending;
    if (p.doubt) return;
    let e: NftChangeEntry;
    try {
      e = this.classify(n);
    } catch {
      e = 'doubt'; // an element key we cannot write: read the table whole
    }
    if (e === 'doubt') p.doubt = true;
    else if ('chain' in e) p.chains.add(e.chain);
    else if ('set' in e) p.sets.add(e.set);
    else for (const key of e.elements.keys) p.elements.set(`${e.elements.set} ${key}`, { set: e.elements.set, key });
    if (p.doubt || p.chains.size + p.sets.size + p.elements.size > MAX_OBJECTS_PER_COMMIT) {
      p.doubt = true;
      p.chains.clear();
      p.sets.clear();
      p.elements.clear();
    }
  }

  private close(gen: number): void {
    const p = this.pending;
    this.pending = emptyPending();
    const last = this.tail;
    if (last !== undefined && !after(gen, last)) return; // a commit from before the coverage began
    if (this.coveredAfter !== undefined && last !== undefined && ((last + 1) >>> 0 || 1) !== gen) {
      this.lose(`notifications skipped from generation ${last} to ${gen}`);
      return;
    }
    this.records.push({ gen, ...p });
    this.tail = gen;
    if (this.records.length > MAX_COMMITS) this.lose(`more than ${MAX_COMMITS} commits since the last resync`);
    this.wake();
  }

  /**
   * What the commits after `since` up to `now` (both generations) changed in the table; also
   * forgets the commits up to `since` (the caller knows the table at `since`). `waiting`: the
   * log has not yet received `now`'s NEWGEN (a GETGEN can see a commit's generation before the
   * committer has sent its notifications), ask again after `settled`. `{ unknown }` when the
   * log cannot vouch for the range: not covering it, or a commit in it that names cannot
   * describe.
   */
  changesSince(since: number, now: number): NftChangeAnswer {
    const c = this.coveredAfter;
    if (c === undefined) return { unknown: `no notification record (${this.lostReason})` };
    if (since !== c && !after(since, c))
      return { unknown: `notifications recorded only after generation ${c} (${this.lostReason})` };
    this.records = this.records.filter((r) => after(r.gen, since));
    const chains = new Set<string>();
    const sets = new Set<string>();
    const elements = new Map<string, { set: string; key: string }>();
    let expect = since;
    let commits = 0;
    for (const r of this.records) {
      if (expect === now) break;
      expect = (expect + 1) >>> 0 || 1;
      if (r.gen !== expect) return { unknown: `no notifications of generation ${expect}` };
      if (r.doubt) return { unknown: `commit ${r.gen} changed what notifications cannot name` };
      for (const x of r.chains) chains.add(x);
      for (const x of r.sets) sets.add(x);
      for (const [k, x] of r.elements) elements.set(k, x);
      commits++;
    }
    if (expect !== now) return after(now, expect) ? 'waiting' : { unknown: `generation ${now} is not after ${since}` };
    // Elements of a set re-read whole need no reading one by one.
    const single = [...elements.values()].filter((x) => !sets.has(x.set));
    return { chains, sets, elements: single, commits };
  }

  /** Resolves at the next recorded commit or loss (or after `ms`). */
  settled(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
