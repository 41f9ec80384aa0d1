// A directory of Kubernetes YAML/JSON manifests as an event source with the informer's
// event shape, for `planner --manifests DIR`. Each object is keyed by kind/namespace/name;
// rescans diff the directory against what was emitted and produce ADDED / MODIFIED /
// DELETED with a synthetic, monotonically increasing resourceVersion.
//
// Objects are validated with libs/model's readKubeObject: bad ones are reported, and emitted
// anyway when they can still be named (kind + name), as a watch would; events carry the raw JSON,
// like the cluster informer's.

import { watch as watchFs, type FSWatcher } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { readKubeObject, splitManifestText, type Rejection } from '../model/index.ts';
import type { KubeEventSink, KubeObject } from './kube-event.ts';
import { isKubeKind, type KubeKind } from './kube-kind.ts';

export interface ManifestsSourceOptions {
  dir: string;
  sink: KubeEventSink;
  /** Called after each scan with everything refused in it (possibly empty). */
  onRejected?: (rejected: readonly Rejection[]) => void;
  /** Synthetic RV to continue from (default 0: the first event gets 1). */
  startResourceVersion?: number;
  /** Watch the directory and rescan on change (default true). */
  watch?: boolean;
  /** Wait this long after a change before rescanning, so multi-file edits land together (default 100 ms). */
  debounceMs?: number;
  /** Also rescan on this interval, since fs.watch can miss events (default off). */
  pollIntervalMs?: number;
}

export interface ManifestsSourceHealth {
  synced: boolean;
  objects: number;
  resourceVersion: string;
  scans: number;
  events: number;
  errors: number;
  rejected: number;
  lastError?: string;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

interface Entry {
  kind: KubeKind;
  object: KubeObject;
  file: string;
}

const keyOf = (kind: string, object: KubeObject) => `${kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;

function withoutRv(object: KubeObject): KubeObject {
  const { resourceVersion: _rv, ...metadata } = object.metadata;
  return { ...object, metadata: metadata as KubeObject['metadata'] };
}


function isIdentifiable(raw: unknown): boolean {
  if (raw === null || typeof raw !== 'object') return false;
  const o = raw as { kind?: unknown; metadata?: { name?: unknown } };
  return typeof o.kind === 'string' && isKubeKind(o.kind) && typeof o.metadata?.name === 'string' && o.metadata.name !== '';
}

export class ManifestsSource {
  private readonly options: ManifestsSourceOptions;
  private current = new Map<string, Entry>();
  private rv: number;
  private chain: Promise<void> = Promise.resolve();
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private stopped = false;
  private resolveSynced!: () => void;
  readonly synced: Promise<void>;
  private readonly stats: Omit<ManifestsSourceHealth, 'objects' | 'resourceVersion'> = {
    synced: false,
    scans: 0,
    events: 0,
    errors: 0,
    rejected: 0,
  };

  constructor(options: ManifestsSourceOptions) {
    this.options = options;
    this.rv = options.startResourceVersion ?? 0;
    if (!Number.isInteger(this.rv) || this.rv < 0) throw new Error(`startResourceVersion must be a non-negative integer, got ${this.rv}`);
    this.synced = new Promise((resolve) => (this.resolveSynced = resolve));
  }

  health(): ManifestsSourceHealth {
    return { ...this.stats, objects: this.current.size, resourceVersion: String(this.rv) };
  }

  /** Scans once (emitting the initial objects), then watches. Rejects if the first scan fails. */
  async start(): Promise<void> {
    await this.rescan();
    if (this.stopped) return;
    if (this.options.watch ?? true) {
      this.watcher = watchFs(this.options.dir, { recursive: true }, () => this.scheduleRescan());
      this.watcher.on('error', (err) => this.recordError(err));
    }
    if (this.options.pollIntervalMs) this.poll = setInterval(() => this.scheduleRescan(0), this.options.pollIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    clearTimeout(this.debounce);
    clearInterval(this.poll);
    await this.chain;
  }

  private recordError(err: unknown): void {
    this.stats.errors += 1;
    this.stats.lastError = err instanceof Error ? err.message : String(err);
  }

  private scheduleRescan(delay = this.options.debounceMs ?? 100): void {
    if (this.stopped) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      // A failed rescan is recorded and retried on the next change; the source keeps going.
      this.rescan().catch((err: unknown) => this.recordError(err));
    }, delay);
  }

  /** Reads the directory now and emits the difference. Scans never overlap. */
  rescan(): Promise<void> {
    const run = this.chain.then(() => this.scan());
    this.chain = run.catch(() => {});
    return run;
  }

  private async scan(): Promise<void> {
    if (this.stopped) return;
    const { dir } = this.options;
    const names = (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((d) => d.isFile() && MANIFEST_FILE.test(d.name))
      .map((d) => relative(dir, join(d.parentPath ?? d.path, d.name)))
      .sort();
    const next = new Map<string, Entry>();
    const rejected: Rejection[] = [];
    for (const file of names) {
      const text = await readFile(join(dir, file), 'utf8');
      const { items, yamlErrors } = splitManifestText(text);
      if (yamlErrors.length > 0) {
        // Probably a file caught mid-write: keep what it held before instead of deleting it.
        rejected.push({ ref: file, source: file, reason: `YAML: ${yamlErrors[0]!.message}; keeping its previous objects` });
        for (const [key, entry] of this.current) if (entry.file === file) next.set(key, entry);
        continue;
      }
      for (const raw of items) {
        const read = readKubeObject(raw, file);
        if (!read.ok) {
          rejected.push(read.rejection);
          // An object we can still name is emitted as it is, like a watch would deliver it: the
          // planner logs the event and rejects it alone, keeping the object's last good state.
          // Dropping it here would instead read as a DELETE of that object.
          if (!isIdentifiable(raw)) continue;
        }
        const object = structuredClone(raw) as KubeObject;
        const kind = object.kind;
        if (!isKubeKind(kind)) continue;
        const key = keyOf(kind, object);
        const dup = next.get(key);
        if (dup) {
          rejected.push({ ref: key, source: file, reason: `duplicate of the object in ${dup.file}; the first one wins` });
          continue;
        }
        next.set(key, { kind, object, file });
      }
    }
    await this.emitDiff(next);
    this.stats.scans += 1;
    this.stats.rejected = rejected.length;
    this.options.onRejected?.(rejected);
    if (!this.stats.synced) {
      this.stats.synced = true;
      this.resolveSynced();
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
      else if (!isDeepStrictEqual(withoutRv(before.object), withoutRv(entry.object))) await emit(entry, 'MODIFIED', key);
      else before.file = entry.file;
    }
  }
}
