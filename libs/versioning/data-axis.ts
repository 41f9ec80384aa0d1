import type { EventLog } from '../eventlog/event-log.ts';
import type { VersionRecord } from '../eventlog/version-record.ts';
import { contentSource } from '../eventlog/replay.ts';
import { decidePin, decideSync, decideUnpin, type DataPin } from '../control/index.ts';
import type { ClusterData, DataDelta, WatchEvent } from '../model/index.ts';
import type { ClusterDataIndex, ClusterState } from '../planner/index.ts';
import { eventChange, rejectionKey, type ObjectRejection } from './object-rejection.ts';
import { copyData, rebuildFromLog } from './rebuild-from-log.ts';

/** A version just recorded, with what the bus needs to publish it. */
export interface NewVersion {
  readonly record: VersionRecord;
  readonly delta: DataDelta;
}

/**
 * The data axis: live cluster state (every logged event), the content of the latest version
 * (`published`), and the pin. Events go to the log first and only then into the state, so nothing
 * can reach a version that is not on disk. All methods are synchronous on purpose: the planner
 * serialises calls, and each call leaves log and memory consistent.
 */
export class DataAxis {
  private eventsSinceVersion = 0;
  private rejectedTotal = 0;

  private constructor(
    private readonly log: EventLog,
    readonly live: ClusterState,
    private published: ClusterDataIndex,
    private pinned: DataPin | undefined,
    readonly rejections: Map<string, ObjectRejection>,
    /** True when `published` equals `live` as of live's last commit (then commit() is the delta). */
    private publishedIsLive: boolean,
  ) {}

  /** Rebuilds from the log: live state at the last event, published content at the last version. */
  static restore(log: EventLog): DataAxis {
    const pin = restorePin(log);
    const latest = log.latestVersion();
    const src = latest ? contentSource(log, latest.version) : undefined;
    const r = rebuildFromLog(log, { captureAtSeq: src?.seqTo ?? 0 });
    const published = r.captured!;
    if (latest && published.hash() !== latest.hash) {
      throw new Error(`event log: rebuilt content of version ${latest.version} has hash ${published.hash().slice(0, 12)}, the log recorded ${latest.hash.slice(0, 12)}`);
    }
    const axis = new DataAxis(log, r.state, published, pin, r.rejections, r.state.hash() === published.hash());
    axis.eventsSinceVersion = log.lastSeq() - (latest?.seqTo ?? 0);
    return axis;
  }

  get pin(): DataPin | undefined {
    return this.pinned;
  }

  get rejectedCount(): number {
    return this.rejectedTotal;
  }

  publishedHash(): string {
    return this.published.hash();
  }

  publishedData(): ClusterDataIndex {
    return this.published;
  }

  latest(): VersionRecord | undefined {
    return this.log.latestVersion();
  }

  /**
   * Appends events durably, then folds them into the live state. Malformed objects are rejected
   * one by one (logged, counted, their previous good state kept). Returns the rejections made.
   */
  ingest(events: readonly WatchEvent[]): ObjectRejection[] {
    const seqs = this.log.appendEvents(events);
    const rejected: ObjectRejection[] = [];
    events.forEach((e, i) => {
      const r = eventChange(e);
      const key = rejectionKey(e);
      if ('change' in r) {
        this.live.apply(r.change);
        this.rejections.delete(key);
      } else {
        const rej = { kind: e.kind, namespace: e.namespace, name: e.name, reason: r.reason, seq: seqs[i]! };
        this.rejections.set(key, rej);
        rejected.push(rej);
      }
    });
    this.rejectedTotal += rejected.length;
    this.eventsSinceVersion += events.length;
    return rejected;
  }

  /** Ends a batch: records a version when (and only when) the published content must change. */
  sync(): NewVersion | undefined {
    const commitDelta = this.live.commit();
    const d = decideSync({ pin: this.pinned, liveHash: this.live.hash(), publishedHash: this.published.hash() });
    if (d.action === 'hold') {
      this.publishedIsLive = false;
      return undefined;
    }
    if (d.action === 'none') {
      this.publishedIsLive = true;
      return undefined;
    }
    const delta = this.publishedIsLive && commitDelta ? commitDelta : this.live.data.deltaFrom(this.published);
    return this.record(delta, this.live.hash(), `${this.eventsSinceVersion} events`, undefined, true);
  }

  private record(delta: DataDelta, hash: string, reason: string, contentOf: number | undefined, isLive: boolean): NewVersion {
    const last = this.log.latestVersion();
    const seqTo = contentOf === undefined ? this.log.lastSeq() : last?.seqTo ?? 0;
    const record = this.log.recordVersion({ hash, reason, seqTo, contentOf, delta });
    this.published.apply(delta);
    if (this.published.hash() !== hash) throw new Error(`version ${record.version}: published content hash drifted (bug)`);
    this.publishedIsLive = isLive;
    if (contentOf === undefined) this.eventsSinceVersion = 0;
    return { record, delta };
  }

  /** The content of version n (a copy), rebuilt from the log with the planner's own fold. */
  contentOf(n: number): ClusterDataIndex {
    const latest = this.log.latestVersion();
    if (latest && n === latest.version) return copyData(this.published);
    const src = contentSource(this.log, n);
    const r = rebuildFromLog(this.log, { toSeq: src.seqTo, captureAtSeq: src.seqTo });
    const want = this.log.version(n)!.hash;
    if (r.captured!.hash() !== want) throw new Error(`cannot reproduce version ${n}: rebuilt hash differs from the recorded one`);
    return r.captured!;
  }

  /** Holds published data at version n's content (pin or data rollback); a new version when needed. */
  holdAt(n: number, kind: DataPin['kind']): NewVersion | undefined {
    const target = this.contentOf(n);
    const hash = target.hash();
    this.live.commit(); // pending live changes are held, not published
    const { publish } = decidePin({ targetHash: hash, publishedHash: this.published.hash() });
    this.pinned = { version: n, hash, kind };
    if (!publish) {
      this.publishedIsLive = this.live.hash() === hash;
      return undefined;
    }
    const reason = kind === 'pin' ? `pin to ${n}` : `rollback to ${n}`;
    return this.record(target.deltaFrom(this.published), hash, reason, n, this.live.hash() === hash);
  }

  /** Releases the pin; the live content becomes a new version if it differs from the held one. */
  release(): NewVersion | undefined {
    this.live.commit();
    const { publish } = decideUnpin({ pin: this.pinned, liveHash: this.live.hash(), publishedHash: this.published.hash() });
    this.pinned = undefined;
    if (!publish) {
      this.publishedIsLive = true;
      return undefined;
    }
    return this.record(this.live.data.deltaFrom(this.published), this.live.hash(), `unpin (${this.eventsSinceVersion} events held)`, undefined, true);
  }

  /** Full data of version n for a checkpoint artifact. */
  fullData(n: number): ClusterData {
    return (this.log.latestVersion()?.version === n ? this.published : this.contentOf(n)).toClusterData();
  }
}

/** The data pin as the last pin/rollback/unpin operation left it. */
function restorePin(log: EventLog): DataPin | undefined {
  let pin: DataPin | undefined;
  for (const op of log.operations()) {
    if (op.params.axis === 'data' && (op.kind === 'pin' || op.kind === 'rollback' || op.kind === 'unpin')) {
      pin = (op.params.pin as DataPin | null) ?? undefined;
    }
  }
  return pin;
}
