import type { EventLog } from '../../libs/eventlog/index.ts';
import { replayableFrom } from '../../libs/eventlog/index.ts';
import type { DataAxis, NewVersion } from '../../libs/versioning/index.ts';
import type { PlannerBus } from './planner-bus.ts';
import type { PlannerHooks } from './planner-options.ts';

/** The log's version N is not the versions stream's N (checkStreamAgrees). */
class StreamDisagrees extends Error {}

export interface VersionsStreamSyncOptions {
  readonly log: EventLog;
  readonly bus: PlannerBus;
  readonly hooks?: PlannerHooks;
  /** The planner's data (read at each use). */
  readonly axes: { readonly data: DataAxis };
}

/**
 * Keeps the versions stream in step with the log, for a leader: publishes every version the
 * stream lacks (from the value built, or read back from the log), a base where the log no longer
 * rebuilds what the stream lacks, and again what the stream lost; refuses to move any target while
 * the log and the stream disagree about a version's content.
 */
export class VersionsStreamSync {
  /** The newest version known to hold the same content in the log and on the stream (checkStreamAgrees). */
  private agreedWithStream = 0;
  /** Why no target moves because the log and the versions stream disagree (undefined: they agree). */
  private streamDisagrees: string | undefined;
  /** The base version of the last republish that left out compacted versions, and what it said. */
  private republishedFrom: { readonly from: number; readonly note: string } | undefined;
  /** Whether this leader looked for versions the stream lost (repair) since it started leading. */
  private streamChecked = false;
  /** The version repair last said it cannot publish again (said once per version). */
  private cannotRebase = 0;
  /** Versions made by this process and not yet on the bus, by number. */
  private readonly unpublished = new Map<number, NewVersion>();

  constructor(private readonly o: VersionsStreamSyncOptions) {}

  /** Keeps a version just made, so it is published from memory rather than re-read from the log. */
  remember(v: NewVersion | undefined): void {
    if (v) this.unpublished.set(v.record.version, v);
  }

  /** Set once versions the log could no longer rebuild were left out of a republish (publishBaseIfCompacted). */
  get republished(): { readonly from: number; readonly note: string } | undefined {
    return this.republishedFrom;
  }

  /**
   * The versions stream lost versions nodes need (a limit of JetStream's own with discard old,
   * dropping the oldest messages, taken off only later; a `nats stream purge`: probe17 N1): the
   * last published version (or, with none left, the newest the log holds) is published again as
   * a base, one checkpoint and its marker, never the versions before it one by one; said in one
   * line. Once the stream holds it, the check finds nothing more: once per gap. A version the log
   * no longer rebuilds (compacted) is not published: said once, and nodes behind stay so.
   */
  async repair(o: { askedAhead?: boolean } = {}): Promise<void> {
    const bus = this.o.bus;
    if (!bus.streamLacks || !bus.rebase) return;
    const lacks = await bus.streamLacks(o);
    if (lacks === undefined) return;
    const v = bus.lastPublishedVersion() || (this.o.axes.data.latest()?.version ?? 0);
    if (v === 0) return;
    const rec = this.o.log.version(v);
    const from = replayableFrom(this.o.log);
    if (rec === undefined || from === undefined || v < from) {
      if (this.cannotRebase !== v)
        this.o.hooks?.onNote?.(
          `the versions stream lost ${lacks}; version ${v} is not published again: the log no longer rebuilds it`,
        );
      this.cannotRebase = v;
      return;
    }
    const t0 = performance.now();
    await bus.rebase(
      { version: rec.version, parent: rec.parent, hash: rec.hash, reason: rec.reason, createdAt: rec.createdAt },
      () => this.o.axes.data.fullData(v),
    );
    for (const u of this.unpublished.keys()) if (u <= v) this.unpublished.delete(u);
    this.agreedWithStream = v;
    this.o.hooks?.onVersion?.(v, performance.now() - t0);
    this.o.hooks?.onNote?.(
      `the versions stream lost ${lacks}; version ${v} published again as a checkpoint (a node behind loads it)`,
    );
  }

  /**
   * Publishes every recorded version up to `latest` the stream lacks, in order; throws when no
   * target may move (a log file that cannot be trusted, a log behind or unlike the stream).
   * Versions this process made are published from the value built (record + delta); only after a
   * restart (or for ones a previous run left unpublished) are they read back from the log.
   */
  async publishUpTo(latest: number): Promise<void> {
    const { log, bus, hooks } = this.o;
    // A log file that cannot be trusted (deleted, replaced, damaged: probe8 D1/D2) moves no node:
    // what it holds may not survive a restart. Nodes keep what they run; retried every second.
    const fileProblem = log.fileProblem();
    if (fileProblem !== undefined) throw new Error(`not publishing: log file: ${fileProblem}`);
    // A log behind the stream must never move a node back (a fresh or stale --db): only the
    // replicated log's catch-up, before a planner leads, brings the log level with the stream.
    const published = bus.lastPublishedVersion();
    if (latest < published) {
      await this.throwUnlessStoreLost(
        `the log ends at version ${latest} but the versions stream holds ${published}: not moving any target`,
      );
    }
    try {
      await this.checkStreamAgrees(Math.min(latest, published));
    } catch (e) {
      if (!(e instanceof StreamDisagrees)) throw e;
      await this.throwUnlessStoreLost(e.message);
    }
    this.streamDisagrees = undefined;
    // a new leader first: versions a limit of the stream dropped before it was taken off (at this
    // leader's claim) are published again as one base, not one by one from version 1
    if (!this.streamChecked) {
      await this.repair({ askedAhead: true }); // asked at the claim, unless the stream moved since
      this.streamChecked = true;
    }
    await this.publishBaseIfCompacted(bus.lastPublishedVersion(), latest);
    for (let v = bus.lastPublishedVersion() + 1; v <= latest; v++) {
      const made = this.unpublished.get(v);
      const rec = made?.record ?? log.version(v)!;
      const delta = made?.delta ?? this.o.axes.data.deltaOf(v);
      const t0 = performance.now();
      await bus.publish(
        {
          version: rec.version,
          parent: rec.parent,
          hash: rec.hash,
          reason: rec.reason,
          createdAt: rec.createdAt,
          form: 'delta',
          delta,
        },
        () => this.o.axes.data.fullData(v),
        made?.texts,
        made?.patches,
      );
      this.unpublished.delete(v);
      this.agreedWithStream = v; // published (or confirmed equal) by this process
      hooks?.onVersion?.(v, performance.now() - t0);
    }
  }

  /**
   * The stream lacks versions the log can no longer rebuild (NATS lost its store, or this is a new
   * NATS, after `db compact`: review2 R8): they cannot be republished, and the versions after them
   * need a parent the stream does not hold. The oldest version the log still rebuilds goes out as
   * a base (its checkpoint, which nodes load without a parent); the loop after it publishes the
   * rest as usual. What was left out is said once and shown on /status (`republished`).
   */
  private async publishBaseIfCompacted(published: number, latest: number): Promise<void> {
    if (published >= latest) return;
    const from = replayableFrom(this.o.log);
    if (from === undefined || published + 1 >= from) return;
    const rec = this.o.log.version(from)!;
    const t0 = performance.now();
    await this.o.bus.publishBase(
      { version: rec.version, parent: rec.parent, hash: rec.hash, reason: rec.reason, createdAt: rec.createdAt },
      () => this.o.axes.data.fullData(from),
    );
    for (const v of this.unpublished.keys()) if (v <= from) this.unpublished.delete(v);
    this.agreedWithStream = from;
    this.o.hooks?.onVersion?.(from, performance.now() - t0);
    const left =
      published + 1 === from - 1
        ? `version ${from - 1} was compacted from the log and is`
        : `versions ${published + 1}-${from - 1} were compacted from the log and are`;
    const stream = published ? `goes on from version ${published} at` : 'starts at';
    const note = `${left} not republished: the versions stream ${stream} version ${from}, published as a checkpoint`;
    this.republishedFrom = { from, note };
    this.o.hooks?.onNote?.(note);
  }

  /**
   * The log and the versions stream disagree (`why`): no target moves. Unless the stream was
   * deleted or lost meanwhile (an operator's way out: then the bus is reset and the planner
   * republishes its own versions), throws `why`, kept for operations to refuse with (probe13 R5).
   */
  private async throwUnlessStoreLost(why: string): Promise<never> {
    this.streamDisagrees = why;
    if (await this.o.bus.storeLost?.().catch(() => false))
      throw new Error(`the versions stream was made again; republishing (it said: ${why})`);
    throw new Error(why);
  }

  /**
   * Refuses an operation while no target moves because the log and the versions stream disagree
   * (a restored or fresh log: docs/operations.md "Restoring from a backup"): it was recorded and
   * answered "started … 3/3 nodes" although nothing it changes could reach a node (probe13 R5).
   */
  refuseWhileDisagreeing(what: string): void {
    const why = this.streamDisagrees;
    if (why === undefined) return;
    throw new Error(
      `${what} refused: this planner moves no target (${why.replace(/: not moving any target$/, '')}); nothing it changes would reach a node (docs/operations.md "Restoring from a backup")`,
    );
  }

  /**
   * A log behind the stream reaches the stream's numbers with content of its own (a fresh or
   * restored --db on a NATS another planner published to): the same number, other content. Before
   * targets move, the log's hash of the newest version both hold must be the stream's, or nodes
   * would be told the planner's version N while they load the stream's N (review F5). Checked once
   * per version (the first call after a start or a reset); versions this process published or
   * confirmed itself agree by construction. A version the stream no longer holds is not checked.
   */
  private async checkStreamAgrees(version: number): Promise<void> {
    if (version <= 0 || this.agreedWithStream === version) return;
    const theirs = await this.o.bus.publishedHash(version);
    // Retention removed that version's row (a follower compacts by its policy alone): it keeps the
    // row before the oldest version it rebuilds, so the log rebuilds only from past version + 1 and
    // the republish starts with a base, never with a delta on the stream's content
    // (publishBaseIfCompacted, next).
    const ours = this.o.log.version(version)?.hash;
    if (theirs !== undefined && ours !== undefined && theirs !== ours)
      throw new StreamDisagrees(
        `the log's version ${version} has hash ${ours.slice(0, 12)} but the versions stream's has ${theirs.slice(0, 12)}: not moving any target`,
      );
    this.agreedWithStream = version;
  }
}
