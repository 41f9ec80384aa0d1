import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstream, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { z } from 'zod';
import { parseWire } from '../model/index.ts';
import { leaseStatement, verifierFromPem, type Signer, type Verifier } from './planner-signature.ts';
import { explainJetStreamFailure, type JetStreamFailure } from './jetstream-refusal.ts';
import { replicatedBucket } from './target-store.ts';

const KEY = 'leader';

/** A group name as it appears in bucket names: letters, digits, '-' and '_'. */
export function checkGroupName(group: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(group))
    throw new Error(`--group ${JSON.stringify(group)}: use 1-64 letters, digits, '-' or '_'`);
  return group;
}

export function leaseBucket(group: string): string {
  return `sb_lease_${checkGroupName(group)}`;
}

const LEASE_STREAM_PREFIX = 'KV_sb_lease_';

/**
 * The groups that have a lease bucket on this NATS account (its stream `KV_sb_lease_<group>`):
 * one listing of stream names (STREAM.NAMES requests, no consumer). A group's planner opens its
 * lease bucket before it can win a term, so every group that ever claimed the versions stream
 * here is listed while its bucket exists.
 */
export async function leaseGroups(jsm: JetStreamManager): Promise<string[]> {
  const groups: string[] = [];
  for await (const name of jsm.streams.names())
    if (name.startsWith(LEASE_STREAM_PREFIX)) groups.push(name.slice(LEASE_STREAM_PREFIX.length));
  return groups;
}

const LeaseHolderSchema = z.object({
  id: z.string(),
  term: z.number().int(),
  host: z.string(),
  pid: z.number().int(),
  since: z.string(),
  renewedAt: z.string(),
  api: z.string().optional(),
  /** The group's key's signature over leaseStatement (planner-signature.ts); absent before this release. */
  sig: z.string().optional(),
});
export type LeaseHolder = z.infer<typeof LeaseHolderSchema>;
/**
 * The lease key as read: its revision, and its record when it parses and is signed by the group's
 * key (else undefined: `ignored` says why in words, `raw` is what parsed, unchecked).
 */
interface LeaseEntry {
  readonly revision: number;
  readonly holder: LeaseHolder | undefined;
  /** The term field as written (0 in a claim: the term is then the revision). */
  readonly rawTerm?: number;
  readonly raw?: LeaseHolder;
  readonly ignored?: string;
  /** Signed, but a claim without its term or older than a term seen (see staleness): never claimed as this planner's own. */
  readonly replay?: true;
}

/** No current leader, as one planner sees its group (LeaderLease.noLeader). */
export interface NoLeader {
  /** How long this planner has known no current leader (monotonic ms). */
  readonly forMs: number;
  /** Why, as far as it can tell: JetStream refused or did not answer its own lease requests, or the lease's state. */
  readonly cause: string;
  /** The cause will not clear by itself: an operator must act (JetStream storage full, JetStream disabled, ...). */
  readonly lasting: boolean;
}

export interface LeaderLeaseOptions {
  readonly nc: NatsConnection;
  readonly group: string;
  /** This planner's --id (default: the hostname). */
  readonly id: string;
  /** Lease TTL (default 15 s): a silent leader's lease is free this long after its last renewal. */
  readonly ttlMs?: number;
  readonly replicas?: number;
  /** This planner's API URL, recorded in the lease so followers can name where writes go. */
  readonly api?: string;
  /**
   * The group's signing key: this planner signs the records it writes and takes only records that
   * verify with it as a leader's (probe10 H4). The planner always passes it; without one (tests,
   * tools) records are neither signed nor checked, as before.
   */
  readonly signer?: Signer;
  /**
   * The newest term this planner knows from its own storage, across restarts (the planner passes its
   * replicated log's newest term marker, which the group's key signed): a record of its own dead
   * run with an older term is not taken back at once (it may be a replayed one; see staleness), the
   * bucket's TTL frees it.
   */
  readonly knownTerm?: number;
  readonly onElected?: (term: number) => void;
  readonly onDeposed?: (why: string) => void;
  /**
   * Told the first time a renewal fails after one that worked (NATS away, a slow server); and once
   * when a follower's look (a read or a claim of the lease) fails for a new cause, once when one works again.
   */
  readonly onTrouble?: (line: string) => void;
  /** The lease bucket had limits of its own, taken off when it was opened (replicatedBucket). */
  readonly onLimitsReset?: (line: string) => void;
  /** Monotonic milliseconds (default performance.now: it keeps counting while the process is stopped). */
  readonly now?: () => number;
}

/**
 * Leader election for a planner group: one key in a KV bucket (`sb_lease_<group>`, `--replicas`
 * copies) whose max age is the TTL (nats-server 2.9 has no per-key TTL; the bucket holds only this
 * key, so an unrenewed lease simply expires).
 *
 * - Winning is a create (fails when held) or, for this planner's own record left by a dead process
 *   on this host, a compare-and-set on the revision seen. The **term** is the KV revision of the
 *   winning write: JetStream numbers every write to the bucket, so terms only grow (renewals
 *   consume numbers too, so terms have gaps) and no two leaders ever share one.
 * - The leader renews every TTL/4 with a compare-and-set on the revision it last wrote; a failed
 *   compare means someone else holds the lease: it steps down at once.
 * - It acts only while `isLeader()`: until 3/4 of the TTL after it *sent* its last successful
 *   renewal (the server's expiry counts from when it stored it, later), so a leader that cannot
 *   renew stops before its lease can pass to another, even when it was stopped (SIGSTOP) mid-way;
 *   and not from the moment its connection drops until a renewal is answered again (NATS may
 *   have come back without its store: see `suspended`).
 * - Followers look every TTL/4 and contend (create) once the key has expired or been released.
 * What a stale leader might still have in flight is fenced by the conditional writes on the
 * versions stream and the targets bucket (version-publisher.ts, target-store.ts).
 */
export class LeaderLease {
  private kv!: KV;
  private revision = 0;
  private myTerm = 0;
  private validUntil = 0;
  private leading = false;
  /**
   * The leader's connection dropped since its last answered renewal: it does not act until one is
   * answered again (renewed at once on reconnect). Every server restarted empty (NATS lost its
   * store) drops every connection first, and the lease key is gone with the bucket: without this,
   * the old leader acted for the rest of its validity (up to 3/4 TTL) in the new store while a
   * planner that came along meanwhile found no key and was elected (two leaders; the first in term
   * 18, the other in term 1: terms restart with the bucket). Now the old leader's first renewal
   * there fails (no bucket, then its revision unknown) and deposes it before it acts again.
   */
  private suspended = false;
  private seen: LeaseHolder | undefined;
  /** The lease key's revision as last read, and when (monotonic) a read found it moved: a live leader moves it every TTL/4. */
  private seenRevision = 0;
  private seenMovedAt = Number.NEGATIVE_INFINITY;
  /** The last read found no lease record (expired or released). */
  private seenGone = false;
  private timer: NodeJS.Timeout | undefined;
  private validityTimer: NodeJS.Timeout | undefined;
  /** When (now()) the validity timer is due: how late it runs says how long the event loop was blocked. */
  private validityDue = Number.POSITIVE_INFINITY;
  private ticking = false;
  private tickAgain = false;
  private holdOffUntil = 0;
  private lastContact: number;
  private closed = false;
  private firstRound: Promise<void> | undefined;
  private stopWatching: () => void = () => undefined;
  private troubled = false;
  /** Why the last look (a read or claim of the lease) failed, until one works; said once (see lookFailed). */
  private lookTrouble: JetStreamFailure | undefined;
  /** Counts the looks that worked: a failure explained after a later look worked is dropped. */
  private looksWorked = 0;
  /** The causes said since the last look that worked (each once). */
  private readonly causesSaid = new Set<string>();
  /** When (monotonic) this planner last knew its group led: leading, or a current record read (see noLeader). */
  private ledAt: number;
  readonly ttlMs: number;
  readonly me: Omit<LeaseHolder, 'term' | 'renewedAt' | 'sig'>;
  private readonly verifier: Verifier | undefined;
  /** The last record ignored as said on stderr (once until a record verifies again). */
  private ignoredSaid: string | undefined;
  /**
   * Why the record the lease key holds now names no leader (not signed by the group's key, a
   * replayed copy, unparsable); undefined when it names one or the key is free. noLeader() says it:
   * "the lease is free" was said while a planner of a release before signed leases led (probe15 U5).
   */
  private heldIgnored: string | undefined;
  /**
   * The last lease record read that is not signed by this planner's key (a planner of the group
   * with another --signing-key led, or a release before signed leases), until a record signed by
   * it is read: kept after that record is released or expires (see foreignRecord).
   */
  private foreign: string | undefined;
  /**
   * The highest term of a signed record read or written in this bucket, and the revision it was
   * read at: a signed record of a lower term at a later revision is a replay (see staleness). In
   * memory: a floor kept across restarts would refuse every leader of a bucket made again after
   * NATS lost its store once its revisions passed the old ones (knownTerm only holds back claims);
   * for the same reason it is dropped after a TTL without a read, and replaced by a term won.
   */
  private highest: { term: number; revision: number } | undefined;
  /** When (monotonic) the lease key was last read: a floor older than a TTL is dropped (see staleness). */
  private lastRead = Number.NEGATIVE_INFINITY;

  private constructor(private readonly options: LeaderLeaseOptions) {
    this.ttlMs = options.ttlMs ?? 15_000;
    this.me = {
      id: options.id,
      host: hostname(),
      pid: process.pid,
      since: new Date().toISOString(),
      ...(options.api ? { api: options.api } : {}),
    };
    this.lastContact = this.now();
    this.ledAt = this.lastContact;
    this.verifier = options.signer ? verifierFromPem(options.signer.publicKeyPem, 'planner key') : undefined;
  }

  /** Opens (or creates) the group's lease bucket; call start() to take part in elections. */
  static async open(o: LeaderLeaseOptions): Promise<LeaderLease> {
    const l = new LeaderLease(o);
    l.kv = await l.openBucket();
    l.watchConnection();
    return l;
  }

  /** Suspends a leader when its connection drops; renews at once when it is back (see `suspended`). */
  private watchConnection(): void {
    const events = this.options.nc.status();
    this.stopWatching = () => (events as { stop?: () => void }).stop?.();
    void (async () => {
      for await (const s of events) {
        if (this.closed) return;
        if (s.type === 'disconnect' && this.leading && !this.suspended) {
          this.suspended = true;
          this.options.onTrouble?.('disconnected from NATS: not acting until the lease is renewed');
        } else if (s.type === 'reconnect') this.tickSoon();
      }
    })();
  }

  /**
   * How long one lease request (a read, a claim, a renewal, a release) may take: TTL/4, the
   * interval of the looks. One unanswered by then is given up and made again at the next look. With
   * the JetStream API's own 5 s, a follower's read that met a frozen or slow server held the
   * election tick for 5 s (CI: an election after kill -9 of the leader took 7 s against a bound of
   * 2 x TTL + 1.5 s).
   */
  requestTimeoutMs(): number {
    return Math.max(200, Math.floor(this.ttlMs / 4));
  }

  /**
   * The lease bucket, made or brought to this TTL and replica count with the client's default
   * timeouts (startup and recovery, not the election path), then seen through a JetStream context
   * whose every request gives up after requestTimeoutMs, and whose reads go to the bucket's Raft
   * leader rather than by direct get. A direct get is answered by any replica, a frozen one
   * included: with the bucket's old leader frozen (SIGSTOP), 1 read in 3 from a client on a live
   * server waited out its timeout, for a minute on end, often several in a row; a read from the
   * leader meets a frozen server only while that one still leads, when the lease cannot be
   * written either.
   */
  private async openBucket(): Promise<KV> {
    const { nc, group, replicas, onLimitsReset } = this.options;
    await replicatedBucket(nc, leaseBucket(group), { history: 1, ttl: this.ttlMs, replicas, onLimitsReset });
    const bounded = jetstream(nc, { timeout: this.requestTimeoutMs(), checkAPI: false });
    return new Kvm(bounded).open(leaseBucket(group), { allow_direct: false });
  }

  private now(): number {
    return this.options.now?.() ?? performance.now();
  }

  /**
   * Contends now, then renews or watches every TTL/4. Resolves once the first round is done
   * (elected or not), so a lone planner starts as the leader.
   */
  start(): Promise<void> {
    this.firstRound = this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.ttlMs / 4)));
    return this.firstRound;
  }

  /** True while this planner leads and its lease is surely still its own. */
  isLeader(): boolean {
    return this.valid() && !this.suspended;
  }

  /**
   * Leads, within its validity, but its connection dropped since its last answered renewal: it
   * does not act (isLeader() is false) until a renewal is answered, or it is deposed.
   */
  isSuspended(): boolean {
    return this.valid() && this.suspended;
  }

  /** Leading, and within the window its last answered renewal allows (suspended or not). */
  private valid(): boolean {
    return this.leading && this.now() < this.validUntil;
  }

  /** The term this planner leads in, or the newest term it has seen a leader hold. */
  term(): number {
    return this.leading ? this.myTerm : (this.seen?.term ?? 0);
  }

  /**
   * The current leader: this planner's own record while it leads, else the record last read, as
   * long as it is surely current: undefined once the record is gone from the bucket, has not moved
   * for a TTL (its holder stopped renewing: it expired), or this planner has had no answer from the
   * bucket for a TTL (cut off, it cannot know), or it is this very planner's record while it does
   * not lead. Naming the last record whatever its age showed a cut-off planner as the leader for
   * the whole partition, while writes sent to it answered "no leader is known" (probe5 H3).
   */
  leader(): LeaseHolder | undefined {
    if (this.leading) return this.record();
    return this.lastLeader()?.current ? this.seen : undefined;
  }

  /**
   * The lease record last read, whether it is current (see leader()) and, when it is not, why in
   * words: `no leader known (last: planner pb, term 1015, renewed 12 s ago)`.
   */
  lastLeader(): { holder: LeaseHolder; current: boolean; why: string; renewedAgoS: number } | undefined {
    const h = this.seen;
    if (!h) return undefined;
    const own = this.isThisLease(h);
    const current =
      this.leading ||
      (!own && !this.seenGone && this.now() - this.seenMovedAt <= this.ttlMs && this.sinceContactMs() <= this.ttlMs);
    const ago = this.renewedAgoS();
    const why = current
      ? `planner ${h.id} leads in term ${h.term}`
      : `no leader known (last: planner ${h.id}, term ${h.term}, renewed ${ago} s ago)`;
    return { holder: h, current, why, renewedAgoS: ago };
  }

  /**
   * Seconds since this planner saw the record last renewed (it moved), on its monotonic clock. The
   * record's `renewedAt` is the writer's wall clock: read against this one, a leader an hour behind
   * was "renewed 3600 s ago" while it renewed every TTL/4, one ahead "0 s ago" after it died (probe12).
   */
  private renewedAgoS(): number {
    return Number.isFinite(this.seenMovedAt) ? Math.max(0, Math.round((this.now() - this.seenMovedAt) / 1000)) : 0;
  }

  /** Milliseconds since the lease bucket last answered (a planner cut off from NATS sees it grow). */
  sinceContactMs(): number {
    return this.now() - this.lastContact;
  }

  /**
   * No current leader (leader() is undefined): since when this planner has known none and why, as
   * far as it can tell: JetStream refusing or not answering its own reads or claims of the lease
   * (the storage full, JetStream disabled or hung: probe8 J1, J2), else the lease's state;
   * undefined while a leader is known. Before, a group whose lease JetStream refused had no
   * leader while every planner said it was ready, and nothing said why.
   */
  noLeader(): NoLeader | undefined {
    const now = this.now();
    if (this.leader()) {
      this.ledAt = now;
      return undefined;
    }
    const t = this.lookTrouble;
    const since = this.sinceContactMs();
    const h = this.seen;
    const cause =
      t?.cause ??
      (since > this.ttlMs
        ? `no answer from the group's lease bucket for ${Math.round(since)} ms`
        : this.heldIgnored !== undefined
          ? `the lease key holds a record this planner does not follow (${this.heldIgnored}): a planner of a release before signed leases, or with another --signing-key, may lead; it is claimed once that record expires`
          : this.seenGone || !h
            ? 'the lease is free and no planner of the group has claimed it'
            : `planner ${h.id} (term ${h.term}) has not renewed its lease for ${this.renewedAgoS()} s`);
    return { forMs: now - this.ledAt, cause, lasting: t?.lasting ?? false };
  }

  /**
   * Why the group's leaders (as far as this planner read the lease key) sign with another key than
   * this planner's: the last record it read was not signed by its key, and none signed by it came
   * after (undefined otherwise; a record released or expired since still counts: probe16 I4).
   */
  foreignRecord(): string | undefined {
    return this.foreign;
  }

  /**
   * Gives up leadership (a fence was seen, or the planner cannot lead: its log is behind): the
   * lease is released so another planner can take it, and this one waits `holdOffMs` (default
   * one TTL) before contending again.
   */
  async stepDown(why: string, holdOffMs = this.ttlMs): Promise<void> {
    this.holdOffUntil = this.now() + holdOffMs;
    if (!this.leading) return;
    const rev = this.revision;
    this.lose(why);
    await this.release(rev);
  }

  /**
   * A clean stop: released, so another planner takes over at once. The release waits at most
   * `waitMs` (default 1 s) for NATS: unanswered, the key expires after its TTL anyway.
   */
  async close(waitMs = 1000): Promise<void> {
    this.closed = true;
    this.stopWatching();
    clearInterval(this.timer);
    clearTimeout(this.validityTimer);
    if (this.leading) {
      this.leading = false;
      await atMost(this.release(this.revision), waitMs);
    }
  }

  /** This planner's record, signed with the group's key when it has one; `term` 0 in a claim. */
  private record(term = this.myTerm): LeaseHolder {
    const r: LeaseHolder = { ...this.me, term, renewedAt: new Date().toISOString() };
    const signer = this.options.signer;
    return signer ? { ...r, sig: signer.sign(leaseStatement({ group: this.options.group, ...r })) } : r;
  }

  /**
   * The lease key's value read at `revision`. A record that does not parse, or (with the group's
   * key) is not signed by it, names no leader: anyone with the planner's NATS user could write one
   * (probe10 H4). Said once on stderr until a record verifies again.
   */
  private entryOf(value: Uint8Array, revision: number): LeaseEntry {
    const h = parseWire(LeaseHolderSchema, value, 'planner lease');
    let entry: LeaseEntry;
    if (!('value' in h))
      entry = { revision, holder: undefined, ignored: `lease record at revision ${revision} does not parse; ignored` };
    else {
      const raw = h.value;
      const signed =
        !this.verifier ||
        (raw.sig !== undefined && this.verifier.verify(leaseStatement({ group: this.options.group, ...raw }), raw.sig));
      const holder = { ...raw, term: raw.term || revision };
      const stale = signed ? this.staleness(raw, revision) : undefined;
      entry = stale
        ? { revision, holder: undefined, rawTerm: raw.term, raw: holder, ignored: stale, replay: true }
        : signed
          ? { revision, holder, rawTerm: raw.term, raw: holder }
          : {
              revision,
              holder: undefined,
              rawTerm: raw.term,
              raw: holder,
              ignored: `lease record of ${JSON.stringify(raw.id).replace(/^"|"$/g, "'")} is not signed by the group's key; ignored`,
            };
    }
    if (entry.holder) this.foreign = undefined;
    else if (!('value' in h) || entry.replay) {
      // not a leader's record at all: says nothing of the group's key
    } else this.foreign = entry.ignored;
    if (entry.holder) {
      this.ignoredSaid = undefined;
      if (entry.rawTerm) this.noteTerm(entry.rawTerm, revision);
    } else if (entry.ignored && entry.ignored !== this.ignoredSaid) {
      this.ignoredSaid = entry.ignored;
      this.options.onTrouble?.(entry.ignored);
    }
    return entry;
  }

  /**
   * Why a record signed by the group's key names no leader all the same, or undefined (without the
   * key nothing is checked, as before). Anyone who may write the key can copy back a record the
   * group's key once signed: followers named its planner (and its API) until the leader rewrote
   * the key, TTL/4 later, and a copy of a claim (term 0, read as the term of the revision it lands
   * at) even deposed the leader. So:
   * - a record of a term below the highest this planner has seen in this bucket, at a later
   *   revision, is a replay (the terms of one bucket grow with its revisions). A revision below the
   *   one that term was read at means the bucket was made again (NATS lost its store: terms restart
   *   at 1), and the floor is dropped;
   * - a claim record (term 0, written at a revision its writer does not know yet, and rewritten
   *   with its term at once) names no leader unless it is this very lease's own write: between a
   *   genuine claim and its rewrite (milliseconds; a TTL/4 when the rewrite failed) followers name
   *   none, which a copy of a claim can then no longer turn into a leader.
   * The leader takes such a record back as it does any record that names no leader (takesBack).
   */
  private staleness(raw: LeaseHolder, revision: number): string | undefined {
    if (!this.verifier) return undefined;
    // Not read for a TTL (cut off, or the process stopped): the bucket may have been made again and
    // have numbered past the floor's revision meanwhile, so the floor is dropped, as at start.
    const readAt = this.lastRead;
    this.lastRead = this.now();
    if (this.highest && this.lastRead - readAt > this.ttlMs) this.highest = undefined;
    const who = JSON.stringify(raw.id).replace(/^"|"$/g, "'");
    if (raw.term === 0)
      return this.isThisLease(raw) && (!this.leading || revision === this.revision)
        ? undefined
        : `lease record of ${who} at revision ${revision} is a claim without its term (term 0: a claim in progress, or a copy of one); not named until its holder writes its term`;
    // A term is the revision of its claim, so every record of it is written at that revision or
    // later: one of a higher term is from a bucket since made again (and would raise the floor
    // over every genuine term of this one).
    if (raw.term > revision)
      return `lease record of ${who} names term ${raw.term}, past its revision ${revision} (a copy from before the bucket was made again); ignored`;
    if (this.highest && revision < this.highest.revision) this.highest = undefined; // the bucket was made again
    if (this.highest && raw.term < this.highest.term)
      return `lease record of ${who} names term ${raw.term}, older than term ${this.highest.term} already seen (a copy of an old record); ignored`;
    return undefined;
  }

  /** A term read or won at `revision` (see highest). */
  private noteTerm(term: number, revision: number): void {
    if (!this.highest || term >= this.highest.term) this.highest = { term, revision };
  }

  /**
   * A write this leader takes back rather than be deposed by: a record that names no leader (see
   * entryOf), or another planner's signed one of this term or an earlier one (a replay: no two
   * leaders share a term). Only while it leads unsuspended: its record cannot have expired then (it
   * acts 3/4 TTL, the key lives a TTL) and a genuine planner claims only a free key, so the write
   * is nobody's lease. Suspended, NATS may have lost its
   * store, and a record there may be a planner's elected meanwhile: deposed as before.
   */
  private takesBack(cur: LeaseEntry): boolean {
    if (!this.valid() || this.suspended || cur.revision === this.revision) return false;
    if (!cur.holder) return true;
    return !this.isThisLease(cur.holder) && cur.rawTerm !== 0 && cur.holder.term <= this.myTerm;
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.ledAt = this.now(); // it led until now
    this.leading = false;
    this.suspended = false;
    this.options.onDeposed?.(why);
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      if (this.leading) await this.renew();
      else await this.contend();
    } finally {
      this.ticking = false;
      this.noLeader(); // notes when a leader was last known
    }
    if (this.tickAgain) {
      this.tickAgain = false;
      await this.tick();
    }
  }

  /**
   * A look now, or as soon as the one in flight ends: after a reconnect, where a request sent while
   * away waits out its timeout, and a suspended leader should renew without waiting for the next tick.
   */
  private tickSoon(): void {
    if (this.ticking) this.tickAgain = true;
    else void this.tick();
  }

  private expired(): string {
    // The validity timer fires about a millisecond after its due time unless the thread was busy:
    // past due by much, the renewals were late because the event loop was blocked (probe8 S1), or
    // the whole process was stopped: the monotonic clock ran on meanwhile (probe12 L8).
    const late = Math.round(this.now() - this.validityDue);
    const blocked =
      late >= 100
        ? `; the event loop was blocked for at least ${late} ms (a long synchronous step: a slow log write, a GC pause; or the process was stopped: SIGSTOP, a paused VM)`
        : '';
    return `lease not renewed for ${Math.round(this.now() - (this.validUntil - 0.75 * this.ttlMs))} ms (TTL ${this.ttlMs} ms): stopped acting before it could expire${blocked}`;
  }

  /**
   * Records how long this leader may act, and deposes it the moment that ends. The tick cannot be
   * relied on for that: a renewal sent while NATS is unreachable waits out its request timeout (and
   * then, before re-opens were kept to a lost store, the bucket's re-open waited out the JetStream
   * API's), and no tick runs meanwhile — a leader
   * was seen reporting itself deposed ~6.7 s after its last renewal with a 3 s TTL, while its
   * status named no trouble. isLeader() already refused acting; this makes the step-down (and what
   * hangs on it: the planner's role, its status) happen on time too.
   */
  private holdUntil(validUntil: number): void {
    this.validUntil = validUntil;
    clearTimeout(this.validityTimer);
    const check = () => {
      if (!this.leading || this.closed) return;
      if (this.valid()) {
        this.validityDue = Math.max(this.now(), this.validUntil) + 1;
        this.validityTimer = setTimeout(check, Math.max(0, this.validUntil - this.now()) + 1);
      } else this.lose(this.expired());
      this.validityTimer?.unref?.();
    };
    this.validityDue = Math.max(this.now(), validUntil) + 1;
    this.validityTimer = setTimeout(check, Math.max(0, validUntil - this.now()) + 1);
    this.validityTimer.unref?.();
  }

  /**
   * Renews with a compare-and-set on the revision last written, once a read found this lease's
   * own record at that revision: after NATS lost its store, the bucket made again numbers its
   * writes from 1, so the revision alone may name another planner's record there (seen: an old
   * leader's renewal, conditional on revision 2, overwrote the record of the planner elected in
   * the new bucket meanwhile, and both led). `again`: once more at once after the bucket was found
   * gone and made again, so the old leader learns its record is gone within one tick instead of
   * renewing in vain to the end of its validity.
   */
  private async renew(again = false): Promise<void> {
    if (!this.valid()) {
      this.lose(this.expired());
      return;
    }
    try {
      const cur = await this.readEntry();
      const back = cur !== undefined && this.takesBack(cur);
      if (!back && (cur?.revision !== this.revision || !cur.holder || !this.isThisLease(cur.holder))) {
        this.lastContact = this.now();
        this.loseRecord(cur);
        return;
      }
      const sent = this.now();
      this.revision = await this.kv.update(KEY, JSON.stringify(this.record()), back ? cur.revision : this.revision);
      this.lastContact = this.now();
      this.troubled = false;
      this.seen = this.record();
      this.seenMovedAt = this.lastContact;
      if (this.leading) {
        this.suspended = false;
        this.holdUntil(sent + 0.75 * this.ttlMs);
      } else await this.releaseLate(this.revision, 'its renewal was answered');
    } catch (e) {
      if (!this.troubled) this.options.onTrouble?.(`lease renewal failed: ${(e as Error).message}`);
      this.troubled = true;
      if (isWrongSequence(e)) {
        this.lastContact = this.now();
        const cur = await this.readEntry().catch(() => undefined);
        if (cur && !again && this.takesBack(cur))
          await this.renew(true); // written between read and renewal
        else this.loseRecord(cur);
        return;
      }
      if ((await this.reopenIfLost(e)) && !again && this.leading) await this.renew(true);
      // otherwise NATS is away: the next tick renews, or stops acting once validity ends
    }
  }

  /** Deposes this leader: the lease key does not hold its record at the revision it last wrote. */
  private loseRecord(cur: LeaseEntry | undefined): void {
    if (!cur) {
      this.lose(`lease record gone (revision ${this.revision} unknown to the bucket: NATS lost its store?)`);
      this.tickAgain = true; // contend at once in the bucket made again
    } else if (cur.holder && !this.isThisLease(cur.holder)) {
      this.lose(`lease taken over by ${describeHolder(cur.holder)}`);
      this.seen = cur.holder; // named as the leader from now, not at the next look
      this.seenRevision = cur.revision;
      this.seenMovedAt = this.now();
      this.seenGone = false;
    } else if (!cur.holder) this.lose(cur.ignored ?? `lease record at revision ${cur.revision} does not parse`);
    else this.lose(`lease record at revision ${cur.revision}, not ${this.revision} (a write answered late?)`);
  }

  /**
   * After a failed request: NATS may have lost its store (the bucket is gone; a write then meets
   * no responders, a read may even answer "no key"): make the bucket again. The lease is then
   * contended afresh. Only then: after a timeout (a frozen or slow server) the re-open's requests
   * (stream info and create, through the meta leader and the bucket's Raft leader, 5 s each) held
   * the election tick for seconds more. Resolves true once made again.
   */
  private async reopenIfLost(e: unknown): Promise<boolean> {
    if (!isStoreLost(e)) return false;
    try {
      this.kv = await this.openBucket();
      this.highest = undefined; // a bucket made again numbers its writes, and so its terms, from 1
      return true;
    } catch {
      return false; // still away: the next tick tries again
    }
  }

  private async contend(): Promise<void> {
    let entry;
    try {
      entry = await this.kv.get(KEY);
      this.lastContact = this.now();
    } catch (e) {
      if (!(await this.reopenIfLost(e))) this.lookFailed('read', e);
      return; // NATS away, or JetStream refused the read
    }
    this.seenGone = !(entry && entry.operation === 'PUT');
    this.heldIgnored = undefined;
    if (entry && entry.operation === 'PUT') {
      const read = this.entryOf(entry.value, entry.revision);
      const holder = read.holder;
      if (!holder) this.heldIgnored = read.ignored;
      // A record that names no leader is not contended either: the bucket's TTL frees it unless the
      // leader takes it back first. Claiming it at once made this planner lead while the genuine
      // leader (or one of a release before, whose records are unsigned) still acted.
      if (!holder) {
        const r = read.raw;
        const mine =
          r &&
          !read.replay &&
          read.rawTerm !== 0 &&
          r.term >= (this.options.knownTerm ?? 0) &&
          this.isMine(r) &&
          !this.isThisLease(r) &&
          (r.pid === process.pid || !alive(r.pid));
        if (!mine || this.now() < this.holdOffUntil) return this.lookWorked();
        await this.win(() => this.kv.update(KEY, JSON.stringify(this.record(0)), entry.revision));
        return;
      }
      this.seen = holder;
      if (entry.revision !== this.seenRevision) {
        this.seenRevision = entry.revision;
        this.seenMovedAt = this.now();
      }
      // This very lease's record while it does not lead: a renewal (or a win) NATS stored after
      // this planner gave up on it (the request timed out, or the validity window closed first).
      if (holder && this.isThisLease(holder)) {
        this.lookWorked();
        await this.releaseLate(entry.revision, 'it found its own record');
        return;
      }
      // This planner's own record, left by a run that died on this host: take it back at once.
      // (not one older than this planner's log knows: a copy of its old record, it may not be the lease)
      const mine =
        holder &&
        holder.term >= (this.options.knownTerm ?? 0) &&
        this.isMine(holder) &&
        (holder.pid === process.pid || !alive(holder.pid));
      if (!mine) return this.lookWorked();
      if (this.now() < this.holdOffUntil) return; // no claim tried: a claim's failure still stands
      await this.win(() => this.kv.update(KEY, JSON.stringify(this.record(0)), entry.revision));
      return;
    }
    if (this.now() < this.holdOffUntil) return;
    await this.win(() => this.kv.create(KEY, JSON.stringify(this.record(0))));
  }

  /**
   * A follower's read or claim of the lease failed. Each cause is said in one line once until a
   * look works again (not on every look, TTL/4 apart, nor again when a timeout on a loaded host
   * comes in between) and kept for noLeader: JetStream's refusal in words (jetstream-refusal.ts),
   * and for an unanswered request whether core NATS still answers on that server. A lasting cause
   * is not replaced by a passing one (a timeout tells less than the refusal it interrupts). The
   * PING runs on without holding the election tick; a failure explained after a later look worked
   * is dropped.
   */
  private lookFailed(what: 'read' | 'claim', e: unknown): void {
    const worked = this.looksWorked;
    void explainJetStreamFailure(e, this.options.nc, Math.max(200, Math.min(1000, this.requestTimeoutMs()))).then(
      (f) => {
        if (worked !== this.looksWorked || this.closed) return;
        if (this.lookTrouble?.lasting && !f.lasting) return;
        this.lookTrouble = f;
        if (!this.causesSaid.has(f.cause)) {
          this.causesSaid.add(f.cause);
          this.options.onTrouble?.(
            `cannot ${what} the group's lease: ${f.cause}${f.lasting ? '; no planner of the group can lead until this is fixed' : ''}`,
          );
        }
      },
      () => undefined, // explaining never throws; a closed connection's PING counts as unanswered
    );
  }

  /** A look worked (the lease read, and claimed if it was free): a failure said before is over, said once. */
  private lookWorked(): void {
    this.looksWorked++;
    this.causesSaid.clear();
    const t = this.lookTrouble;
    if (!t) return;
    this.lookTrouble = undefined;
    this.options.onTrouble?.(`the group's lease answers again (it failed: ${t.cause})`);
  }

  private isMine(h: LeaseHolder): boolean {
    return h.id === this.me.id && h.host === this.me.host;
  }

  /** This very lease's record (this process, this run), not only this planner's --id and host. */
  private isThisLease(h: LeaseHolder): boolean {
    return this.isMine(h) && h.pid === process.pid && h.since === this.me.since;
  }

  /**
   * A lease write of this planner's was stored after it had stopped leading (NATS answered late:
   * a frozen or flapping link). Taking the fresh record back at once (as before) re-elected it in
   * a new term right after its step-down, so a flapping link bounced leadership to and fro. It is
   * released instead (a delete conditional on that write's revision: refused if anyone wrote
   * since) and this planner holds off one TTL, so another planner takes over at its next look;
   * alone in its group, it leads again after the hold-off.
   */
  private async releaseLate(revision: number, how: string): Promise<void> {
    this.holdOffUntil = Math.max(this.holdOffUntil, this.now() + this.ttlMs);
    this.options.onTrouble?.(
      `a lease write was stored after this planner stopped leading (${how}): released it; not contending for ${this.ttlMs} ms`,
    );
    await this.release(revision);
  }

  /** Writes the claim; on success the revision is the term, recorded in the lease right away. */
  private async win(write: () => Promise<number>): Promise<void> {
    const sent = this.now();
    let rev: number;
    try {
      rev = await write();
    } catch (e) {
      // another planner won the race (the look worked: follow), or JetStream refused or did not answer
      if (isWrongSequence(e)) this.lookWorked();
      else if (!(await this.reopenIfLost(e))) this.lookFailed('claim', e);
      return;
    }
    this.lookWorked();
    this.lastContact = this.now();
    this.revision = rev;
    this.myTerm = rev;
    this.leading = true;
    this.holdUntil(sent + 0.75 * this.ttlMs);
    // the term just won is the newest of this bucket, whatever was seen before (it may be one made again)
    this.highest = { term: rev, revision: rev };
    try {
      this.revision = await this.kv.update(KEY, JSON.stringify(this.record()), rev);
    } catch {
      // the next renewal tries again; followers name no leader for a claim record (term 0) meanwhile (see staleness)
    }
    this.seen = this.record();
    this.seenMovedAt = this.now();
    this.seenGone = false;
    this.options.onElected?.(this.myTerm);
  }

  /** The lease key's record and revision; undefined when there is none (expired, released, or a new bucket). */
  private async readEntry(): Promise<LeaseEntry | undefined> {
    const e = await this.kv.get(KEY);
    if (!e || e.operation !== 'PUT') return undefined;
    return this.entryOf(e.value, e.revision);
  }

  /**
   * Deletes this lease's record if the key holds it at `revision`, read first: a revision alone may
   * be another planner's record after NATS lost its store (see renew). Someone wrote since, or
   * NATS is away: nothing deleted (the TTL frees it).
   */
  private async release(revision: number): Promise<void> {
    const cur = await this.readEntry().catch(() => undefined);
    if (cur?.revision !== revision || !cur.holder || !this.isThisLease(cur.holder)) return;
    await this.kv.delete(KEY, { previousSeq: revision }).catch(() => undefined);
  }
}

/** Waits for `p` at most `ms`; `p` runs on (its failure already handled by the caller). */
export async function atMost(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

export function describeHolder(h: LeaseHolder): string {
  return `planner ${h.id} (term ${h.term}, pid ${h.pid} on ${h.host}${h.api ? `, API ${h.api}` : ''})`;
}

/**
 * The bucket's stream is gone (NATS lost its store): JetStream says so, or nobody answers its
 * subject. A write nobody answers comes back from the JetStream client as "jetstream is not
 * enabled" (JetStreamNotEnabled, the no-responders error as its cause): not seen as a loss, the
 * bucket was never made again and the old leader renewed in vain until its validity ended.
 */
export function isStoreLost(e: unknown): boolean {
  if (e instanceof JetStreamApiError && e.code === 10059) return true;
  const noResponders = (x: unknown) => {
    const err = x as { message?: string; name?: string; isNoResponders?: () => boolean } | undefined;
    return (
      err?.name === 'JetStreamNotEnabled' ||
      /stream not found|no responders|503/i.test(err?.message ?? '') ||
      (typeof err?.isNoResponders === 'function' && err.isNoResponders())
    );
  };
  return noResponders(e) || noResponders((e as { cause?: unknown })?.cause);
}

function isWrongSequence(e: unknown): boolean {
  return e instanceof JetStreamApiError && e.code === 10071;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
