import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { z } from 'zod';
import { parseWire } from '../model/index.ts';
import { checkGroupName } from './planner-lease.ts';
import { replicatedBucket } from './target-store.ts';

const MemberSchema = z.object({
  id: z.string(),
  leader: z.boolean(),
  term: z.number().int(),
  lagRows: z.number().int().nullable(),
  api: z.string().optional(),
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
}

export function membersBucket(group: string): string {
  return `sb_members_${checkGroupName(group)}`;
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
    return replicatedBucket(o.nc, membersBucket(o.group), { history: 1, ttl: 2 * o.ttlMs, replicas: o.replicas });
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
    try {
      await this.kv.put(Buffer.from(me.id).toString('base64url'), JSON.stringify(me));
      const out: GroupMember[] = [];
      for await (const k of await this.kv.keys()) {
        const e = await this.kv.get(k);
        if (!e || e.operation !== 'PUT') continue;
        const m = parseWire(MemberSchema, e.value, `member ${k}`);
        if ('value' in m) out.push(m.value);
      }
      this.cached = out;
    } catch (e) {
      // NATS away: keep the last list (/healthz reports the planner cut off); store lost: make the bucket again
      void e;
      this.kv = await GroupMembers.bucket(this.options).catch(() => this.kv);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.kv.delete(Buffer.from(this.self().id).toString('base64url')).catch(() => undefined);
  }
}
