import { JetStreamApiError, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  abandonSignal,
  AckCollector,
  checkReplicas,
  connectBusWaiting,
  describeJetStreamFailure,
  namingJetStreamSilence,
  nodeOfReportSubject,
  StaleLeaderError,
  TARGETS_STREAM,
  TargetStore,
  VersionPublisher,
  VersionReader,
  verifierFromPem,
  type BusAuth,
  type Signer,
} from '../../libs/bus/index.ts';
import type { ConfigRevision } from '../../libs/model/index.ts';
import type { PlannerBus } from './planner-bus.ts';
import { claimStep, type ClaimRetry } from './claim-step.ts';

export interface NatsPlannerBusOptions {
  readonly url?: string;
  readonly nc?: NatsConnection;
  readonly checkpointEvery?: number;
  /** Checkpoints the versions stream keeps (VersionPublisherOptions.keepCheckpoints; default 2). */
  readonly keepCheckpoints?: number;
  readonly auth?: BusAuth;
  /** Signs versions, targets and config revisions (appliers with the public key drop the rest). */
  readonly signer?: Signer;
  /** The planner group (--group): named in this planner's term claims, checked in others' (VersionPublisherOptions.group). */
  readonly group?: string;
  /** The event log's chain anchor for a version, carried by its published artifacts. */
  readonly anchorOf?: (version: number) => string;
  /**
   * Whether this planner may write now (it leads and its lease is surely its own); every write is
   * refused otherwise. Omitted: always (a planner without a group, in tests).
   */
  readonly mayWrite?: () => string | undefined;
  /** Awaited before every write (the replicated log's flush: the log holds what a version names). */
  readonly beforeWrite?: () => Promise<void>;
  /** Reports each failed connection attempt while NATS is unreachable at start. */
  readonly onWaiting?: (what: string) => void;
  /** NATS refuses a subscription of the planner's connection (its account's limit), and once it no longer does. */
  readonly onSubscriptionRefusal?: (refusal: string | undefined) => void;
  /** Longest wait between connection attempts, at start and at reconnects (ConnectBusOptions.maxBackoffMs; default 5 s). */
  readonly maxBackoffMs?: number;
  /** Stored messages on the versions stream that are not ours (skipped). */
  readonly onForeign?: (subject: string, reason: string) => void;
  readonly signal?: AbortSignal;
  /** Copies of every stream and bucket in the NATS cluster (--replicas; default 1). */
  readonly replicas?: number;
  /** Asked before every message of a version is sent (VersionPublisherOptions.mayAppend). */
  readonly mayAppend?: () => string | undefined;
  /**
   * How often the target keys this planner wrote are compared with what it put (ms; 0 = never;
   * default 10 000): another entry there (a replayed old signed target, probe10 H1) is replaced
   * by its own (TargetStore.restoreOverwritten), and `onTargetRestored` told.
   */
  readonly targetCheckMs?: number;
  /** A target key held another entry than this planner's (`revision`: that entry's) and was restored. */
  readonly onTargetRestored?: (key: string, revision: number) => void;
  /** The versions stream had limits of its own, taken off (VersionPublisherOptions.onLimitsReset). */
  readonly onLimitsReset?: (line: string) => void;
}

/**
 * PlannerBus over NATS: libs/bus's VersionPublisher, TargetStore and AckCollector. The collector
 * takes a node's identity from the subject its credentials allow and drops payloads that do not
 * parse or claim another node, so one bad node cannot stop (or forge) the others' reports.
 *
 * NATS may lose its store (restarted without it): after every reconnect the bus compares the
 * versions stream's creation time with the one it saw; when it changed (or the stream is gone)
 * it recreates stream and bucket, re-puts the config revisions it had published and calls
 * `onReset`, so the planner republishes every version and target.
 */
export class NatsPlannerBus implements PlannerBus {
  private collector: AckCollector | undefined;
  private readonly configs = new Map<number, ConfigRevision>();
  private streamCreated: string | undefined;
  private resetHook: (() => void) | undefined;
  private streamCheckHook: (() => void) | undefined;
  private checking: Promise<boolean> | undefined;
  private fencedHook: ((why: string) => void) | undefined;
  private closed = false;
  private reader: VersionReader | undefined;
  /** Rejects every guarded write in flight (abandonWrites); replaced after each use. */
  private abandoned = abandonSignal();
  private targetCheck: NodeJS.Timeout | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly publisher: VersionPublisher,
    private readonly targets: TargetStore,
    private readonly ownsConnection: boolean,
    private readonly options: NatsPlannerBusOptions,
  ) {}

  /** Connects (waiting for NATS as long as it takes), takes the lease, opens stream and bucket. */
  static async open(o: NatsPlannerBusOptions): Promise<NatsPlannerBus> {
    const nc =
      o.nc ??
      (await connectBusWaiting({
        servers: (o.url ?? '').split(',').filter(Boolean),
        name: 'switchboard-planner',
        auth: o.auth,
        signal: o.signal,
        maxBackoffMs: o.maxBackoffMs,
        onWaiting: (what) => o.onWaiting?.(what),
        ...(o.onSubscriptionRefusal ? { onSubscriptionRefusal: o.onSubscriptionRefusal } : {}),
      }));
    try {
      checkReplicas(o.replicas ?? 1);
      const publisher = await VersionPublisher.open({
        nc,
        checkpointEvery: o.checkpointEvery,
        keepCheckpoints: o.keepCheckpoints,
        signer: o.signer,
        group: o.group,
        onForeign: o.onForeign,
        replicas: o.replicas,
        mayAppend: o.mayAppend,
        onLimitsReset: o.onLimitsReset,
      });
      const targets = await TargetStore.open({
        nc,
        signer: o.signer,
        replicas: o.replicas,
        onLimitsReset: o.onLimitsReset,
      });
      const bus = new NatsPlannerBus(nc, publisher, targets, !o.nc, o);
      bus.streamCreated = await publisher.streamCreated();
      bus.watchConnection();
      bus.checkTargetsEvery(o.targetCheckMs ?? 10_000);
      return bus;
    } catch (e) {
      // a bare "timeout" said neither that JetStream is hung nor that the server is (probe8 J2)
      const named = await namingJetStreamSilence(e, nc);
      if (!o.nc) await nc.close();
      throw named;
    }
  }

  /** Called after NATS lost its store and stream/bucket were recreated: republish everything. */
  onReset(hook: () => void): void {
    this.resetHook = hook;
  }

  /**
   * Called at each periodic check while this planner may write (targetCheckMs), after the stream's
   * limits were checked: the planner looks for versions the stream lost (streamLacks).
   */
  onStreamCheck(hook: () => void): void {
    this.streamCheckHook = hook;
  }

  /** Called when a write met another leader's fence: the planner must step down. */
  onFenced(hook: (why: string) => void): void {
    this.fencedHook = hook;
  }

  /** The connection (shared with the lease, the members list and the log replicator). */
  connection(): NatsConnection {
    return this.nc;
  }

  /**
   * A new leader claims the versions stream for its term (and re-reads stream and bucket: what
   * the previous leader wrote is the starting point). Each step is retried after a transient
   * failure while `retry.stopIf` allows (claim-step.ts) and a failure names its step.
   * StaleLeaderError (as the cause): a newer term claimed it.
   */
  async claim(term: number, id: string, retry: ClaimRetry = { stopIf: () => 'not retried' }): Promise<void> {
    await this.unlessAbandoned(async () => {
      await claimStep('claiming the versions stream', () => this.publisher.claim(term, id), retry);
      await claimStep("reading the targets bucket's keys", () => this.targets.relearn(), retry);
      const created = await claimStep(
        "reading the versions stream's identity",
        () => this.publisher.streamCreated(),
        retry,
      );
      this.streamCreated = created;
    });
    // what the stream lacks, asked while the new leader's source lists (its first publish looks:
    // VersionsStreamSync.repair): the claim fences the stream, and a reopen or an append since voids it
    void this.publisher.askLacksAhead();
  }

  /**
   * Stops waiting for the writes (and claim) in flight: each rejects now, naming `why`. Called when
   * this planner lost its lease (and when it stops): every one of them is conditional on what this
   * leader last saw (expected last sequence, key revision), so one answered late either continues
   * exactly where this leader stood or is refused; waiting out its NATS timeout (seconds, when NATS
   * is what went away) only held the step-down, the planner's /status and a SIGTERM's exit.
   */
  abandonWrites(why: string): void {
    const old = this.abandoned;
    this.abandoned = abandonSignal();
    old.abandon(new Error(`not acting: ${why}; the write in flight was abandoned`));
  }

  lastPublishedVersion(): number {
    return this.publisher.lastPublishedVersion();
  }

  async configRevisionHash(rev: number): Promise<string | undefined> {
    return (await this.targets.getConfigRevision(rev))?.hash;
  }

  storeLost(): Promise<boolean> {
    return this.checkReset();
  }

  async publishedHash(version: number): Promise<string | undefined> {
    const signer = this.options.signer;
    this.reader ??= new VersionReader(this.nc, {
      verifier: signer ? verifierFromPem(signer.publicKeyPem) : undefined,
      onRejected: this.options.onForeign,
      // The reader's default timeout, not 1.5 s: a new leader's first reads under load took longer,
      // and the timeout became the planner's lastError (the console's alert after a failover, CI).
      // A deleted stream (probe13 R5) is found a few seconds later for it.
    });
    const got = await this.reader.delta(version);
    if (got.ok) return got.value.hash;
    if (got.checkpointOnly) return got.checkpointOnly.hash;
    if (got.missing) return undefined;
    // A stream deleted or lost under the planner answers reads with a timeout: found here as a
    // write's failure finds it (guard), so the planner republishes (probe13 R5)
    if (await this.checkReset().catch(() => false))
      throw new Error(`NATS lost its versions stream; republishing (reading version ${version}: ${got.error})`);
    throw new Error(`reading version ${version} from the versions stream: ${got.error}`);
  }

  async publish(...[artifact, data, texts, patches]: Parameters<PlannerBus['publish']>): Promise<void> {
    const { form: _f, delta, ...header } = artifact;
    const anchor = this.options.anchorOf?.(artifact.version);
    await this.limitsChecked(() =>
      this.guard(() => this.publisher.publishNext({ header, delta, data, anchor, texts, patches })),
    );
  }

  streamLacks(o?: { askedAhead?: boolean }): Promise<string | undefined> {
    return this.publisher.lacks(o);
  }

  async rebase(...[header, data]: Parameters<NonNullable<PlannerBus['rebase']>>): Promise<void> {
    await this.limitsChecked(() =>
      this.guard(() => this.publisher.rebase({ header, data, anchor: this.options.anchorOf?.(header.version) })),
    );
  }

  async publishBase(...[header, data]: Parameters<PlannerBus['publishBase']>): Promise<void> {
    await this.limitsChecked(() =>
      this.guard(() => this.publisher.publishBase({ header, data, anchor: this.options.anchorOf?.(header.version) })),
    );
  }

  /**
   * A publish the stream refused because of limits someone gave it while this planner leads
   * ("maximum bytes exceeded", probe17 N2): the limits are taken off (said through onLimitsReset)
   * and the error names them, so the planner's retry a second later goes through.
   */
  private async limitsChecked(write: () => Promise<unknown>): Promise<void> {
    try {
      await write();
    } catch (e) {
      // only for a refusal JetStream answered (not a timeout, not an abandoned write: a frozen
      // server would hold the check, and a stop behind it)
      const refusal = /\(JetStream error \d+: /.test(describeJetStreamFailure(e).cause);
      const lifted =
        !refusal || this.options.mayWrite?.() ? undefined : await this.publisher.checkLimits().catch(() => undefined);
      if (!lifted) throw e;
      throw new Error(
        `${e instanceof Error ? e.message : String(e)} (the versions stream's own limits refused it: ${lifted}; taken off, retrying)`,
        { cause: e },
      );
    }
  }

  async putConfigRevision(rev: ConfigRevision): Promise<void> {
    await this.guard(() => this.targets.putConfigRevision(rev));
    this.configs.set(rev.revision, rev);
  }

  async setDefaultTarget(t: Parameters<PlannerBus['setDefaultTarget']>[0]): Promise<void> {
    // The delta (or its patches) rides on the notice only when this process stored it on the stream just now.
    const v = t.version;
    await this.guard(() =>
      this.targets.setDefaultTarget(t, this.publisher.storedDelta(v), this.publisher.storedPatch(v)),
    );
  }

  async setNodeTarget(...[node, t]: Parameters<PlannerBus['setNodeTarget']>): Promise<void> {
    await this.guard(async () => {
      if (t) await this.targets.setNodeTarget(node, t);
      else await this.targets.clearNodeTarget(node);
    });
  }

  async clearOverridesExcept(keep: Iterable<string>): Promise<void> {
    const nodes = [...keep];
    if (!this.targets.hasOverridesBeyond(nodes)) return; // the usual case: no write at all
    await this.guard(() => this.targets.clearOverridesExcept(nodes));
  }

  async removeNodeTargets(keep: Iterable<string>): Promise<void> {
    const nodes = [...keep];
    // asked at every target move: a write (and its log flush) only when a key is to go
    if (this.targets.goneNodeKeys(nodes).length === 0) return;
    await this.guard(() => this.targets.removeNodeTargets(nodes));
  }

  /**
   * The periodic check of the target keys this planner wrote (a write like any other: only while
   * it may write; a newer leader's entry fences it), of the versions stream's limits (a limit
   * given while this planner leads is taken off: VersionPublisher.checkLimits) and of what the
   * stream lost (onStreamCheck). A failed check is retried at the next tick.
   */
  private checkTargetsEvery(ms: number): void {
    if (ms <= 0) return;
    let running = false;
    this.targetCheck = setInterval(() => {
      if (running || this.closed || this.options.mayWrite?.()) return;
      running = true;
      void this.guard(() => this.targets.restoreOverwritten())
        .then((restored) => {
          for (const r of restored) this.options.onTargetRestored?.(r.key, r.revision);
        })
        // the config revisions those targets name, purged with them (a node could not load its target)
        .then(() => this.guard(() => this.restoreConfigRevisions()))
        // limits given to the versions stream while this planner leads (said through onLimitsReset)
        .then(() => this.publisher.checkLimits())
        // then versions a limit dropped before it was found (the planner republishes: onStreamCheck)
        .then(() => this.streamCheckHook?.())
        .catch(() => undefined)
        .finally(() => {
          running = false;
        });
    }, ms);
    this.targetCheck.unref?.();
  }

  /**
   * Puts back each config revision this planner published that its targets name and the bucket
   * no longer holds (a purge of KV_sb_targets by hand): putConfigRevision reads it first and
   * writes only when it is absent (or unsigned where this planner signs).
   */
  private async restoreConfigRevisions(): Promise<void> {
    for (const revision of this.targets.targetedConfigRevisions()) {
      const r = this.configs.get(revision);
      if (r) await this.targets.putConfigRevision(r);
    }
  }

  listen(hooks: Parameters<PlannerBus['listen']>[0]): void {
    // A new Planner (role change) takes over the reports. The previous collector stops once the
    // new one's subscriptions are on the server (no report falls between the two), or as soon as
    // that cannot be known: a role change comes when NATS went away, and the flush then fails.
    // Stopping the previous one only after a flush that answered left its subscriptions on the
    // connection for ever (re-sent at every reconnect), each report handled once per role change
    // made while NATS was away (probe21 P21-1).
    const previous = this.collector;
    // The planner awaits its hooks one at a time; chain them so reports are handled in arrival order.
    let chain: Promise<void> = Promise.resolve();
    const queue = (fn: () => Promise<void> | void) => {
      chain = chain.then(fn).catch(() => undefined); // the hook records its own failures
    };
    this.collector = AckCollector.subscribe({
      nc: this.nc,
      callbacks: {
        onAck: (a) => queue(() => hooks.onAck(a)),
        onNack: (n) => queue(() => hooks.onAck(n)),
        onHeartbeat: (h) => queue(() => hooks.onHeartbeat(h)),
        // Said at once (not queued): it changes nothing the planner knows of the node.
        onInvalid: (subject, error) => hooks.onInvalid?.(nodeOfReportSubject(subject), error),
      },
    });
    if (previous) this.stopAfterFlush(previous);
  }

  /**
   * A method of its own, not a closure in listen(): a closure there capturing `previous` puts it in
   * the context listen()'s other closures share, so each collector's callbacks held the one before
   * it, and with it every earlier Planner (probe21: 19 of them after 11 role changes).
   */
  private stopAfterFlush(previous: AckCollector): void {
    void this.nc
      .flush()
      .catch(() => undefined)
      .then(() => previous.stop())
      .catch(() => undefined); // the connection closed meanwhile: nothing is left to unsubscribe
  }

  /**
   * `drainMs`: how long the connection may drain (default 1 s); a server that does not answer
   * (frozen, partitioned) would hold a drain until the connection dies, so it is then closed.
   */
  async close(drainMs = 1000): Promise<void> {
    this.closed = true;
    clearInterval(this.targetCheck);
    this.abandonWrites('the bus is closing');
    this.collector?.stop();
    if (!this.ownsConnection) return;
    const drained = this.nc.drain().then(
      () => true,
      () => true,
    );
    if (!(await Promise.race([drained, sleep(drainMs).then(() => false)]))) await this.nc.close();
  }

  /**
   * Every write: refused unless this planner may write; the replicated log flushed first; a fence
   * steps the planner down; another failure checks for a lost store before it travels on.
   */
  private async guard<T>(write: () => Promise<T>): Promise<T> {
    const refused = this.options.mayWrite?.();
    if (refused) throw new Error(`not acting: ${refused}`);
    const signal = this.abandoned;
    return this.unlessAbandoned(async () => {
      try {
        await this.options.beforeWrite?.();
        // The flush may have taken long enough for the lease to end: asked again before writing.
        const late = this.options.mayWrite?.();
        if (late) throw new Error(`not acting: ${late}`);
        return await write();
      } catch (e) {
        // Abandoned meanwhile: the answer belongs to a leadership that is over (a late fence must not
        // depose this planner in a later term), and nobody waits for a store check.
        if (signal !== this.abandoned) throw e;
        if (isFence(e)) {
          this.fencedHook?.((e as Error).message);
          throw e;
        }
        if (await this.checkReset()) throw new Error(`NATS lost its store; republishing (${(e as Error).message})`);
        throw inWords(e);
      }
    });
  }

  /** Runs `op`, rejecting as soon as abandonWrites() is called (op itself runs on, unawaited). */
  private unlessAbandoned<T>(op: () => Promise<T>): Promise<T> {
    return this.abandoned.race(op());
  }

  private watchConnection(): void {
    void (async () => {
      for await (const s of this.nc.status()) {
        if (s.type === 'reconnect' && !this.closed) {
          void (async () => {
            await this.checkReset();
          })().catch(() => undefined);
        }
      }
    })();
  }

  /** Whether the targets bucket is gone; false when that cannot be told (NATS not answering). */
  private async targetsGone(): Promise<boolean> {
    try {
      await (await jetstreamManager(this.nc)).streams.info(TARGETS_STREAM);
      return false;
    } catch (e) {
      return e instanceof JetStreamApiError && e.code === 10059;
    }
  }

  /** True when the store was lost (and has now been recreated, the planner told to republish). */
  private checkReset(): Promise<boolean> {
    this.checking ??= (async () => {
      try {
        const created = await this.publisher.streamCreated();
        // The targets bucket alone may be gone too (deleted under a running planner): every target
        // write then failed for ever ("jetstream is not enabled"), as nothing recreated it.
        if (created !== undefined && created === this.streamCreated && !(await this.targetsGone())) return false;
        await this.publisher.reopen();
        await this.targets.reopen();
        for (const r of [...this.configs.values()].sort((a, b) => a.revision - b.revision))
          await this.targets.putConfigRevision(r);
        this.streamCreated = await this.publisher.streamCreated();
        this.resetHook?.();
        return true;
      } finally {
        this.checking = undefined;
      }
    })();
    return this.checking;
  }
}

/** Another leader's fence: ours (stream or bucket moved) or the replicated log's (its FencedError). */
function isFence(e: unknown): boolean {
  return (
    e instanceof StaleLeaderError ||
    (e instanceof Error && e.name === 'FencedError') ||
    (e instanceof Error && e.constructor.name === 'FencedError')
  );
}

function sleep(ms: number): Promise<undefined> {
  return new Promise((r) => setTimeout(() => r(undefined), ms).unref?.());
}

/**
 * A JetStream refusal in words an operator acts on, the refusal kept as the cause (transient checks
 * walk causes): "insufficient resources" alone did not say that the server's JetStream storage is
 * full (probe17 N5). Anything else is returned as it is.
 */
function inWords(e: unknown): unknown {
  const f = describeJetStreamFailure(e);
  return /\(JetStream error \d+: /.test(f.cause) ? new Error(f.cause, { cause: e }) : e;
}
