import type { GroupMember, LeaderLease, LeaseHolder } from '../../libs/bus/index.ts';
import type { LogReplicator } from '../../libs/eventlog/index.ts';
import type { NatsPlannerBus } from './nats-planner-bus.ts';
import type { Planner } from './planner.ts';

export interface PlannerGroupOptions {
  readonly group: string;
  readonly id: string;
  readonly bus: NatsPlannerBus;
  readonly lease: LeaderLease;
  readonly replicator?: LogReplicator;
  /** A new Planner over the same log and bus, in the given role (not started). */
  readonly makePlanner: (role: 'leader' | 'follower') => Planner;
  readonly say: (line: string) => void;
  /** How often a follower reloads its view of the log when the replicated log moved (default 500 ms). */
  readonly refreshMs?: number;
  /** How often a leader flushes rows no bus write followed to the replicated log (default 200 ms). */
  readonly flushMs?: number;
  /** Told after every role change (the members list announces it at once). */
  readonly onRoleChange?: () => void;
}

/** What /status, /metrics and the redirect of writes show of the group. */
export interface GroupView {
  readonly group: string;
  readonly self: { readonly id: string; readonly leader: boolean; readonly term: number };
  readonly leader: LeaseHolder | undefined;
  readonly lagRows: number | null;
  /** Why this planner is cut off from its group (the lease bucket has not answered for a TTL). */
  readonly cutOff: string | undefined;
}

/**
 * One planner's part in its group: it starts as a follower (reads the log the replicated log keeps
 * current, hears node reports, writes nothing) and takes part in the election. Elected for a term,
 * it claims the replicated log (catching up to its end) and the versions stream for that term,
 * then runs a leader Planner: sources, versions, targets, rollouts, ACKs. Deposed (lease lost or
 * not renewed in time, or a write met another leader's fence), it stops that Planner and follows
 * again. Role changes run one at a time, in order.
 */
export class PlannerGroup {
  private current: Planner | undefined;
  private following: { caughtUp: Promise<void>; stop(): Promise<void> } | undefined;
  private chain: Promise<void> = Promise.resolve();
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshedAt = -1;
  private stopped = false;
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: PlannerGroupOptions) {}

  /** The Planner now acting for this process (leader or follower view). */
  planner(): Planner | undefined {
    return this.current;
  }

  role(): 'leader' | 'follower' {
    return this.current?.role ?? 'follower';
  }

  view(): GroupView {
    const leader = this.role() === 'leader' && this.o.lease.isLeader();
    const since = this.o.lease.sinceContactMs();
    return {
      group: this.o.group,
      self: { id: this.o.id, leader, term: this.o.lease.term() },
      leader: this.o.lease.leader(),
      lagRows: this.o.replicator ? this.o.replicator.position().lagRows : null,
      cutOff: since > this.o.lease.ttlMs ? `no answer from the group's lease bucket on NATS for ${Math.round(since)} ms (TTL ${this.o.lease.ttlMs} ms)` : undefined,
    };
  }

  /** The member record this planner announces (group-members.ts). */
  member(api?: string): Omit<GroupMember, 'at'> {
    const v = this.view();
    return { id: v.self.id, leader: v.self.leader, term: v.self.term, lagRows: v.lagRows, ...(api ? { api } : {}) };
  }

  /** Starts following; the caller starts the lease (whose callbacks are elected/deposed). */
  async start(): Promise<void> {
    this.o.bus.onFenced((why) => void this.o.lease.stepDown(`fenced: ${why}`));
    this.o.bus.onReset(() => {
      if (this.role() === 'leader') void this.current?.republish().catch(() => undefined);
    });
    await this.queue(() => this.becomeFollower());
  }

  elected(term: number): void {
    void this.queue(() => this.lead(term));
  }

  deposed(why: string): void {
    void this.queue(() => this.follow(why));
  }

  /** Resolves once every role change queued so far has run. */
  async settled(): Promise<void> {
    await this.chain;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.flushTimer);
    await this.chain;
    await this.current?.stop();
    // a leader hands its last rows (drained from the source by stop()) to the group before it goes
    if (this.role() === 'leader' && this.o.lease.isLeader()) await this.o.replicator?.flush().catch((e) => this.o.say(`last flush: ${(e as Error).message}`));
    await this.following?.stop();
  }

  private queue(step: () => Promise<void>): Promise<void> {
    const run = this.chain.then(() => (this.stopped ? undefined : step()));
    this.chain = run.catch((e) => this.o.say(`role change failed: ${(e as Error).message}`));
    return run;
  }

  private async lead(term: number): Promise<void> {
    if (!this.o.lease.isLeader() || this.o.lease.term() !== term) return; // lost again before its turn
    this.o.say(`elected leader of group ${this.o.group} in term ${term}`);
    clearInterval(this.refreshTimer);
    await this.current?.stop();
    await this.following?.stop();
    this.following = undefined;
    try {
      await this.o.replicator?.claim(term);
      await this.o.bus.claim(term, this.o.id);
    } catch (e) {
      const why = `cannot lead term ${term}: ${(e as Error).message}`;
      this.o.say(why);
      await this.becomeFollower();
      await this.o.lease.stepDown(why);
      return;
    }
    const p = this.o.makePlanner('leader');
    this.current = p;
    await p.start();
    this.flushRows(p);
    this.o.onRoleChange?.();
  }

  /**
   * Leader: rows that no bus write follows (ACKs, events that make no new version, operations
   * refused midway) reach the group within `flushMs` too; a fence seen here deposes the leader.
   */
  private flushRows(p: Planner): void {
    const r = this.o.replicator;
    if (!r) return;
    clearInterval(this.flushTimer);
    this.flushTimer = setInterval(() => {
      if (this.current !== p || !this.o.lease.isLeader()) return;
      r.flush().catch((e: Error) => {
        if (e.name === 'FencedError') void this.o.lease.stepDown(`fenced: ${e.message}`);
      });
    }, this.o.flushMs ?? 200);
    this.flushTimer.unref?.();
  }

  private async follow(why: string): Promise<void> {
    if (this.role() === 'follower') return;
    this.o.say(`stepping down: ${why}`);
    clearInterval(this.flushTimer);
    await this.current?.stop();
    await this.becomeFollower();
    this.current?.noteFailure('lease', `stepped down (${why})`); // shown until this planner leads again
    this.o.onRoleChange?.();
  }

  private async becomeFollower(): Promise<void> {
    this.following = this.o.replicator?.follow();
    const p = this.o.makePlanner('follower');
    await p.start();
    this.current = p;
    this.refreshedAt = this.o.replicator?.position().localSeq ?? -1;
    if (!this.following) p.markSynced(true); // no replicated log: the file is all there is
    else {
      void this.following.caughtUp.then(() => {
        if (this.current === p) {
          this.refresh(p);
          p.markSynced(true);
        }
      }).catch((e) => this.o.say(`replicated log: ${(e as Error).message}`));
    }
    clearInterval(this.refreshTimer);
    this.refreshTimer = setInterval(() => this.refresh(p), this.o.refreshMs ?? 500);
    this.refreshTimer.unref?.();
  }

  /** Follower: reloads its view once the replicated log applied new rows. */
  private refresh(p: Planner): void {
    if (this.current !== p || p.role !== 'follower' || !this.o.replicator) return;
    const at = this.o.replicator.position().localSeq;
    if (at === this.refreshedAt) return;
    this.refreshedAt = at;
    try {
      p.refresh();
    } catch (e) {
      this.o.say(`follower refresh: ${(e as Error).message}`);
    }
  }
}
