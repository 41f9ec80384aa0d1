import type { GroupMember, LeaderLease, LeaseHolder, NoLeader } from '../../libs/bus/index.ts';
import { LOG_SCHEMA_VERSION, type LogReplicator } from '../../libs/eventlog/index.ts';
import type { ClusterGuard } from './cluster-guard.ts';
import type { NatsPlannerBus } from './nats-planner-bus.ts';
import type { Planner } from './planner.ts';
import { claimStep, type ClaimRetry } from './claim-step.ts';

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
  /**
   * A follower behind the group's log whose copy has not moved for this long is not following:
   * its node words turn UNKNOWN "planner view stale" (default 5000 ms).
   */
  readonly staleAfterMs?: number;
  /** A follower more rows behind than this is stale however it moves (default 100,000). */
  readonly maxLagRows?: number;
  /** The cluster this planner watches against the one the group's log belongs to (none: a manifests source). */
  readonly cluster?: ClusterGuard;
}

/** How long a follower rebuilds its view on log moves for a version a node reported ahead of it (refreshAhead). */
const AHEAD_WAIT_MS = 1000;

/**
 * How long a follower waits to rebuild its view again after a rebuild failed, at least: the log
 * may not move for hours on a quiet cluster, and a failed rebuild waited for it to.
 */
const REFRESH_RETRY_MS = 2000;

/** How long a stopping planner waits for its bus writes in flight before it abandons them. */
export const STOP_GRACE_MS = 1000;

/** Resolves when `p` settles or at `until` (performance.now() ms), whichever comes first; never rejects. */
async function settledBy(p: Promise<unknown> | undefined, until: number): Promise<void> {
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => undefined),
    new Promise((r) => {
      timer = setTimeout(r, Math.max(0, until - performance.now()));
    }),
  ]);
  clearTimeout(timer);
}

/** What /status, /metrics and the redirect of writes show of the group. */
export interface GroupView {
  readonly group: string;
  readonly self: { readonly id: string; readonly leader: boolean; readonly term: number };
  readonly leader: LeaseHolder | undefined;
  /** With no current leader: the lease record last read (expired, released, or this planner cut off). */
  readonly lastLeader: { readonly id: string; readonly term: number; readonly renewedAgoS: number } | undefined;
  readonly lagRows: number | null;
  /** The newest version the group's log holds as this planner last knew it (undefined: not known, or no replicated log). */
  readonly groupVersion: number | undefined;
  /** Why this planner is cut off from its group (the lease bucket has not answered for a TTL). */
  readonly cutOff: string | undefined;
  /** No current leader as this planner sees it: for how long, why, whether it lasts; undefined while one is known. */
  readonly noLeader: NoLeader | undefined;
  /** The lease TTL: a group without a leader for longer is not ready (unledReason). */
  readonly ttlMs: number;
}

/**
 * Why every planner of the group is not ready: no planner has led it for longer than its lease
 * TTL (a crash's hand-over takes at most TTL + TTL/4 from the last renewal, so this does not flap
 * on a failover). Undefined otherwise. Before (probe8 J1), a group whose lease JetStream refused
 * (its storage full) had no leader while each planner's /readyz said 200.
 */
export function unledReason(v: Pick<GroupView, 'group' | 'noLeader' | 'ttlMs'>): string | undefined {
  const n = v.noLeader;
  if (!n || n.forMs <= v.ttlMs) return undefined;
  return `no planner has led group ${v.group} for longer than its lease TTL (${n.cause})`;
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
  private following: ReturnType<LogReplicator['follow']> | undefined;
  /** The line checkKey said while this planner holds off the lease for its key (undefined: it does not). */
  private keyHold: string | undefined;
  private chain: Promise<void> = Promise.resolve();
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshedAt = -1;
  /** When (performance.now()) the follower's view was last rebuilt, and how long that took. */
  private rebuiltAtMs = Number.NEGATIVE_INFINITY;
  private rebuildMs = 0;
  /** Follower: its view's rebuilds failing, since when, why, and when the next is tried (performance.now()). */
  private refreshFailed:
    | { readonly p: Planner; readonly since: number; readonly message: string; readonly retryAtMs: number }
    | undefined;
  /** Follower caught up while its view's rebuild failed: marked synced once one works. */
  private syncOnRefresh: Planner | undefined;
  /** A version a node reported that the follower's view lacked, and until when (performance.now()) it is waited for. */
  private ahead: { readonly version: number; readonly untilMs: number } | undefined;
  private stopped = false;
  private flushTimer: NodeJS.Timeout | undefined;
  /** Follower: its copy's position and since when it has not moved (see viewStale). */
  private progress: { seq: number; since: number } | undefined;
  /** The cluster mismatch last shown (see checkCluster), and on which planner. */
  private clusterSaid: { p: Planner; line: string | undefined } | undefined;

  constructor(private readonly options: PlannerGroupOptions) {}

  /** The Planner now acting for this process (leader or follower view). */
  planner(): Planner | undefined {
    return this.current;
  }

  role(): 'leader' | 'follower' {
    return this.current?.role ?? 'follower';
  }

  view(): GroupView {
    const leader = this.role() === 'leader' && this.options.lease.isLeader();
    const since = this.options.lease.sinceContactMs();
    const current = this.options.lease.leader();
    const lastSeen = current ? undefined : this.options.lease.lastLeader();
    const last = lastSeen?.holder;
    return {
      group: this.options.group,
      self: { id: this.options.id, leader, term: this.options.lease.term() },
      leader: current,
      lastLeader: last && {
        id: last.id,
        term: last.term,
        renewedAgoS: lastSeen!.renewedAgoS,
      },
      lagRows: this.options.replicator ? this.options.replicator.position().lagRows : null,
      groupVersion: this.options.replicator?.position().groupVersion,
      cutOff:
        since > this.options.lease.ttlMs
          ? `no answer from the group's lease bucket on NATS for ${Math.round(since)} ms (TTL ${this.options.lease.ttlMs} ms)`
          : undefined,
      noLeader: this.options.lease.noLeader(),
      ttlMs: this.options.lease.ttlMs,
    };
  }

  /** The member record this planner announces (group-members.ts). */
  member(api?: string): Omit<GroupMember, 'at'> {
    const v = this.view();
    const problem = this.role() === 'follower' ? this.following?.problem() : undefined;
    return {
      id: v.self.id,
      leader: v.self.leader,
      term: v.self.term,
      lagRows: v.lagRows,
      ...(api ? { api } : {}),
      ...(problem ? { problem: `cannot follow: ${problem}` } : {}),
      logSchema: LOG_SCHEMA_VERSION,
    };
  }

  /** Starts following; the caller starts the lease (whose callbacks are elected/deposed). */
  async start(): Promise<void> {
    this.options.bus.onFenced((why) => void this.options.lease.stepDown(`fenced: ${why}`));
    this.options.bus.onReset(() => {
      if (this.role() === 'leader') void this.current?.republish().catch(() => undefined);
    });
    this.options.bus.onStreamCheck(() => {
      if (this.role() === 'leader') void this.current?.checkStream();
    });
    await this.queue(() => this.becomeFollower());
  }

  elected(term: number): void {
    void this.queue(() => this.lead(term));
  }

  deposed(why: string): void {
    if (this.role() === 'leader') this.current?.noteFailure('lease', `stepped down (${why})`);
    // The writes (and a claim) in flight are given up now rather than waited out: each is
    // conditional on what this leader last saw, so one answered later lands only where it
    // continues exactly this leader's stream, log or key, and is refused once another leader
    // wrote. Waiting for them held the step-down for their NATS timeouts (seconds) when NATS is
    // what went away. Rows committed locally stay in the file; follow() keeps those the group holds.
    this.options.bus.abandonWrites(`stepped down (${why})`);
    this.options.replicator?.abandon(`stepped down (${why})`);
    void this.queue(() => this.follow(why));
  }

  /** Resolves once every role change queued so far has run. */
  async settled(): Promise<void> {
    await this.chain;
  }

  /**
   * Stops the planner. Bus writes and flushes in flight get `graceMs` (default 1 s) to be
   * answered, then are abandoned (as on a step-down): with NATS answering they take milliseconds,
   * and without it a SIGTERM must not wait out their timeouts. What the source delivered is
   * committed to the local file whatever happens (Planner.stop drains it).
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopped = true;
    clearInterval(this.refreshTimer);
    clearInterval(this.flushTimer);
    const until = performance.now() + graceMs;
    const abandon = () => {
      this.options.bus.abandonWrites('stopping');
      this.options.replicator?.abandon('stopping');
    };
    const giveUp = setTimeout(abandon, graceMs);
    try {
      await settledBy(this.chain, until); // a role change stuck on NATS (a claim's catch-up) is not waited out
      await this.current?.stop();
      // A leader hands its last rows (drained from the source by stop()) to the group before it
      // goes, within what is left of the grace: a flush started after the give-up would wait out
      // its own timeouts.
      if (this.role() === 'leader' && this.options.lease.isLeader() && performance.now() < until) {
        const last = this.options.replicator?.flush();
        await settledBy(last, until);
        last?.catch((e) => this.options.say(`last flush: ${(e as Error).message}`));
      }
    } finally {
      clearTimeout(giveUp);
      abandon(); // whatever is still in flight
    }
    await settledBy(this.following?.stop(), until);
  }

  private queue(step: () => Promise<void>): Promise<void> {
    const run = this.chain.then(() => (this.stopped ? undefined : step()));
    this.chain = run.catch((e) => this.options.say(`role change failed: ${(e as Error).message}`));
    return run;
  }

  private async lead(term: number): Promise<void> {
    if (!this.options.lease.isLeader() || this.options.lease.term() !== term) {
      // lost again before its turn (deposed: a step down is queued), or its connection dropped
      // since the win: not known to be its lease any more, and a lease held by a planner that
      // never took the leader role would stay held; given back (it holds off one TTL)
      if (this.options.lease.isSuspended() && this.options.lease.term() === term)
        await this.options.lease.stepDown(`cannot lead term ${term}: disconnected from NATS since it was elected`);
      return;
    }
    this.options.say(`elected leader of group ${this.options.group} in term ${term}`);
    clearInterval(this.refreshTimer);
    const heard = this.current?.nodes.lastHeard() ?? []; // what this follower heard, for the log (recordHeard)
    const beats = this.current?.nodes.heartbeatsHeard() ?? []; // not in the log: handed over (probe14 P6)
    const clocks = this.current?.nodes.clocksHeld() ?? []; // APPLYING→STALE goes on (probe20 P20-6)
    await this.current?.stop();
    await this.following?.stop();
    this.following = undefined;
    // A claim's steps are retried within the term while its lease holds (claim-step.ts): given up at
    // the first timeout, each winner after a NATS server's death cost a TTL of hold-off (probe5 H1).
    const retry: ClaimRetry = {
      stopIf: () => this.termLost(term),
      onRetry: (line) => this.options.say(`claiming term ${term}: ${line}`),
    };
    let wrongCluster: string | undefined;
    try {
      const r = this.options.replicator;
      if (r) await claimStep('claiming the replicated log', () => r.claim(term), retry);
      wrongCluster = this.clusterRefusal();
      if (wrongCluster === undefined) await this.options.bus.claim(term, this.options.id, retry);
      const lost = this.termLost(term);
      if (lost) throw new Error(lost);
    } catch (e) {
      const why = `cannot lead term ${term}: ${(e as Error).message}`;
      this.options.say(why);
      await this.becomeFollower();
      await this.options.lease.stepDown(why);
      return;
    }
    if (wrongCluster !== undefined) return this.refuseToLead(term, wrongCluster);
    if (this.stopped) return; // stopped while claiming: no leader Planner after stop()
    const p = this.options.makePlanner('leader');
    for (const b of beats) p.nodes.adoptHeartbeat(b.heartbeat, b.at); // before anyone reads its status
    p.nodes.adoptClocks(clocks);
    try {
      // Restored (in slices: the lease renews meanwhile) before it is shown, so nothing reads a
      // planner without its views; the view it stepped from answers until then, as during the claim.
      await p.restore();
      if (this.stopped) return void (await p.stop().catch(() => undefined)); // as below
      if (this.termLost(term)) {
        // lost while restoring (deposed: its step-down, queued, finds a follower and is done)
        await p.stop().catch(() => undefined);
        await this.becomeFollower();
        this.options.onRoleChange?.();
        return;
      }
      this.current = p;
      await p.start();
    } catch (e) {
      // A planner that cannot lead (its source cannot be made, its first publish fails) must not
      // keep the lease: renewed by a process with no working leader, it held the group for good
      // while a healthy replica followed it (review5 F7). It follows again and steps down (holding
      // off one TTL), so another replica leads; alone, it tries again after the hold-off.
      const why = `cannot lead term ${term}: ${(e as Error).message}`;
      this.options.say(why);
      await p.stop().catch(() => undefined);
      await this.becomeFollower();
      this.current?.noteFailure('lease', why); // shown (lastError) until it leads
      await this.options.lease.stepDown(why);
      this.options.onRoleChange?.();
      return;
    }
    await p.recordHeard(heard).catch((e) => {
      this.options.say(`recording the reports heard before this role change: ${(e as Error).message}`);
      p.noteFailure('ack', e);
    });
    // stop() waits for a role change only its grace long: one that finishes later must not leave
    // a timer reading a log that is closed by then.
    if (this.stopped) return void (await p.stop().catch(() => undefined));
    this.flushRows(p);
    this.options.onRoleChange?.();
  }

  /** Why this planner may no longer act for `term` (its lease for it is gone, or it stops); undefined: it may. */
  private termLost(term: number): string | undefined {
    if (this.stopped) return 'the planner is stopping';
    if (!this.options.lease.isLeader() || this.options.lease.term() !== term)
      return `the lease for term ${term} is no longer held`;
    return undefined;
  }

  /**
   * Elected, its log caught up with the group's: the line refusing to lead when the log belongs to
   * another cluster (and this planner does not adopt it); otherwise records this planner's cluster
   * if the log holds none yet (the first leader) or, adopting, another.
   */
  private clusterRefusal(): string | undefined {
    const c = this.options.cluster;
    const line = c?.mismatch();
    if (line !== undefined && !c!.adopts) return line;
    c?.record();
    return undefined;
  }

  /** Follows without ever contending again while the mismatch lasts (checkCluster lifts it). */
  private async refuseToLead(term: number, line: string): Promise<void> {
    this.options.say(`cannot lead term ${term}: ${line}`);
    await this.becomeFollower();
    await this.options.lease.stepDown(line, Number.POSITIVE_INFINITY);
    this.options.onRoleChange?.();
  }

  /**
   * Follower: a log that belongs to another cluster is shown (lastError, /readyz 503, said once)
   * and keeps this planner out of elections, however long it follows; once the log names its
   * cluster again (another planner adopted it) it contends as before.
   */
  private checkCluster(p: Planner): void {
    const c = this.options.cluster;
    if (!c || this.current !== p || p.role !== 'follower') return;
    const line = c.mismatch();
    const before = this.clusterSaid;
    if (before?.p === p && before.line === line) return;
    this.clusterSaid = { p, line };
    if (line !== undefined) {
      if (before?.line !== line) this.options.say(line);
      p.noteFailure('cluster', line);
      if (!c.adopts) void this.options.lease.stepDown(line, Number.POSITIVE_INFINITY);
    } else if (before?.line !== undefined) {
      p.noteRecovered('cluster');
      // held off only by the mismatch (see above): contend again from now, unless its key holds it off (checkKey)
      if (!c.adopts && !this.options.lease.isLeader() && this.keyHold === undefined)
        void this.options.lease.stepDown("the group's log names this planner's cluster again", 0);
    }
  }

  /**
   * Leader: rows that no bus write follows (ACKs, events that make no new version, operations
   * refused midway) reach the group within `flushMs` too; a fence seen here deposes the leader.
   */
  private flushRows(p: Planner): void {
    const r = this.options.replicator;
    if (!r) return;
    clearInterval(this.flushTimer);
    this.flushTimer = setInterval(() => {
      if (this.stopped || this.current !== p || !this.options.lease.isLeader()) return;
      r.flush().catch((e: Error) => {
        if (e.name === 'FencedError') void this.options.lease.stepDown(`fenced: ${e.message}`);
      });
    }, this.options.flushMs ?? 200);
    this.flushTimer.unref?.();
  }

  private async follow(why: string): Promise<void> {
    if (this.role() === 'follower') return;
    this.options.say(`stepping down: ${why}`);
    clearInterval(this.flushTimer);
    await this.current?.stop();
    await this.becomeFollower();
    // Shown while it matters: until this follower has caught up with the group's log (then it is a
    // healthy follower, and lastError names what fails now), or until it leads again.
    const p = this.current;
    p?.noteFailure('lease', `stepped down (${why})`);
    void this.following?.caughtUp.then(
      () => {
        if (this.current === p) p?.noteRecovered('lease');
      },
      () => undefined,
    );
    this.options.onRoleChange?.();
  }

  private async becomeFollower(): Promise<void> {
    const beats = this.current?.nodes.heartbeatsHeard() ?? []; // not in the log: handed over (probe14 P6)
    const clocks = this.current?.nodes.clocksHeld() ?? []; // APPLYING→STALE goes on (probe20 P20-6)
    this.following = this.options.replicator?.follow(() => {
      if (this.current) this.refreshAhead(this.current);
    });
    const p = this.options.makePlanner('follower');
    for (const b of beats) p.nodes.adoptHeartbeat(b.heartbeat, b.at);
    p.nodes.adoptClocks(clocks);
    p.onViewBehind((version) => {
      this.ahead = { version: Math.max(version, this.ahead?.version ?? 0), untilMs: performance.now() + AHEAD_WAIT_MS };
      this.refreshAhead(p);
    });
    await p.start();
    if (this.stopped) return void (await p.stop().catch(() => undefined)); // as in lead()
    this.current = p;
    this.refreshedAt = this.options.replicator?.position().localSeq ?? -1;
    if (!this.following) {
      this.checkCluster(p);
      p.markSynced(true); // no replicated log: the file is all there is
    } else {
      void this.following.caughtUp
        .then(() => {
          if (this.current === p)
            return this.refresh(p).then(() => {
              if (this.current !== p) return;
              // not synced on a view its log could not rebuild: the next rebuild that works marks it
              if (this.refreshFailed?.p === p) this.syncOnRefresh = p;
              else this.markFollowerSynced(p);
            });
        })
        .catch((e) => this.options.say(`replicated log: ${(e as Error).message}`));
    }
    clearInterval(this.refreshTimer);
    this.progress = undefined;
    this.refreshTimer = setInterval(() => {
      if (this.stopped) return;
      try {
        // As refreshAhead: none within four of the last rebuild's durations of it. A rebuild is
        // O(cluster) (~16 s at 10,000 services × 250 endpoints once a checkpoint is there), and a
        // follower catching up, or following a leader that publishes often, rebuilt back to back:
        // all its thread, the batches it applies waiting between the slices. Its caught-up refresh
        // and the one a node's report asks for (refreshAhead) do not wait for the timer.
        if (!this.refreshing && performance.now() - this.rebuiltAtMs >= 4 * this.rebuildMs) void this.refresh(p);
        if (this.current === p) {
          p.markStale(this.viewStale());
          this.showFollowing(p);
          this.checkKey(p);
          this.showNoLeader(p);
        }
      } catch (e) {
        // A timer must never throw: uncaught, it ends the process (a log closed under it did).
        this.options.say(`follower refresh: ${(e as Error).message}`);
      }
    }, this.options.refreshMs ?? 500);
    this.refreshTimer.unref?.();
  }

  /**
   * Follower: why its view of the group's log is not current, or undefined while it follows. Cut
   * off from the group, or behind the log's end with a copy that has not moved for staleAfterMs
   * (the replicated log stopped or keeps failing), or more than maxLagRows behind (review F9).
   */
  private viewStale(): string | undefined {
    const r = this.options.replicator;
    if (!r) return undefined;
    const cutOff = this.view().cutOff;
    if (cutOff) return cutOff;
    const { localSeq, lagRows } = r.position();
    // a duration: monotonic (probe12: a wall clock stepped back an hour kept a stopped copy "fresh" for that hour)
    const now = performance.now();
    if (lagRows === 0 || this.progress?.seq !== localSeq) this.progress = { seq: localSeq, since: now };
    if (lagRows > (this.options.maxLagRows ?? 100_000)) return `${lagRows} rows behind the group's log`;
    const still = now - this.progress.since;
    if (lagRows > 0 && still > (this.options.staleAfterMs ?? 5000))
      return `its copy of the group's log has not moved for ${Math.round(still / 1000)} s, ${lagRows} rows behind`;
    const failed = this.refreshFailed?.p === this.current ? this.refreshFailed : undefined;
    const failing = failed === undefined ? 0 : now - failed.since;
    if (failed && failing > (this.options.staleAfterMs ?? 5000))
      return `its view could not be rebuilt from its copy of the group's log for ${Math.round(failing / 1000)} s: ${failed.message}`;
    return undefined;
  }

  /**
   * Follower: a replicated log that keeps failing (its file takes no rows: a full disk) is this
   * planner's failure, `cannot follow: ...` in lastError and /readyz, until a catch-up works again
   * (probe5 H4: it said ready, lastError null, the cause on stderr only).
   */
  private showFollowing(p: Planner): void {
    const problem = this.following?.problem();
    const shown = p.failure('cannot follow');
    if (problem !== undefined && shown !== `cannot follow: ${problem}`) p.noteFailure('cannot follow', problem);
    else if (problem === undefined && shown !== undefined) p.noteRecovered('cannot follow');
  }

  /**
   * Follower: while its replica refuses the group's log past its copy (signed with another key
   * than this planner's --signing-key: probe16 I4), it does not contend for the lease: elected at
   * a failover it led with none of the group's history and signed versions with a key the
   * group's appliers do not trust (they kept their rules and dropped every target: `bad
   * signature`). Said once on stderr, shown in lastError and /readyz (`signing key: …`) while it
   * lasts; it contends again once its replica takes the group's log (a planner of its key led).
   * A key rotation (every planner restarted with the new key) is led by the planner whose copy
   * holds the group's whole log: it refused nothing past it.
   */
  private checkKey(p: Planner): void {
    // both say another key leads: the group's log past this copy and the lease's last record (a
    // forged message alone, at the log's end, must not keep every replica out: claim steps over it)
    const refused = this.options.replicator?.refused();
    const foreign = refused === undefined ? undefined : this.options.lease.foreignRecord();
    const line =
      foreign === undefined
        ? undefined
        : `not contending for the lease of group ${this.options.group}: ${refused}; and the ${foreign.replace(/; ignored$/, '')}: fix this planner's --signing-key (docs/ha.md)`;
    if (line !== undefined) {
      // said once as the hold starts (the refused seq in the line moves with every batch the group writes)
      if (this.keyHold === undefined) {
        this.options.say(line);
        void this.options.lease.stepDown(line, Number.POSITIVE_INFINITY);
      }
      this.keyHold = line;
      if (p.failure('signing key') !== `signing key: ${line}`) p.noteFailure('signing key', line);
      return;
    }
    if (p.failure('signing key') !== undefined) p.noteRecovered('signing key');
    if (this.keyHold === undefined) return;
    this.keyHold = undefined;
    const c = this.options.cluster;
    // held off by a cluster mismatch too: that one lifts it (checkCluster)
    if ((c?.mismatch() === undefined || c.adopts) && !this.options.lease.isLeader())
      void this.options.lease.stepDown("this planner's replica takes the group's log again", 0);
  }

  /**
   * Follower: a group nobody has led for longer than a TTL is shown in lastError as `no leader:
   * CAUSE` (the lease's own line said it once on stderr) until a leader is known again.
   */
  private showNoLeader(p: Planner): void {
    const v = this.view();
    const shown = p.failure('no leader');
    const cause = unledReason(v) === undefined ? undefined : v.noLeader?.cause;
    if (cause !== undefined && shown !== `no leader: ${cause}`) p.noteFailure('no leader', cause);
    else if (cause === undefined && shown !== undefined) p.noteRecovered('no leader');
  }

  /**
   * Follower: rebuilds the view once the replicated log applied new rows. One at a time (each runs in slices, seconds on
   * a large cluster): a caller arriving meanwhile waits for it, then looks again. Never rejects.
   */
  private async refresh(p: Planner): Promise<void> {
    while (this.refreshing) await this.refreshing;
    if (this.current !== p || p.role !== 'follower' || !this.options.replicator) return;
    const at = this.options.replicator.position().localSeq;
    const failed = this.refreshFailed?.p === p ? this.refreshFailed : undefined;
    // after a failure: again at its retry time, whether the log moved or not
    if (failed ? performance.now() < failed.retryAtMs : at === this.refreshedAt) return;
    this.refreshedAt = at;
    const t0 = performance.now();
    const run = (async () => {
      let error: Error | undefined;
      try {
        this.checkCluster(p);
        await p.refresh();
      } catch (e) {
        error = e as Error;
      }
      this.rebuiltAtMs = performance.now();
      this.rebuildMs = this.rebuiltAtMs - t0;
      if (this.stopped || this.current !== p) return;
      if (error) this.refreshFailedWith(p, error.message);
      else if (failed) this.refreshWorks(p, failed.since);
    })();
    this.refreshing = run;
    await run;
    this.refreshing = undefined;
  }

  private refreshing: Promise<void> | undefined;

  /**
   * Follower: its view could not be rebuilt from its copy of the log. Said on stderr when the cause
   * is new, in lastError and /readyz (`view rebuild: …`) while it lasts, the view marked stale
   * after staleAfterMs (viewStale), and tried again after REFRESH_RETRY_MS (or four rebuilds'
   * durations) whether the log moves or not.
   */
  private refreshFailedWith(p: Planner, message: string): void {
    const before = this.refreshFailed?.p === p ? this.refreshFailed : undefined;
    const now = performance.now();
    const waitMs = Math.max(REFRESH_RETRY_MS, 4 * this.rebuildMs);
    if (before?.message !== message)
      this.options.say(
        `follower refresh: ${message}; its view stays as it was, tried again in ${Math.round(waitMs)} ms`,
      );
    this.refreshFailed = { p, since: before?.since ?? now, message, retryAtMs: now + waitMs };
    p.noteFailure('view rebuild', message);
  }

  private refreshWorks(p: Planner, since: number): void {
    this.refreshFailed = undefined;
    this.options.say(
      `follower refresh: its view rebuilt again after ${Math.round((performance.now() - since) / 1000)} s of failures`,
    );
    p.noteRecovered('view rebuild');
    if (this.syncOnRefresh === p) {
      this.syncOnRefresh = undefined;
      this.markFollowerSynced(p);
    }
  }

  private markFollowerSynced(p: Planner): void {
    this.checkCluster(p);
    p.markSynced(true);
  }

  /**
   * Follower: a node reported a version its view lacks. It ACKs a few ms after the leader
   * published, long before the 500 ms timer's next rebuild, and often before this replica's copy
   * of the log has the batch (the leader's flush and the node's path race): the follower said
   * APPLYING where the leader said SYNCED for up to half a second per version (probe5 H8). So
   * the view is rebuilt now, and again as the replicated log applies batches, until it holds that
   * version (or AHEAD_WAIT_MS passed: a report of a version the log never gets, such as a node of
   * another group, costs no more). A rebuild is O(cluster): none starts within four of the last
   * one's durations of it, so on a large cluster under churn these take at most about a fifth of
   * the thread; the timer catches up.
   */
  private refreshAhead(p: Planner): void {
    const a = this.ahead;
    if (!a || this.current !== p) return;
    const now = performance.now();
    if (now > a.untilMs || (p.data.latest()?.version ?? 0) >= a.version) {
      this.ahead = undefined;
      return;
    }
    if (now - this.rebuiltAtMs < 4 * this.rebuildMs || this.refreshing) return;
    void this.refresh(p).then(() => {
      if (this.ahead === a && (p.data.latest()?.version ?? 0) >= a.version) this.ahead = undefined;
    });
  }
}
