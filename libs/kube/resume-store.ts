// Where the informer keeps its progress. The SQLite event log implements this; the
// informer only needs these calls.

import type { RawKubeObject } from './kube-event.ts';
import type { KubeKind } from './kube-kind.ts';

export interface ResumeStore {
  /** Last resourceVersion saved for a kind, or undefined to start with a LIST. */
  load(kind: KubeKind): string | undefined;
  /** Called after the sink has accepted every event up to `rv` (and on bookmarks). */
  save(kind: KubeKind, rv: string): void;
  /**
   * The objects of `kind` as of the saved RV (optional). With them, a later relist can
   * report objects deleted while this process was down as DELETED; without them, a
   * resumed informer only knows objects it has seen since it started.
   */
  knownObjects?(kind: KubeKind): readonly RawKubeObject[];
}

/** In-memory ResumeStore, for tests and for running without persistence. */
export class MemoryResumeStore implements ResumeStore {
  readonly versions = new Map<KubeKind, string>();
  readonly saves: { kind: KubeKind; rv: string }[] = [];

  constructor(initial: Partial<Record<KubeKind, string>> = {}) {
    for (const [kind, rv] of Object.entries(initial)) if (rv !== undefined) this.versions.set(kind as KubeKind, rv);
  }

  load(kind: KubeKind): string | undefined {
    return this.versions.get(kind);
  }

  save(kind: KubeKind, rv: string): void {
    this.versions.set(kind, rv);
    this.saves.push({ kind, rv });
  }
}
