// A directory of Kubernetes YAML/JSON manifests as an event source with the informer's event
// shape, for `planner --manifests DIR`. Each object is keyed by kind/namespace/name; scans diff
// the directory against what was emitted and produce ADDED / MODIFIED / DELETED with a synthetic,
// monotonically increasing resourceVersion.
//
// It starts from the objects the event log holds (KnownObjects), so a restart on an unchanged
// directory emits nothing and a file removed while the planner was down is reported DELETED.
// Every emitted object carries the file that defines it (annotation MANIFEST_FILE_ANNOTATION), so
// after a restart a file that is refused or mid-write still keeps exactly its own objects.
//
// Change detection: a non-recursive fs.watch on every directory (Node 20's recursive watch loses a
// file once it has been replaced by rename) plus a periodic rescan; each scan only triggers a look,
// and ManifestFileTracker decides when a file's new content has settled. Objects are identified and
// de-duplicated by collectManifestObjects, the same rule `plan` uses; invalid-but-nameable objects
// are emitted as a watch would deliver them (the planner rejects each alone, keeping its last good
// state). Objects are kept, compared and emitted as their projection (projectKubeObject: what the
// readers read, as the planner logs it): an edit of a field nobody reads (a comment-like annotation)
// is no change, and a restart compares like with like whether the log holds projections or, from
// before K3, whole objects.

import { watch as watchFs, type FSWatcher } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { MANIFEST_FILE_ANNOTATION, projectKubeObject, type Rejection } from '../model/index.ts';
import type { KubeEventSink, RawKubeObject } from './kube-event.ts';
import { KUBE_KINDS, type KubeKind } from './kube-kind.ts';
import type { KnownObjects } from './known-objects.ts';
import { ManifestDecoder } from './manifest-decoder.ts';
import { ManifestFileTracker } from './manifest-file-tracker.ts';
import { walkManifestDir } from './manifest-files.ts';
import { collectManifestObjects, DEFAULT_MAX_MANIFEST_BYTES, manifestKey } from './manifest-objects.ts';

/** The annotation naming the file (relative to the directory) an emitted object comes from (libs/model's one constant). */
export { MANIFEST_FILE_ANNOTATION };

export interface ManifestsSourceOptions {
  dir: string;
  sink: KubeEventSink;
  /** Called after each scan with everything refused in it (possibly empty). */
  onRejected?: (rejected: readonly Rejection[]) => void;
  /** What the event log already holds: the first scan is diffed against it. */
  known?: KnownObjects;
  /** Synthetic RV to continue from (default: after the known objects' and the log's last RV; else 0). */
  startResourceVersion?: number;
  /** Watch the directories and rescan on change (default true). */
  watch?: boolean;
  /** Wait this long after a change notice before scanning, so multi-file edits land together (default 20 ms). */
  debounceMs?: number;
  /** Also rescan on this interval, in case a change notice is lost (default off). */
  pollIntervalMs?: number;
  /** How long a file's new content must stay unchanged before it counts (default 100 ms). */
  settleMs?: number;
  /** How long a file that became empty must stay empty before its objects are withdrawn (default 2 s). */
  emptyFileGraceMs?: number;
  /** Files larger than this are refused unread (default DEFAULT_MAX_MANIFEST_BYTES). */
  maxManifestBytes?: number;
  /** Longest start() waits for files caught mid-write to settle before it reports synced (default 10 s). */
  initialSettleMaxMs?: number;
  /**
   * Decodes files off the event loop and remembers each file's last decode, across sources (the
   * planner makes a source per leadership term: a new term does not decode unchanged files again).
   * Default: the process's shared decoder (ManifestDecoder.shared()).
   */
  decoder?: ManifestDecoder;
}

export interface ManifestsSourceHealth {
  synced: boolean;
  objects: number;
  resourceVersion: string;
  scans: number;
  events: number;
  /** Failed scans since start. */
  errors: number;
  rejected: number;
  /** Files whose latest change has not settled yet. */
  unsettledFiles: number;
  /** Files being decoded right now (off the event loop: a large file takes seconds). */
  decodingFiles: number;
  /** Why the last scan failed; absent once a scan succeeds again. */
  lastError?: string;
  lastErrorAt?: number;
}

interface Entry {
  kind: KubeKind;
  object: RawKubeObject;
  file: string;
}

function withoutRv(object: RawKubeObject): RawKubeObject {
  const { resourceVersion: _rv, ...metadata } = object.metadata;
  return { ...object, metadata: metadata as RawKubeObject['metadata'] };
}

function fileOf(object: RawKubeObject): string {
  const annotations = object.metadata.annotations as Record<string, unknown> | undefined;
  const file = annotations?.[MANIFEST_FILE_ANNOTATION];
  return typeof file === 'string' ? file : '';
}

function annotated(object: RawKubeObject, file: string): RawKubeObject {
  const annotations = object.metadata.annotations;
  const base =
    annotations !== null && typeof annotations === 'object' && !Array.isArray(annotations) ? annotations : {};
  return { ...object, metadata: { ...object.metadata, annotations: { ...base, [MANIFEST_FILE_ANNOTATION]: file } } };
}

const projected = (object: RawKubeObject): RawKubeObject => projectKubeObject(object) as RawKubeObject;

const rvNumber = (rv: unknown): number => (typeof rv === 'string' && /^\d+$/.test(rv) ? Number(rv) : 0);

export class ManifestsSource {
  private readonly options: ManifestsSourceOptions;
  private readonly tracker: ManifestFileTracker;
  private readonly stopping = new AbortController();
  private readonly current = new Map<string, Entry>();
  private rv: number;
  private chain: Promise<void> = Promise.resolve();
  private readonly watchers = new Map<string, FSWatcher>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private recheckInMs: number | undefined;
  private poll: NodeJS.Timeout | undefined;
  private stopped = false;
  private resolveSynced!: () => void;
  readonly synced: Promise<void>;
  private readonly stats: Omit<
    ManifestsSourceHealth,
    'objects' | 'resourceVersion' | 'unsettledFiles' | 'decodingFiles'
  > = {
    synced: false,
    scans: 0,
    events: 0,
    errors: 0,
    rejected: 0,
  };

  constructor(options: ManifestsSourceOptions) {
    this.options = options;
    this.tracker = new ManifestFileTracker({
      dir: options.dir,
      decoder: options.decoder ?? ManifestDecoder.shared(),
      signal: this.stopping.signal,
      settleMs: options.settleMs ?? 100,
      emptyFileGraceMs: options.emptyFileGraceMs ?? 2000,
      maxBytes: options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES,
    });
    let rv = rvNumber(options.known?.lastResourceVersion);
    const byFile = new Map<string, RawKubeObject[]>();
    for (const kind of KUBE_KINDS) {
      for (const object of options.known?.objects.get(kind) ?? []) {
        const key = manifestKey(kind, object);
        this.current.set(key, { kind, object: projected(object), file: fileOf(object) });
        rv = Math.max(rv, rvNumber(object.metadata.resourceVersion));
        const list = byFile.get(fileOf(object)) ?? [];
        list.push(object);
        byFile.set(fileOf(object), list);
      }
    }
    for (const [file, objects] of byFile) this.tracker.seed(file, objects);
    this.rv = options.startResourceVersion ?? rv;
    if (!Number.isInteger(this.rv) || this.rv < 0)
      throw new Error(`startResourceVersion must be a non-negative integer, got ${this.rv}`);
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve));
  }

  health(): ManifestsSourceHealth {
    return {
      ...this.stats,
      objects: this.current.size,
      resourceVersion: String(this.rv),
      unsettledFiles: this.tracker.unsettled,
      decodingFiles: this.tracker.decoding,
    };
  }

  /** Why the source is failing right now, or undefined when its last scan worked. */
  problem(): string | undefined {
    return this.stats.lastError;
  }

  /**
   * Scans (diffing against the known objects) until every file has settled, so the first version
   * holds no file caught mid-write, then watches. Rejects if the first scan fails. A directory that
   * never settles (a file rewritten without pause) is taken as it is after `initialSettleMaxMs`.
   */
  async start(): Promise<void> {
    const deadline = Date.now() + (this.options.initialSettleMaxMs ?? 10_000);
    // stop() during a scan aborts the decode it waits for: that is no failure of start()
    const scan = () => this.rescan().catch((e: unknown) => (this.stopped ? undefined : Promise.reject(e)));
    await scan();
    while (this.tracker.unsettled > 0 && !this.stopped && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(this.recheckInMs ?? 10, Math.max(1, deadline - Date.now()))));
      await scan();
    }
    if (this.stopped) return;
    this.stats.synced = true;
    this.resolveSynced();
    if (this.options.pollIntervalMs) this.poll = setInterval(() => this.requestScan(0), this.options.pollIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    clearTimeout(this.timer);
    clearInterval(this.poll);
    this.stopping.abort(new Error('the manifests source stopped'));
    await this.chain;
  }

  /** Reads the directory now and emits the difference. Scans never overlap. */
  rescan(): Promise<void> {
    const run = this.chain.then(() => this.scan());
    this.chain = run.catch((err: unknown) => this.recordError(err));
    return run;
  }

  private recordError(err: unknown): void {
    if (this.stopped) return; // a scan cut short by stop()
    this.stats.errors += 1;
    this.stats.lastError = err instanceof Error ? err.message : String(err);
    this.stats.lastErrorAt = Date.now();
  }

  /** Scans in `delayMs`, or sooner if a scan is already due sooner. */
  private requestScan(delayMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + delayMs;
    if (this.timer && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A failed scan is recorded (rescan) and retried on the next notice or poll; the source keeps going.
      this.rescan().catch(() => {});
    }, delayMs);
  }

  private async scan(): Promise<void> {
    if (this.stopped) return;
    const tree = await walkManifestDir(this.options.dir);
    const recheckInMs = await this.tracker.refresh(tree.files);
    const { objects, rejected } = collectManifestObjects(this.tracker.contributions());
    const next = new Map<string, Entry>();
    for (const [key, o] of objects)
      next.set(key, { kind: o.kind, object: projected(annotated(o.object, o.file)), file: o.file });
    await this.emitDiff(next);
    this.watchDirs(tree.dirs);
    this.recheckInMs = recheckInMs;
    if (recheckInMs !== undefined) this.requestScan(recheckInMs);
    const problems = [...tree.skipped, ...this.tracker.problems(), ...rejected];
    this.stats.scans += 1;
    this.stats.rejected = problems.length;
    delete this.stats.lastError;
    delete this.stats.lastErrorAt;
    this.options.onRejected?.(problems);
  }

  /** One non-recursive watch per directory; any notice in it (hidden names too) asks for a scan. */
  private watchDirs(dirs: readonly string[]): void {
    if (!(this.options.watch ?? true) || this.stopped) return;
    const want = new Set(dirs);
    for (const [dir, w] of this.watchers) {
      if (!want.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    const debounce = this.options.debounceMs ?? 20;
    // A watch that cannot be set up (the directory just went away, or the inotify watch limit is
    // reached) is retried by the next scan, which comes no sooner than a second later: a failing
    // watch must not turn into a busy loop. The periodic rescan covers the directory meanwhile.
    const retry = () => this.requestScan(Math.max(debounce, 1000));
    for (const dir of want) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watchFs(dir, () => this.requestScan(debounce));
        w.on('error', () => {
          w.close();
          this.watchers.delete(dir);
          retry();
        });
        this.watchers.set(dir, w);
      } catch {
        retry();
      }
    }
  }

  private async emitDiff(next: Map<string, Entry>): Promise<void> {
    const initial = !this.stats.synced;
    const emit = async (entry: Entry, type: 'ADDED' | 'MODIFIED' | 'DELETED', key: string) => {
      const rv = this.rv + 1;
      const object = { ...entry.object, metadata: { ...entry.object.metadata, resourceVersion: String(rv) } };
      await this.options.sink({ kind: entry.kind, type, object, resourceVersion: String(rv), relist: initial });
      // Only after the sink accepted it: a failed sink call is retried by the next scan.
      this.rv = rv;
      if (type === 'DELETED') this.current.delete(key);
      else this.current.set(key, { ...entry, object });
      this.stats.events += 1;
    };
    for (const key of [...this.current.keys()].sort()) {
      if (!next.has(key)) await emit(this.current.get(key)!, 'DELETED', key);
    }
    for (const key of [...next.keys()].sort()) {
      const before = this.current.get(key);
      const entry = next.get(key)!;
      if (!before) await emit(entry, 'ADDED', key);
      else if (!isDeepStrictEqual(withoutRv(before.object), withoutRv(entry.object)))
        await emit(entry, 'MODIFIED', key);
    }
  }
}
