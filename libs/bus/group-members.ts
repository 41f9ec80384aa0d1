import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import { parseWire } from '../model/index.ts';
import { atMost, checkGroupName } from './planner-lease.ts';
import type { ServerClock } from './server-clock.ts';
import { bucketKeys, replicatedBucket } from './target-store.ts';

const MemberSchema = z.object({
  id: z.string(),
  leader: z.boolean(),
  term: z.number().int(),
  lagRows: z.number().int().nullable(),
  api: z.string().optional(),
  /**
   * Why this planner cannot follow the group's log (its /readyz), absent while it can: the leader's
   * status shows it, or a member refusing to drop its rows (probe13 R4) was seen on its own port only.
   */
  problem: z.string().optional(),
  /**
   * The log schema of this planner's release (the migrations it knows, LOG_SCHEMA_VERSION); absent
   * from releases before the field (probe15 U10). The leader's status names a member whose schema
   * is not its own: a follower of an older release cannot import newer rows and, older than
   * member problems, never said so (`ctl status` showed it as a follower with a small lag).
   */
  logSchema: z.number().int().optional(),
  at: z.string(),
});
/** One planner of a group as it last announced itself. */
export type GroupMember = z.infer<typeof MemberSchema>;

interface MembersOptions {
  readonly nc: NatsConnection;
  readonly group: string;
  readonly ttlMs: number;
  readonly replicas?: number;
  readonly self: () => Omit<GroupMember, 'at'>;
  /** Learns the offset to the NATS server's clock from the server's stamp on this planner's own record (probe12). */
  readonly clock?: ServerClock;
  /** The members bucket had limits of its own, taken off when it was opened (replicatedBucket). */
  readonly onLimitsReset?: (line: string) => void;
}

export function membersBucket(group: string): string {
  return `sb_members_${checkGroupName(group)}`;
}

/** One entry of the members bucket as read: its key and raw value. */
export interface MemberRecord {
  readonly key: string;
  readonly value: Uint8Array;
}

/**
 * The members in a list of bucket entries: one per planner id, its newest announcement. The same
 * key can come twice in one read (the KV key listing is a live consumer, so a planner announcing
 * while the listing runs is delivered again), and a record whose id is not the one its key names
 * (a stale or forged write) would let one planner speak for another; both are dropped here. A
 * record that does not parse is dropped alone.
 */
export function membersFromRecords(records: Iterable<MemberRecord>): GroupMember[] {
  const byId = new Map<string, GroupMember>();
  for (const r of records) {
    const m = parseWire(MemberSchema, r.value, `member ${r.key}`);
    if (!('value' in m) || memberKey(m.value.id) !== r.key) continue;
    const seen = byId.get(m.value.id);
    if (!seen || seen.at < m.value.at) byId.set(m.value.id, m.value);
  }
  return [...byId.values()];
}

/** The bucket key of a planner id: base64url, since ids may hold characters KV keys may not. */
function memberKey(id: string): string {
  return Buffer.from(id).toString('base64url');
}

/**
 * Presence of a group's planners: each puts its own record (role, term, replication lag, API URL)
 * into `sb_members_<group>` every TTL/4; the bucket's max age is 2 TTLs, so a planner that stops
 * (or is cut off) drops out of the list on its own. Keys are the ids in base64url (ids may hold
 * characters KV keys may not).
 */
export class GroupMembers {
  private timer: NodeJS.Timeout | undefined;
  private cached: GroupMember[] = [];

  private constructor(
    private kv: KV,
    private readonly options: MembersOptions,
  ) {}

  static async open(o: MembersOptions): Promise<GroupMembers> {
    return new GroupMembers(await GroupMembers.bucket(o), o);
  }

  private static bucket(o: MembersOptions): Promise<KV> {
    return replicatedBucket(o.nc, membersBucket(o.group), {
      history: 1,
      ttl: 2 * o.ttlMs,
      replicas: o.replicas,
      onLimitsReset: o.onLimitsReset,
    });
  }

  private self(): Omit<GroupMember, 'at'> {
    return this.options.self();
  }

  /** Announces now and then every TTL/4, refreshing the cached list each time. */
  start(): void {
    void this.beat();
    this.timer = setInterval(() => void this.beat(), Math.max(50, Math.floor(this.options.ttlMs / 4)));
  }

  /** The members as last read (at most TTL/4 old), this planner's own record current. */
  list(): GroupMember[] {
    const me = { ...this.self(), at: new Date().toISOString() };
    return [me, ...this.cached.filter((m) => m.id !== me.id)].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Announces at once (after a role change), so the list does not wait for the next beat. */
  async beat(): Promise<void> {
    const me = { ...this.self(), at: new Date().toISOString() };
    const mine = memberKey(me.id);
    try {
      const sent = Date.now();
      await this.kv.put(mine, JSON.stringify(me));
      const answered = Date.now();
      const records: MemberRecord[] = [];
      for (const k of await bucketKeys(this.options.nc, membersBucket(this.options.group))) {
        const e = await this.kv.get(k);
        if (e && e.operation === 'PUT') records.push({ key: k, value: e.value });
        // only this planner writes its key: the stamp is the server's time of the put just answered
        if (e && k === mine) this.options.clock?.sample(sent, e.created.getTime(), answered);
      }
      this.cached = membersFromRecords(records);
    } catch (e) {
      // NATS away: keep the last list (/healthz reports the planner cut off); store lost: make the bucket again
      void e;
      this.kv = await GroupMembers.bucket(this.options).catch(() => this.kv);
    }
  }

  /** Removes this planner's record, waiting at most `waitMs` for NATS (unanswered, it expires after 2 TTL). */
  async close(waitMs = 1000): Promise<void> {
    clearInterval(this.timer);
    await atMost(
      this.kv.delete(memberKey(this.self().id)).catch(() => undefined),
      waitMs,
    );
  }
}
