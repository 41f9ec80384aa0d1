import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import type {
  Ack,
  ConfigRevision,
  HealthVerdict,
  Heartbeat,
  Nack,
  NodeState,
  NodeTarget,
  NoticeDelta,
  ProxyConfig,
  UnknownTargetFields,
} from '../model/index.ts';
import {
  MAX_REPORT_DETAIL,
  MAX_REPORT_ERROR,
  truncateReportText,
  UnknownFieldsNote,
  type ContentShapes,
} from '../model/index.ts';
import { NodeStateRenderer, type ClusterDataIndex } from '../planner/index.ts';
import { ResyncYielded, type Dataplane } from '../dataplane/index.ts';
import {
  ackSubject,
  decodeDelta,
  decodePatchedDelta,
  deltaSubject,
  withoutUnvouchedHashes,
  H,
  heartbeatSubject,
  payloadDigest,
  VersionReader,
  type Verifier,
} from '../bus/index.ts';
import { DataSync } from './data-sync.ts';
import { TargetWatcher } from './target-watcher.ts';
import { blamesDataplane, judgeHealth, type HealthProbe } from './health-verdict.ts';

export interface BusClock {
  now(): number;
}

/** What a node runs: what its last ACK said (the applier service persists it in --state-dir). */
export interface AppliedState {
  readonly version: number;
  readonly configRevision: number;
  readonly dataHash: string;
  readonly nodeStateHash: string;
}

export type SessionEvent =
  | { readonly type: 'target'; readonly target: NodeTarget }
  /**
   * The version just ACKed carried entry fields this release does not know (probe15 U7): applied
   * without them. Once per version that brought any; `fields`: all noted since this process started.
   */
  | { readonly type: 'unknown-fields'; readonly version: number; readonly fields: UnknownTargetFields }
  | {
      readonly type: 'ack';
      readonly ack: Ack;
      readonly path: string;
      readonly bytes: number;
      /** Services rebuilt from target notices' patches to reach this version (0: none). */
      readonly patched: number;
      readonly skipped: boolean;
      /**
       * The cluster data of the version just ACKed: what the node now runs (health check node
       * ports are served from it). It moves with the next version: read it in the handler.
       */
      readonly data: ClusterDataIndex;
      /** The proxy config of the revision just ACKed (where health check node ports listen: nodePortAddresses). */
      readonly config: ProxyConfig;
      /** The `issued` of each target key followed now: persisted, it is the next process's followedBefore. */
      readonly followed: Readonly<Record<string, number>>;
    }
  | { readonly type: 'nack'; readonly nack: Nack }
  | { readonly type: 'error'; readonly error: string }
  /**
   * A message dropped as not the planner's (unsigned, badly signed, malformed, foreign), or
   * (`old-target`) a signed target older than the one this node followed before its restart, or
   * (`patch`) a notice's patch not taken: unvouched, malformed, or not fitting this node's data
   * when rebuilt (the node then fetches the version's delta; docs/distribution.md).
   */
  | {
      readonly type: 'rejected';
      readonly kind: 'target' | 'artifact' | 'config' | 'old-target' | 'patch';
      readonly where: string;
      readonly reason: string;
    }
  /** The client's connection status; `error`: what the server said (status `error`: a refused credential, a permission). */
  | { readonly type: 'connection'; readonly status: string; readonly error?: string }
  /** A verdict computed anew (after an apply or on a re-probe; not when one is reused). */
  | { readonly type: 'verdict'; readonly verdict: HealthVerdict }
  /**
   * A periodic resync ran: the kernel read back and compared with what was applied; `kernelWrites`
   * > 0 means drift was found and repaired. `error` when it failed (the node then reports unhealthy).
   */
  | {
      readonly type: 'resync';
      /** What asked for it: `periodic` (the interval), a drift signal of the dataplane, or a probe that blamed the dataplane. */
      readonly trigger: string;
      readonly kernelWrites: number;
      /** Of kernelWrites, those the dataplane scheduled itself (ended drains): not drift. */
      readonly scheduledWrites?: number;
      readonly verified: boolean;
      readonly notes: readonly string[];
      readonly error?: string;
    }
  /**
   * A periodic resync gave way to an apply that arrived while it read the kernel (`afterMs` into
   * it, nothing written); it runs again, to its end, once that apply is done.
   */
  | { readonly type: 'resync-yielded'; readonly trigger: string; readonly afterMs: number };

export interface ApplierSessionOptions {
  /** Connected with inboxPrefix = nodeInboxPrefix(node) when server permissions are on. */
  readonly nc: NatsConnection;
  readonly node: string;
  readonly dataplane: Dataplane;
  readonly clock?: BusClock;
  readonly heartbeatMs?: number;
  /** Versions behind beyond which the node restarts from a checkpoint. Default 50. */
  readonly maxDeltaChain?: number;
  /** Delay before retrying after a transient failure (fetch error, version not yet readable). */
  readonly retryMs?: number;
  readonly onEvent?: (e: SessionEvent) => void;
  /** Period of the safety re-read of the target keys (ms; 0 = never). Default 30 000. */
  readonly targetRefreshMs?: number;
  /** How long a read of a target key waits for its answer (TargetWatcherOptions.timeoutMs; default 2 s, 5 s for a config revision). */
  readonly targetReadTimeoutMs?: number;
  /** The planner's public key: unsigned or badly signed targets and artifacts are dropped. */
  readonly verifier?: Verifier;
  /**
   * The data-path probe behind the health verdict sent with each ACK and in heartbeats. Without
   * it no verdict is sent (as from appliers older than the verdict; benches of the protocol alone).
   */
  readonly probe?: HealthProbe;
  /** Re-probe what is programmed this often and report it in heartbeats (ms; 0 = never). Default 10 000. */
  readonly probeIntervalMs?: number;
  /**
   * Re-read the kernel and repair drift (Dataplane.resync) this often while nothing changes
   * (ms; 0 = never). Default 0 here; the applier service sets it (`--resync-interval`, 60 s).
   * Without it, only objects a later apply touches are ever compared with the kernel again.
   */
  readonly resyncIntervalMs?: number;
  /**
   * What the node warns of now (services/applier/node-warnings.ts: already bounded and cut), sent
   * in every heartbeat; none: the field is left out, as by appliers older than it.
   */
  readonly warnings?: () => readonly string[];
  /** The `issued` of each target key the previous process followed (the ack event's `followed`, persisted). */
  readonly followedBefore?: Readonly<Record<string, number>>;
  /**
   * What the previous process last ACKed (the persisted state): said, as not verified, in every
   * heartbeat and in status() until this process's first apply verifies (lastAckedBeforeStart).
   * Never a reason to skip that apply.
   */
  readonly lastAckedBefore?: Pick<AppliedState, 'version' | 'configRevision'>;
  /**
   * The entry fields this applier knows (libs/model/unknown-fields.ts); default: this release's
   * schemas. A test passes fewer to stand for an applier of an older release.
   */
  readonly knownFields?: ContentShapes;
}

/**
 * The node side of distribution: watch the target, fetch and verify data, render, apply through
 * the Dataplane, ACK or NACK, heartbeat. One reconcile runs at a time; a target that moves during
 * it triggers another. Fail-static: nothing here ever calls dataplane.cleanup(); losing NATS or the
 * planner leaves the programmed state as it is, and a state whose hash equals what this process
 * programmed and verified is not applied again. Nothing else counts as programmed: the first
 * apply of a process always runs (a restart does not trust what an earlier process wrote: the
 * kernel may have lost it, e.g. a reboot), and after an apply that threw or did not verify the
 * kernel is unknown until an apply verifies again, whatever target comes next.
 */
export class ApplierSession {
  private readonly clock: BusClock;
  private readonly sync: DataSync;
  private readonly reader: VersionReader;
  private watcher: TargetWatcher | undefined;
  private applied: AppliedState | undefined;
  /**
   * The last ACK or NACK sent, sent again after every reconnect. Reports are core NATS (at most
   * once): one written into a connection that turned out half-open (a link that drops everything
   * without a reset, noticed only by the unanswered PINGs seconds later) is lost, and a heartbeat
   * repairs only the status word; the rollout gate and the ack log read ACKs, so a canary that
   * applied a revision was failed at the wave timeout and rolled back, and `audit node` named the
   * revision before (probe14 P1). The planner records a repeat once (EventLog.recordAck is idempotent).
   */
  private lastReport: Ack | Nack | undefined;
  /** The node state this process last applied AND verified; undefined while the kernel is unknown. */
  private programmedHash: string | undefined;
  /**
   * An apply threw or did not verify: the kernel may hold any part of what was attempted. The
   * next reconcile applies (a full cycle in the dataplane), even for the target already applied
   * (a config rollback, a pin back) or a state equal to the last verified one; no periodic
   * resync runs towards a state nobody verified.
   */
  private kernelUnknown = false;
  /** A new or re-issued target came: check the data (and config) held against the bus before trusting the numbers. */
  private recheck = false;
  private config: ConfigRevision | undefined;
  /** This node's rendered state for (data held, config revision), moved per delta: O(change). */
  private renderer: { readonly revision: number; readonly r: NodeStateRenderer } | undefined;
  private lastError = '';
  /** Per subject (ACK, heartbeat), why its last report could not be sent; absent once one was. */
  private readonly unsent = new Map<string, string>();
  /** setBusProblem's: what is wrong with the connection though it is up ('' when nothing). */
  private busProblem = '';
  /** A target whose published content failed verification: not retried until the target moves. */
  private poisoned = '';
  private running: Promise<void> | undefined;
  private dirty = false;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];
  private readonly unsubscribe: (() => void)[] = [];
  private retry: NodeJS.Timeout | undefined;
  /** The latest verdict, and the node-state hash and state it is about. */
  private health: { readonly verdict: HealthVerdict; readonly hash: string } | undefined;
  private programmedState: NodeState | undefined;
  private probing = false;
  private resyncDue = false;
  /** What asked for the resync that is due (the first since the last one ran). */
  private resyncTrigger = 'periodic';
  /** Fired by kick() while a resync that may give way runs (see resyncOnce). */
  private resyncGiveWay: AbortController | undefined;
  /** The due resync already gave way once: it runs to its end now. */
  private resyncGaveWay = false;
  /** Re-probe as soon as the due resync ran: it was asked for because the dataplane looked broken. */
  private reprobeAfterResync = false;
  /**
   * A probe blamed the dataplane and the resync that followed found nothing to repair: the fault
   * is outside what we programmed (a foreign drop rule, routing), so further failing re-probes
   * leave it to the periodic resync instead of making every re-probe a kernel read. Reset by a
   * passing probe or a resync that repaired something.
   */
  private faultResyncSpent = false;
  /** Why the last periodic resync failed ('' once one succeeded or an apply verified again). */
  private resyncError = '';
  /**
   * Random per session (one per applier process), in every ACK, NACK and heartbeat: two processes
   * reporting as one node (a cloned host, a second applier with the same --node) show as two ids
   * on the planner (ERROR "two appliers report as NODE").
   */
  private readonly instance = randomBytes(8).toString('hex');
  /** unknownFields.count when the last 'unknown-fields' event was emitted. */
  private unknownSaid = 0;

  private constructor(private readonly options: ApplierSessionOptions) {
    this.clock = options.clock ?? { now: () => Date.now() };
    this.reader = new VersionReader(options.nc, {
      verifier: options.verifier,
      onRejected: (where, reason) => this.emit({ type: 'rejected', kind: 'artifact', where, reason }),
    });
    this.sync = new DataSync(
      this.reader,
      options.maxDeltaChain ?? 50,
      new UnknownFieldsNote(options.knownFields),
      (version, reason) =>
        this.emit({
          type: 'rejected',
          kind: 'patch',
          where: deltaSubject(version),
          reason: `notice patch: ${reason} (fetching the delta)`,
        }),
    );
  }

  static async start(o: ApplierSessionOptions): Promise<ApplierSession> {
    const s = new ApplierSession(o);
    s.watchConnection();
    s.watcher = await TargetWatcher.start({
      nc: o.nc,
      node: o.node,
      onChange: (t) => {
        s.emit({ type: 'target', target: t });
        s.recheck = true;
        s.kick();
      },
      onReissue: () => {
        s.recheck = true;
        s.kick();
      },
      onDelta: (d, where, signed) => s.takeNoticeDelta(d, where, signed),
      onPatch: (p, where, signed) => s.takeNoticePatch(p, where, signed),
      onError: (e) => s.emit({ type: 'error', error: e }),
      onRejected: (where, reason) =>
        s.emit({ type: 'rejected', kind: /^config/.test(where) ? 'config' : 'target', where, reason }),
      onRefused: (where, reason) => s.emit({ type: 'rejected', kind: 'old-target', where, reason }),
      refreshMs: o.targetRefreshMs,
      ...(o.targetReadTimeoutMs !== undefined ? { timeoutMs: o.targetReadTimeoutMs } : {}),
      verifier: o.verifier,
      followedBefore: o.followedBefore,
    });
    s.kick();
    const hb = o.heartbeatMs ?? 5000;
    if (hb > 0) s.timers.push(setInterval(() => s.heartbeat(), hb));
    const every = o.probeIntervalMs ?? 10_000;
    if (o.probe && every > 0) s.timers.push(setInterval(() => void s.reprobe(), every));
    const resyncEvery = o.resyncIntervalMs ?? 0;
    if (resyncEvery > 0) s.timers.push(setInterval(() => s.requestResync('periodic'), resyncEvery));
    return s;
  }

  /** What is programmed now (undefined before the first successful apply). */
  status(): {
    applied: AppliedState | undefined;
    target: NodeTarget | undefined;
    lastError: string;
    waitingFor: string | undefined;
    health: HealthVerdict | undefined;
    /** Until an apply of this process verified: what the node last ACKed before it started (not checked). */
    lastAckedBeforeStart: { version: number; configRevision: number } | undefined;
    /** Why the targets offered now are dropped (their signature, their age): `target` is then the last one taken, not the planner's. */
    dropping: string | undefined;
    /** Entry fields of the targets since this process started that its release does not know (none: undefined). */
    unknownTargetFields: UnknownTargetFields | undefined;
  } {
    return {
      unknownTargetFields: this.sync.unknownFields.value(),
      applied: this.applied,
      lastAckedBeforeStart: this.lastAckedBeforeStart(),
      target: this.watcher?.current(),
      lastError: this.problem(),
      waitingFor: this.watcher?.waitingFor(),
      health: this.health?.verdict,
      dropping: this.watcher?.dropping(),
    };
  }

  /** Stops watching and heartbeating. Leaves the dataplane (and the kernel) exactly as it is. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const u of this.unsubscribe) u();
    if (this.retry) clearTimeout(this.retry);
    await this.watcher?.stop();
    await this.running;
  }

  /**
   * What the previous process last ACKed, while this one has verified nothing: the kernel may run
   * it (fail-static) or not (a reboot); the first apply reads it back. appliedVersion 0 alone read
   * as "runs nothing" in heartbeats and `ctl status`.
   */
  private lastAckedBeforeStart(): { version: number; configRevision: number } | undefined {
    const b = this.options.lastAckedBefore;
    return this.applied || !b ? undefined : { version: b.version, configRevision: b.configRevision };
  }

  /** The apply's last error, else what is wrong with the bus connection, else why targets are dropped (a planner key mismatch), else ''. */
  private problem(): string {
    return this.lastError || this.busProblem || (this.watcher?.dropping() ?? '');
  }

  /**
   * What is wrong with this node's NATS connection though it is up (a subscription NATS refuses:
   * probe19 P19-1), '' or undefined once it is over: in the heartbeat (unhealthy, the reason as its
   * detail) at once, so the planner's row names it rather than "running version N, target N+1".
   */
  setBusProblem(why: string | undefined): void {
    const next = why ?? '';
    if (next === this.busProblem) return;
    const over = next === '' && this.busProblem !== '';
    this.busProblem = next;
    this.heartbeat();
    // over: the notices of what moved meanwhile were lost, and the re-read after the reconnect
    // may have run while the reply inbox was still refused: read the targets again now
    if (over && !this.stopped) void this.watcher?.refresh().then(() => this.kick());
  }

  heartbeat(): void {
    const warnings = this.options.warnings?.() ?? [];
    const before = this.lastAckedBeforeStart();
    const unknownTargetFields = this.sync.unknownFields.value();
    const hb: Heartbeat = {
      node: this.options.node,
      appliedVersion: this.applied?.version ?? 0,
      appliedConfigRevision: this.applied?.configRevision ?? 0,
      ...(this.applied ? { dataHash: this.applied.dataHash, nodeStateHash: this.applied.nodeStateHash } : {}),
      ...(before ? { lastAckedBeforeStart: before } : {}),
      mode: this.options.dataplane.mode,
      healthy: this.problem() === '' && this.resyncError === '',
      // cut here, marked, rather than refused whole by the planner's report size bound
      detail: truncateReportText(this.problem() || this.resyncError, MAX_REPORT_DETAIL),
      ...(this.health ? { health: this.health.verdict } : {}),
      instance: this.instance,
      ...(warnings.length > 0 ? { warnings: [...warnings] } : {}),
      ...(unknownTargetFields ? { unknownTargetFields } : {}),
      at: new Date(this.clock.now()).toISOString(),
    };
    this.publish(heartbeatSubject(this.options.node), hb);
  }

  /**
   * The verdict on `state` (programmed and read back as `hash`): probed anew, or the last one
   * when it is about the same programmed state and `reuse` allows (a data version that did not
   * change this node's state needs no new connections).
   */
  private async judge(state: NodeState, hash: string, reuse: boolean): Promise<HealthVerdict | undefined> {
    if (!this.options.probe) return undefined;
    if (reuse && this.health?.hash === hash) return this.health.verdict;
    const outcome = await this.options.probe.probe(state);
    const verdict = judgeHealth({ stateVerified: true, outcome, at: new Date(this.clock.now()).toISOString() });
    this.health = { verdict, hash };
    this.emit({ type: 'verdict', verdict });
    return verdict;
  }

  /**
   * The periodic re-probe of what is programmed; a changed verdict is heartbeated at once. Its
   * `stateVerified` is what the newest kernel read-back found (the apply's verify, or a resync
   * since: a failed one says why), not a claim about the kernel now. A probe that blames the
   * dataplane asks for a resync at once (once per fault: see faultResyncSpent) and re-probes after it.
   */
  private async reprobe(): Promise<void> {
    const state = this.programmedState;
    const hash = this.programmedHash;
    if (this.stopped || this.probing || this.running || !state || !hash || !this.applied) return;
    this.probing = true;
    try {
      const before = this.health?.verdict;
      const outcome = await this.options.probe!.probe(state);
      if (this.programmedHash !== hash || this.stopped) return; // an apply moved on meanwhile: its verdict stands
      const problem = this.resyncError;
      const verdict = judgeHealth({
        stateVerified: problem === '',
        ...(problem ? { stateProblem: problem } : {}),
        outcome,
        at: new Date(this.clock.now()).toISOString(),
      });
      this.health = { verdict, hash };
      this.emit({ type: 'verdict', verdict });
      if (verdict.verdict !== before?.verdict) this.heartbeat();
      if (!blamesDataplane(outcome)) this.faultResyncSpent = false;
      else if (!this.faultResyncSpent) {
        this.faultResyncSpent = true;
        this.reprobeAfterResync = true;
        this.requestResync(`probe: ${verdict.reason}`);
      }
    } finally {
      this.probing = false;
    }
  }

  private kick(): void {
    if (this.stopped) return;
    this.dirty = true;
    this.resyncGiveWay?.abort();
    this.drive();
  }

  /**
   * Asks for a resync (`trigger` says why, for the event); it runs in the same loop as applies,
   * so never beside one, and requests made before it starts are one resync.
   */
  requestResync(trigger = 'periodic'): void {
    if (this.stopped || !this.applied) return;
    if (!this.resyncDue) this.resyncTrigger = trigger;
    this.resyncDue = true;
    this.drive();
  }

  /**
   * The dataplane saw what it programmed damaged (nftables: a notification that our table or a
   * base chain was deleted — `nft flush ruleset`, a firewall reload —, or lost notifications):
   * resync now rather than at the next interval, and re-probe once it ran so the verdict follows.
   */
  driftSignalled(why: string): void {
    if (this.stopped || !this.applied) return;
    if (this.options.probe) this.reprobeAfterResync = true;
    this.requestResync(`drift signal: ${why}`);
  }

  /** One loop runs applies and resyncs one at a time; an apply that is due goes first. */
  private drive(): void {
    if (this.running) return;
    this.running = (async () => {
      while ((this.dirty || this.resyncDue) && !this.stopped) {
        if (this.dirty) {
          this.dirty = false;
          try {
            await this.reconcile();
          } catch (e) {
            this.fail(this.watcher?.current(), `internal error: ${(e as Error).message}`, false);
          }
        } else {
          this.resyncDue = false;
          await this.resyncOnce();
        }
      }
      this.running = undefined;
      if (this.reprobeAfterResync && !this.stopped && this.options.probe) {
        this.reprobeAfterResync = false;
        void this.reprobe();
      }
    })();
  }

  private async resyncOnce(): Promise<void> {
    // kernel unknown: the retry of the apply (a full cycle) is the repair; lastError says why
    if (!this.applied || this.kernelUnknown) {
      this.resyncGaveWay = false; // the resync that gave way is dropped: the next one may again
      return;
    }
    const wasHealthy = this.resyncError === '';
    const trigger = this.resyncTrigger;
    this.resyncTrigger = 'periodic';
    // A routine resync gives way once to an apply that arrives while it reads the kernel: a whole
    // read takes seconds at 10k services (nftables ~5 s here), and a new version should not wait
    // for a check that found nothing the last time. The resync after that apply runs to its end,
    // so applies arriving without pause never starve it. One asked for because something looks
    // broken (a drift signal, a probe) never gives way: its repair comes first.
    const giveWay = trigger === 'periodic' && !this.resyncGaveWay ? new AbortController() : undefined;
    this.resyncGiveWay = giveWay;
    try {
      const r = await this.options.dataplane.resync(giveWay ? { yieldTo: giveWay.signal } : undefined);
      this.resyncError = r.verified
        ? ''
        : `resync: the kernel does not match version ${this.applied.version} after a repair`;
      if (r.kernelWrites > 0) this.faultResyncSpent = false; // a later probe failure is a new fault
      this.emit({
        type: 'resync',
        trigger,
        kernelWrites: r.kernelWrites,
        ...(r.scheduledWrites ? { scheduledWrites: r.scheduledWrites } : {}),
        verified: r.verified,
        notes: r.notes,
      });
    } catch (e) {
      if (e instanceof ResyncYielded) {
        // it compared nothing: the node's health stays what the last resync or apply found
        this.resyncGaveWay = true;
        if (!this.resyncDue) this.resyncTrigger = trigger; // a request made meanwhile names its own
        this.resyncDue = true;
        this.emit({ type: 'resync-yielded', trigger, afterMs: e.afterMs });
        return;
      }
      this.resyncError = `resync: ${(e as Error).message}`;
      this.emit({ type: 'resync', trigger, kernelWrites: 0, verified: false, notes: [], error: (e as Error).message });
    } finally {
      this.resyncGiveWay = undefined;
    }
    this.resyncGaveWay = false;
    if ((this.resyncError === '') !== wasHealthy) this.heartbeat(); // say it now, not at the next beat
  }

  /**
   * Whether the version or config revision this node runs is, on the bus now, other content under
   * the same number (a restored planner log, a versions stream or bucket made again: probe13 R1).
   * Numbers alone kept the node on the old content, ACKed, until a later version came. Drops what
   * differs, so the apply that follows loads the bus's. A read that fails trusts what is held.
   */
  private async heldIsOther(target: NodeTarget): Promise<boolean> {
    const data = await this.sync.verifyHeld(target.version);
    let other = data === 'other';
    if (this.config?.revision === target.configRevision && target.configRevision !== 0) {
      const c = await this.watcher!.configRevision(target.configRevision);
      if (!('error' in c) && c.hash !== this.config.hash) {
        this.config = undefined;
        other = true;
      }
    }
    if (other) this.renderer = undefined; // rendered from what is dropped: start over
    return other;
  }

  private async reconcile(): Promise<void> {
    const target = this.watcher?.current();
    if (!target) return;
    const key = `${target.version}/${target.configRevision}`;
    const recheck = this.recheck;
    this.recheck = false;
    if (
      this.applied &&
      !this.kernelUnknown &&
      this.applied.version === target.version &&
      this.applied.configRevision === target.configRevision
    ) {
      if (!recheck || !(await this.heldIsOther(target))) return;
    } else if (recheck && this.sync.version === target.version) {
      // A new target that moves only the config revision names the version held: after a restored
      // log or a lost stream that number may be other content (probe13 R1: a restored planner's
      // first target moved the config 2 → 1 on version 3, and the node kept the old 3)
      await this.sync.verifyHeld(target.version);
    }
    if (this.poisoned === key) return;
    const t0 = this.clock.now();
    const data = await this.sync.advanceTo(target.version);
    if (!data.ok) return this.fail(target, data.error, data.permanent);
    // An ACK names the target's version with the hash of the data held: they must be the same
    // version (a checkpoint header pointing past the target would otherwise load newer data).
    if (data.version !== target.version)
      return this.fail(
        target,
        `internal error: data sync reached version ${data.version}, not the target's ${target.version}`,
        false,
      );
    if (!this.config || this.config.revision !== target.configRevision) {
      const c = await this.watcher!.configRevision(target.configRevision);
      if ('error' in c) return this.fail(target, c.error, false);
      this.config = c;
    }
    const t1 = this.clock.now();
    let renderer: NodeStateRenderer;
    let hash: string;
    try {
      renderer = this.render(this.config);
      hash = renderer.hash();
    } catch (e) {
      this.renderer = undefined; // possibly half-updated: start over next time
      return this.fail(target, `render: ${(e as Error).message}`, true);
    }
    const t2 = this.clock.now();
    const skipped = hash === this.programmedHash;
    const state = renderer.state();
    let kernelWrites = 0;
    if (!skipped) {
      // Whatever the apply does to the kernel, it no longer holds the last verified state for
      // sure until this apply verifies: forget it first, so no later target is skipped against it.
      this.forgetProgrammed();
      try {
        // the renderer's account of what changed since its previous state: the dataplane uses it
        // when that previous state is the one it last applied, instead of comparing every service
        const r = await this.options.dataplane.apply(state, renderer.changeOf(state));
        kernelWrites = r.kernelWrites;
        if (!r.verified) return this.fail(target, `apply not verified: ${r.notes.join('; ')}`, false);
      } catch (e) {
        return this.fail(target, `apply: ${(e as Error).message}`, false);
      }
      this.programmedHash = hash;
      this.kernelUnknown = false;
    }
    this.programmedState = state;
    const t3 = this.clock.now();
    // The ACK waits for the verdict on what it acknowledges: gates read both together.
    const health = await this.judge(state, hash, skipped);
    const t4 = this.clock.now();
    this.applied = {
      version: target.version,
      configRevision: target.configRevision,
      dataHash: data.hash,
      nodeStateHash: hash,
    };
    this.lastError = '';
    this.poisoned = '';
    const ack: Ack = {
      type: 'ACK',
      node: this.options.node,
      version: target.version,
      configRevision: target.configRevision,
      dataHash: data.hash,
      nodeStateHash: hash,
      mode: this.options.dataplane.mode,
      kernelWrites,
      timings: { fetchMs: t1 - t0, renderMs: t2 - t1, applyMs: t3 - t2, ...(health ? { probeMs: t4 - t3 } : {}) },
      ...(health ? { health } : {}),
      // A failed periodic resync not repaired since: the kernel is known not to match everywhere
      // (an apply verifies what it touched), so the ACK says so, as the next heartbeat would.
      ...(this.resyncError ? { healthy: false, detail: truncateReportText(this.resyncError, MAX_REPORT_DETAIL) } : {}),
      instance: this.instance,
      at: new Date(t4).toISOString(),
    };
    this.lastReport = ack;
    this.publish(ackSubject(this.options.node), ack);
    this.emit({
      type: 'ack',
      ack,
      path: data.path,
      bytes: data.bytes,
      patched: data.patched,
      skipped,
      data: this.sync.data,
      config: this.config.config,
      followed: this.watcher?.followed() ?? {},
    });
    // said once per version that brought unknown keys (a failed apply of it is said with the next ACK)
    const unknown = this.sync.unknownFields.value();
    if (unknown && this.sync.unknownFields.count > this.unknownSaid) {
      this.unknownSaid = this.sync.unknownFields.count;
      this.emit({ type: 'unknown-fields', version: target.version, fields: unknown });
    }
  }

  private forgetProgrammed(): void {
    this.programmedHash = undefined;
    this.programmedState = undefined;
    this.kernelUnknown = true;
  }

  /**
   * Brings this node's renderer to the data held: feeds it the net delta since the last render,
   * or renders everything on the first use, after a checkpoint jump or for another config revision.
   */
  private render(config: ConfigRevision): NodeStateRenderer {
    const changes = this.sync.takeChanges();
    if (!this.renderer || this.renderer.revision !== config.revision) {
      this.renderer = { revision: config.revision, r: new NodeStateRenderer(this.options.node, config.config) };
      this.renderer.r.reset(this.sync.data);
    } else if (!changes) this.renderer.r.reset(this.sync.data);
    else this.renderer.r.update(this.sync.data, changes);
    return this.renderer.r;
  }

  private fail(target: NodeTarget | undefined, error: string, permanent: boolean): void {
    this.lastError = error;
    if (!target) return;
    if (permanent) this.poisoned = `${target.version}/${target.configRevision}`;
    const nack: Nack = {
      type: 'NACK',
      node: this.options.node,
      version: target.version,
      configRevision: target.configRevision,
      error: truncateReportText(error, MAX_REPORT_ERROR),
      lastGoodVersion: this.applied?.version ?? 0,
      lastGoodConfigRevision: this.applied?.configRevision ?? 0,
      instance: this.instance,
      at: new Date(this.clock.now()).toISOString(),
    };
    this.lastReport = nack;
    this.publish(ackSubject(this.options.node), nack);
    this.emit({ type: 'nack', nack });
    if (!permanent && !this.stopped) {
      if (this.retry) clearTimeout(this.retry);
      this.retry = setTimeout(() => {
        this.retry = undefined;
        this.kick();
      }, this.options.retryMs ?? 2000);
    }
  }

  private publish(subject: string, v: unknown): void {
    const text = JSON.stringify(v);
    try {
      this.options.nc.publish(subject, text);
      this.unsent.delete(subject);
    } catch (e) {
      // closed connection: acks are best effort, heartbeats repeat what we run
      const error = `publish ${subject}: ${(e as Error).message}`;
      this.emit({ type: 'error', error });
      const max = this.options.nc.info?.max_payload;
      this.unsent.set(
        subject,
        /max_payload|payload/i.test(error) && max !== undefined
          ? `${error} (this report is ${Buffer.byteLength(text)} bytes, NATS takes at most ${max} on this connection: the server's max_payload or the READERS account's or user's payload limit)`
          : error,
      );
    }
  }

  /**
   * Why this node's reports do not reach the planner (the last ACK or heartbeat could not be sent:
   * larger than NATS takes on this connection, a closed connection), undefined once each subject's
   * last report went out. An applier whose every report was refused for size said healthy and on
   * target while the planner never heard of it (probe19 P19-2).
   */
  notReporting(): string | undefined {
    return this.unsent.values().next().value;
  }

  /**
   * Push path: the default target's notice carries the new version's delta as the stream stored
   * it, so a node one step behind gets target and data in one inbound message and fetches
   * nothing. Nodes do not follow the stream's subjects live: a core subscriber there also gets
   * publishes the stream refused (a fenced planner's, a foreign one), and a node must never apply
   * a version the stream does not hold. Nothing here is trusted: an offered delta goes through
   * the signature check now and the parent-link and hash checks when applied; a bad one is
   * dropped and the node fetches from the stream instead.
   */
  private takeNoticeDelta(d: NoticeDelta, where: string, signed: boolean): void {
    const version = Number(d.headers[H.version]);
    if (!Number.isSafeInteger(version) || version < 1)
      return this.emit({ type: 'rejected', kind: 'artifact', where, reason: 'notice delta: no version header' });
    if (d.headers[H.checkpointOnly] === '1') return;
    // `signed`: the notice's signature over target and delta together verified (one verification
    // per event); otherwise the delta's own signature (and, unsigned, its payload digest) is checked.
    // The payload is checked and parsed as the text the notice carried: no copy to bytes and back.
    const header = (k: string) => d.headers[k];
    const fault = signed
      ? undefined
      : this.reader.genuine({ subject: deltaSubject(version), data: d.payload, header }, version);
    if (fault) return this.emit({ type: 'rejected', kind: 'artifact', where, reason: `notice delta: ${fault}` });
    const decoded = decodeDelta(d.payload);
    if (!decoded.ok)
      return this.emit({ type: 'rejected', kind: 'artifact', where, reason: `notice delta: ${decoded.error}` });
    const a = withoutUnvouchedHashes(decoded.value, signed || this.reader.vouches(header));
    if (a.version !== version || a.hash !== d.headers[H.hash] || String(a.parent) !== d.headers[H.parent]) {
      return this.emit({
        type: 'rejected',
        kind: 'artifact',
        where,
        reason: 'notice delta: payload and signed headers disagree',
      });
    }
    this.sync.offer(a);
  }

  /**
   * Push path for a version told as patches (a large service's few changed endpoints instead of
   * its whole entry: service-patch.ts). A patch has no signature of its own, so with a verifier
   * only a notice whose one signature verified brings one; without, the payload digest header
   * vouches as it does for an unsigned delta. Vouched, the patch's entry hashes are taken as a
   * delta's carried ones are; otherwise every rebuilt entry is hashed. It is rebuilt and checked
   * when applied (DataSync).
   */
  private takeNoticePatch(p: NoticeDelta, where: string, signed: boolean): void {
    const reject = (reason: string) => this.emit({ type: 'rejected', kind: 'patch', where, reason });
    if (this.options.verifier && !signed) return reject('notice patch: not signed by the planner');
    // unsigned, the payload's digest vouches for the entry hashes the patches carry, as a delta's
    // digest does for its carried hashes (an altered payload no longer matches it)
    const digest = p.headers[H.payloadDigest];
    if (!signed && digest && digest !== payloadDigest(p.payload))
      return reject('notice patch: payload does not match its digest');
    const decoded = decodePatchedDelta(p.payload);
    if (!decoded.ok) return reject(`notice patch: ${decoded.error}`);
    const a = decoded.value;
    if (
      String(a.version) !== p.headers[H.version] ||
      a.hash !== p.headers[H.hash] ||
      String(a.parent) !== p.headers[H.parent]
    )
      return reject('notice patch: payload and signed headers disagree');
    this.sync.offerPatched(a, signed || !!digest);
  }

  /**
   * Reports every status of the connection as it comes, and after each reconnect re-reads the
   * targets, then sends the last report again. The re-read is not awaited here: it waits up to its
   * read timeout (both keys are read at once) when nothing answers (a reply inbox NATS refuses, probe19 P19-1), and
   * every status behind it waited too: the applier's /readyz and /healthz (`connected`) and its
   * log followed the connection seconds to minutes late, one re-read per reconnect queued, and
   * the re-read of the reconnect that would work waited behind the ones that could not (a node on
   * its old target long after a subscription limit was lifted).
   */
  private watchConnection(): void {
    let reconnects = 0;
    void (async () => {
      for await (const s of this.options.nc.status()) {
        const error = s.type === 'error' ? (s as { error?: Error }).error?.message : undefined;
        this.emit({ type: 'connection', status: s.type, ...(error !== undefined ? { error } : {}) });
        if (s.type === 'reconnect' && !this.stopped) {
          const n = ++reconnects;
          // the planner may have moved the target while we were away; watches may have died
          void Promise.resolve(this.watcher?.refresh())
            .catch(() => undefined)
            .then(() => {
              // a later reconnect's re-read does the rest (this one's requests went with its connection)
              if (n !== reconnects || this.stopped) return;
              // first the last report as it was (it may have been lost with the old connection), then
              // whatever the refreshed target makes: a newer report never lands before an older one
              if (this.lastReport) this.publish(ackSubject(this.options.node), this.lastReport);
              this.kick();
              this.heartbeat();
            });
        }
      }
    })();
  }

  private emit(e: SessionEvent): void {
    this.options.onEvent?.(e);
  }
}
