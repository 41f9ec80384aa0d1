import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { z } from 'zod';
import { parseWire } from '../model/index.ts';
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
});
export type LeaseHolder = z.infer<typeof LeaseHolderSchema>;

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
  readonly onElected?: (term: number) => void;
  readonly onDeposed?: (why: string) => void;
  /** Told the first time a renewal fails after one that worked (NATS away, a slow server). */
  readonly onTrouble?: (line: string) => void;
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
 *   renew stops before its lease can pass to another, even when it was stopped (SIGSTOP) mid-way.
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
  private seen: LeaseHolder | undefined;
  /** The lease key's revision as last read, and when (monotonic) a read found it moved: a live leader moves it every TTL/4. */
  private seenRevision = 0;
  private seenMovedAt = Number.NEGATIVE_INFINITY;
  /** The last read found no lease record (expired or released). */
  private seenGone = false;
  private timer: NodeJS.Timeout | undefined;
  private validityTimer: NodeJS.Timeout | undefined;
  private ticking = false;
  private holdOffUntil = 0;
  private lastContact: number;
  private closed = false;
  private firstRound: Promise<void> | undefined;
  private troubled = false;
  readonly ttlMs: number;
  readonly me: Omit<LeaseHolder, 'term' | 'renewedAt'>;

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
  }

  /** Opens (or creates) the group's lease bucket; call start() to take part in elections. */
  static async open(o: LeaderLeaseOptions): Promise<LeaderLease> {
    const l = new LeaderLease(o);
    l.kv = await replicatedBucket(o.nc, leaseBucket(o.group), { history: 1, ttl: l.ttlMs, replicas: o.replicas });
    return l;
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
  lastLeader(): { holder: LeaseHolder; current: boolean; why: string } | undefined {
    const h = this.seen;
    if (!h) return undefined;
    const own = h.id === this.me.id && h.host === this.me.host && h.pid === process.pid && h.since === this.me.since;
    const current =
      this.leading ||
      (!own && !this.seenGone && this.now() - this.seenMovedAt <= this.ttlMs && this.sinceContactMs() <= this.ttlMs);
    const ago = Math.max(0, Math.round((Date.now() - Date.parse(h.renewedAt)) / 1000));
    const why = current
      ? `planner ${h.id} leads in term ${h.term}`
      : `no leader known (last: planner ${h.id}, term ${h.term}, renewed ${Number.isFinite(ago) ? ago : '?'} s ago)`;
    return { holder: h, current, why };
  }

  /** Milliseconds since the lease bucket last answered (a planner cut off from NATS sees it grow). */
  sinceContactMs(): number {
    return this.now() - this.lastContact;
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
    await this.kv.delete(KEY, { previousSeq: rev }).catch(() => undefined); // taken over already, or NATS away: the TTL frees it
  }

  /**
   * A clean stop: released, so another planner takes over at once. The release waits at most
   * `waitMs` (default 1 s) for NATS: unanswered, the key expires after its TTL anyway.
   */
  async close(waitMs = 1000): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.validityTimer);
    if (this.leading) {
      this.leading = false;
      await atMost(
        this.kv.delete(KEY, { previousSeq: this.revision }).catch(() => undefined),
        waitMs,
      );
    }
  }

  private record(): LeaseHolder {
    return { ...this.me, term: this.myTerm, renewedAt: new Date().toISOString() };
  }

  private lose(why: string): void {
    if (!this.leading) return;
    this.leading = false;
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
    }
  }

  private expired(): string {
    return `lease not renewed for ${Math.round(this.now() - (this.validUntil - 0.75 * this.ttlMs))} ms (TTL ${this.ttlMs} ms): stopped acting before it could expire`;
  }

  /**
   * Records how long this leader may act, and deposes it the moment that ends. The tick cannot be
   * relied on for that: a renewal sent while NATS is unreachable waits out its request timeout and
   * then the bucket's re-open waits out the JetStream API's, and no tick runs meanwhile — a leader
   * was seen reporting itself deposed ~6.7 s after its last renewal with a 3 s TTL, while its
   * status named no trouble. isLeader() already refused acting; this makes the step-down (and what
   * hangs on it: the planner's role, its status) happen on time too.
   */
  private holdUntil(validUntil: number): void {
    this.validUntil = validUntil;
    clearTimeout(this.validityTimer);
    const check = () => {
      if (!this.leading || this.closed) return;
      if (this.isLeader()) this.validityTimer = setTimeout(check, Math.max(0, this.validUntil - this.now()) + 1);
      else this.lose(this.expired());
      this.validityTimer?.unref?.();
    };
    this.validityTimer = setTimeout(check, Math.max(0, validUntil - this.now()) + 1);
    this.validityTimer.unref?.();
  }

  private async renew(): Promise<void> {
    if (!this.isLeader()) {
      this.lose(this.expired());
      return;
    }
    const sent = this.now();
    try {
      this.revision = await this.kv.update(
        KEY,
        JSON.stringify(this.record()),
        this.revision,
        Math.max(200, Math.floor(this.ttlMs / 4)),
      );
      this.lastContact = this.now();
      this.troubled = false;
      this.seen = this.record();
      this.seenMovedAt = this.lastContact;
      if (this.leading) this.holdUntil(sent + 0.75 * this.ttlMs);
      else await this.releaseLate(this.revision, 'its renewal was answered');
    } catch (e) {
      if (!this.troubled) this.options.onTrouble?.(`lease renewal failed: ${(e as Error).message}`);
      this.troubled = true;
      if (isWrongSequence(e)) {
        this.lastContact = this.now();
        const cur = await this.read().catch(() => undefined);
        this.lose(`lease taken over${cur ? ` by ${describeHolder(cur)}` : ''}`);
      }
      await this.reopenIfLost(e);
      // otherwise NATS is away: the next tick renews, or stops acting once validity ends
    }
  }

  /**
   * After a failed request: NATS may have lost its store (the bucket is gone; a write then meets
   * no responders, a read may even answer "no key"): make the bucket again (a no-op when it is
   * there; fails fast while NATS is away). The lease is then contended afresh.
   */
  private async reopenIfLost(_e: unknown): Promise<void> {
    try {
      this.kv = await replicatedBucket(this.options.nc, leaseBucket(this.options.group), {
        history: 1,
        ttl: this.ttlMs,
        replicas: this.options.replicas,
      });
    } catch {
      // still away: the next tick tries again
    }
  }

  private async contend(): Promise<void> {
    let entry;
    try {
      entry = await this.kv.get(KEY);
      this.lastContact = this.now();
    } catch (e) {
      await this.reopenIfLost(e);
      return; // NATS away
    }
    this.seenGone = !(entry && entry.operation === 'PUT');
    if (entry && entry.operation === 'PUT') {
      const h = parseWire(LeaseHolderSchema, entry.value, 'planner lease');
      const holder = 'value' in h ? { ...h.value, term: h.value.term || entry.revision } : undefined;
      this.seen = holder ?? this.seen;
      if (entry.revision !== this.seenRevision) {
        this.seenRevision = entry.revision;
        this.seenMovedAt = this.now();
      }
      // This very lease's record while it does not lead: a renewal (or a win) NATS stored after
      // this planner gave up on it (the request timed out, or the validity window closed first).
      if (holder && this.isMine(holder) && holder.since === this.me.since && holder.pid === process.pid) {
        await this.releaseLate(entry.revision, 'it found its own record');
        return;
      }
      // This planner's own record, left by a run that died on this host: take it back at once.
      const mine = holder && this.isMine(holder) && (holder.pid === process.pid || !alive(holder.pid));
      if (!mine || this.now() < this.holdOffUntil) return;
      await this.win(() => this.kv.update(KEY, JSON.stringify({ ...this.record(), term: 0 }), entry.revision));
      return;
    }
    if (this.now() < this.holdOffUntil) return;
    await this.win(() => this.kv.create(KEY, JSON.stringify({ ...this.record(), term: 0 })));
  }

  private isMine(h: LeaseHolder): boolean {
    return h.id === this.me.id && h.host === this.me.host;
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
    await this.kv.delete(KEY, { previousSeq: revision }).catch(() => undefined); // someone wrote since, or NATS away: the TTL frees it
  }

  /** Writes the claim; on success the revision is the term, recorded in the lease right away. */
  private async win(write: () => Promise<number>): Promise<void> {
    const sent = this.now();
    let rev: number;
    try {
      rev = await write();
    } catch (e) {
      if (!isWrongSequence(e)) await this.reopenIfLost(e);
      return; // another planner won the race (or NATS away): follow
    }
    this.lastContact = this.now();
    this.revision = rev;
    this.myTerm = rev;
    this.leading = true;
    this.holdUntil(sent + 0.75 * this.ttlMs);
    try {
      this.revision = await this.kv.update(KEY, JSON.stringify(this.record()), rev);
    } catch {
      // the next renewal tries again; followers read term 0 as "the entry's revision"
    }
    this.seen = this.record();
    this.seenMovedAt = this.now();
    this.seenGone = false;
    this.options.onElected?.(this.myTerm);
  }

  private async read(): Promise<LeaseHolder | undefined> {
    const e = await this.kv.get(KEY);
    if (!e || e.operation !== 'PUT') return undefined;
    const h = parseWire(LeaseHolderSchema, e.value, 'planner lease');
    return 'value' in h ? { ...h.value, term: h.value.term || e.revision } : undefined;
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

/** The bucket's stream is gone (NATS lost its store): JetStream says so, or nobody answers its subject. */
export function isStoreLost(e: unknown): boolean {
  if (e instanceof JetStreamApiError && e.code === 10059) return true;
  const err = e as { message?: string; isNoResponders?: () => boolean };
  return (
    /stream not found|no responders|503/i.test(err?.message ?? '') ||
    (typeof err?.isNoResponders === 'function' && err.isNoResponders())
  );
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
