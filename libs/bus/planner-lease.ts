import { hostname } from 'node:os';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { replicatedBucket } from './target-store.ts';
import { z } from 'zod';
import { parseWire } from '../model/index.ts';

export const LEASE_BUCKET = 'sb_planner_lease';
const KEY = 'holder';

const LeaseHolderSchema = z.object({ id: z.string(), host: z.string(), pid: z.number().int(), since: z.string(), renewedAt: z.string() });
export type LeaseHolder = z.infer<typeof LeaseHolderSchema>;

/**
 * One acting planner per NATS until HA exists: a lease in a KV bucket whose max age is the TTL
 * (nats-server 2.9 has no per-key TTL; the bucket holds only this key). Taking it is a create
 * (fails when held), renewing a compare-and-set on the revision we wrote, every TTL/3. A planner
 * that finds the lease held by another live planner refuses to act (the caller exits non-zero
 * and names the holder). The same planner restarted (same id: host + log file) takes its own
 * lease back at once when the recorded process is gone from this host; otherwise, a holder that
 * stops renewing loses the lease when the TTL passes.
 */
export class PlannerLease {
  private revision = 0;
  private timer: NodeJS.Timeout | undefined;
  private lost: string | undefined;
  private kv!: KV;

  private constructor(private readonly nc: NatsConnection, readonly me: LeaseHolder, private readonly ttlMs: number, private readonly onLost: (why: string) => void, private readonly replicas = 1) {}

  /**
   * Acquires the lease or throws an Error naming the holder. `id` identifies this planner's log
   * (default host:db); `ttlMs` default 15 s.
   */
  static async acquire(o: { nc: NatsConnection; id: string; ttlMs?: number; onLost?: (why: string) => void; replicas?: number }): Promise<PlannerLease> {
    const now = new Date().toISOString();
    const l = new PlannerLease(o.nc, { id: o.id, host: hostname(), pid: process.pid, since: now, renewedAt: now }, o.ttlMs ?? 15_000, o.onLost ?? (() => {}), o.replicas);
    await l.take();
    l.timer = setInterval(() => void l.renew(), Math.max(100, Math.floor(l.ttlMs / 3)));
    return l;
  }

  /** Undefined while held; else why it was lost. Writers check it before every bus write. */
  lostReason(): string | undefined {
    return this.lost;
  }

  private async open(): Promise<void> {
    this.kv = await replicatedBucket(this.nc, LEASE_BUCKET, { history: 1, ttl: this.ttlMs, replicas: this.replicas });
  }

  private async take(): Promise<void> {
    await this.open();
    try {
      this.revision = await this.kv.create(KEY, JSON.stringify(this.me));
      return;
    } catch {
      // held (or a race): look at who holds it
    }
    const e = await this.kv.get(KEY);
    if (!e || e.operation !== 'PUT') {
      this.revision = await this.kv.create(KEY, JSON.stringify(this.me)); // expired in between
      return;
    }
    const h = parseWire(LeaseHolderSchema, e.value, 'planner lease');
    if ('value' in h && h.value.id === this.me.id && (h.value.pid === process.pid || (h.value.host === this.me.host && !alive(h.value.pid)))) {
      this.revision = await this.kv.update(KEY, JSON.stringify(this.me), e.revision); // our own, from a run that died
      return;
    }
    const who = 'value' in h ? describeHolder(h.value) : 'an unreadable holder record';
    throw new Error(`another planner holds the lease on this NATS (${who}); refusing to act until it stops (lease TTL ${this.ttlMs} ms)`);
  }

  /**
   * Renews now (after a reconnect, or when NATS lost its store and with it the lease bucket):
   * waiting for the next tick would leave the lease open to another planner meanwhile.
   */
  async renewNow(): Promise<void> {
    await this.renew();
  }

  private async renew(): Promise<void> {
    if (this.lost) return;
    try {
      this.revision = await this.kv.update(KEY, JSON.stringify({ ...this.me, renewedAt: new Date().toISOString() }), this.revision);
    } catch (e) {
      // Either NATS lost its store (the key is gone: take it again) or someone took it over.
      try {
        const cur = await this.kv.get(KEY).catch(() => null);
        if (!cur || cur.operation !== 'PUT') {
          await this.take();
          return;
        }
        const h = parseWire(LeaseHolderSchema, cur.value, 'planner lease');
        if ('value' in h && h.value.id === this.me.id && h.value.pid === process.pid) {
          this.revision = cur.revision;
          return;
        }
        this.lost = `lease taken over by ${'value' in h ? describeHolder(h.value) : 'another planner'}`;
        clearInterval(this.timer);
        this.onLost(this.lost);
      } catch (err) {
        if (/no responders|stream not found|10059/i.test((err as Error).message)) {
          try { await this.take(); } catch { /* NATS still away: next renewal */ }
        }
        void e; // disconnected: renew again on the next tick; the lease survives up to the TTL
      }
    }
  }

  /** Releases the lease (a clean stop lets another planner start at once). */
  async release(): Promise<void> {
    clearInterval(this.timer);
    if (this.lost) return;
    try {
      await this.kv.delete(KEY, { previousSeq: this.revision });
    } catch {
      // NATS away or already taken: the TTL frees it
    }
  }
}

export function describeHolder(h: LeaseHolder): string {
  return `planner ${h.id}, pid ${h.pid} on ${h.host}, since ${h.since}, renewed ${h.renewedAt}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
