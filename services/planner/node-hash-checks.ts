import type { ProxyConfig } from '../../libs/model/index.ts';
import { ExpectedNodeStateHashes, type ClusterDataSource } from '../../libs/planner/index.ts';

export interface NodeHashChecksOptions {
  /**
   * The node-state hash `node` must echo for (version, revision), rendered now; undefined when it
   * can no longer be computed for that version (the planner moved on): the check is dropped. Or
   * an iterator whose steps compute it (each next() bounded, the last one returning the hash),
   * run by the slices under their budget: one node never holds the event loop for all of it. A
   * newer version drops one in flight (returned, never run on).
   */
  readonly compute: (
    node: string,
    version: number,
    revision: number,
  ) => string | undefined | Iterator<unknown, string | undefined>;
  /**
   * The shared work behind every node's hash of (version, revision), done in bounded steps before
   * the first of them is computed (each next() a step; undefined: nothing to prepare). The slices
   * run its steps under the same time budget, so a first build that takes seconds (every service
   * of a 10k cluster rendered) never blocks the event loop for longer than a step or so. A newer
   * version drops a preparation in flight (its iterator is returned, never run on).
   */
  readonly prepare?: (version: number, revision: number) => Iterator<unknown> | undefined;
  /** After a slice that computed hashes: which nodes' hashes are now known (e.g. to step a rollout). */
  readonly onChecked?: (nodes: readonly string[]) => void;
  /** A compute that threw: not retried for that version (its row stays unchecked, never SYNCED). */
  readonly onError?: (node: string, err: unknown) => void;
  /** Longest a slice keeps computing before it yields to the event loop (default 10 ms; at least one node a slice). */
  readonly sliceMs?: number;
  /**
   * Runs the next slice after `restMs` (default: setImmediate when 0, so timers and I/O go first,
   * else setTimeout). A slice that ran past its budget (one render longer than sliceMs) rests as
   * long as it overran, so checks take at most about half the planner's thread under big renders.
   */
  readonly schedule?: (fn: () => void, restMs: number) => { cancel(): void };
  /** Clock for the slice budget (default performance.now). */
  readonly nowMs?: () => number;
}

interface Job {
  readonly node: string;
  readonly revision: number;
}

/**
 * The node-state hashes the planner expects ACKs of the latest version to echo, computed off
 * every read path (review4 G7): a render is O(cluster), and status() — every GET /status, `ctl
 * wait` poll and console tick — used to render every fleet node after each version, blocking the
 * planner (no lease renewal, no events, no publish) for nodes × render. Here a hash is computed
 * only when asked for (`want`: a node ACKed that version), in slices that yield to the event loop
 * (and rest as long as a slice overran its budget: at most about half the thread under big renders),
 * and kept for one version only: entries are (node, revision) of the newest version asked about,
 * so the cache holds at most fleet × revisions in use and never thrashes, whatever the fleet size.
 * Versions are immutable, so a hash once computed for (node, version, revision) stays right.
 */
export class NodeHashChecks {
  private version = 0;
  private readonly hashes = new Map<string, string>();
  private readonly failed = new Set<string>();
  private readonly queue = new Map<string, Job>();
  private scheduled: { cancel(): void } | undefined;
  private stopped = false;
  /** Revisions whose prepare ran to its end for `version`. */
  private readonly prepared = new Set<number>();
  private preparing: { readonly revision: number; readonly steps: Iterator<unknown> } | undefined;
  /** The node whose compute runs in steps, by its queue key. */
  private computing: { readonly key: string; readonly steps: Iterator<unknown, string | undefined> } | undefined;
  /** Preparation steps run (tests and metrics). */
  prepareSteps = 0;
  /** The longest slice so far, ms on the slice clock: how long a check kept the event loop (metrics, bench). */
  longestSliceMs = 0;
  /** Renders done (a metric, and what tests count to prove a read path renders nothing). */
  rendered = 0;

  constructor(private readonly options: NodeHashChecksOptions) {}

  /** The hash computed for (node, version, revision), or undefined: not (yet) computed. Never renders. */
  get(node: string, version: number, revision: number): string | undefined {
    return version === this.version ? this.hashes.get(key(node, revision)) : undefined;
  }

  /** Asks for the hash of (node, version, revision); a version older than one asked about before is ignored. */
  want(node: string, version: number, revision: number): void {
    if (this.stopped || version < this.version) return;
    if (version > this.version) {
      // Only the newest version is ever checked: what was known or queued for older ones goes.
      this.version = version;
      this.hashes.clear();
      this.failed.clear();
      this.queue.clear();
      this.prepared.clear();
      this.dropPreparation();
    }
    const k = key(node, revision);
    if (this.hashes.has(k) || this.failed.has(k) || this.queue.has(k)) return;
    this.queue.set(k, { node, revision });
    this.scheduled ??= (this.options.schedule ?? later)(() => this.slice(), 0);
  }

  /** Checks waiting (0 once every wanted hash is known). */
  get pending(): number {
    return this.queue.size;
  }

  stop(): void {
    this.stopped = true;
    this.scheduled?.cancel();
    this.scheduled = undefined;
    this.queue.clear();
    this.dropPreparation();
  }

  /** A preparation or node superseded by a newer version (or stop): never stepped again. */
  private dropPreparation(): void {
    this.preparing?.steps.return?.();
    this.preparing = undefined;
    this.computing?.steps.return?.(undefined);
    this.computing = undefined;
  }

  /** One step of job `k`'s compute: its hash (or undefined: dropped) once done, else IN_STEPS. */
  private computeStep(k: string, job: Job, version: number): string | undefined | typeof IN_STEPS {
    if (this.computing?.key !== k) {
      const r = this.options.compute(job.node, version, job.revision);
      if (typeof r !== 'object') return r;
      this.computing = { key: k, steps: r };
    }
    const r = this.computing.steps.next();
    if (!r.done) return IN_STEPS;
    this.computing = undefined;
    return r.value;
  }

  /**
   * One step of the preparation `revision` needs before its nodes are computed; true once it is
   * prepared (nothing to do, or its last step done). A prepare that throws counts as prepared:
   * compute then does the work (and reports its error) itself.
   */
  private prepareStep(revision: number): boolean {
    const prepare = this.options.prepare;
    if (!prepare || this.prepared.has(revision)) return true;
    try {
      if (this.preparing?.revision !== revision) {
        this.dropPreparation();
        const steps = prepare(this.version, revision);
        if (!steps) {
          this.prepared.add(revision);
          return true;
        }
        this.preparing = { revision, steps };
      }
      this.prepareSteps += 1;
      if (!this.preparing.steps.next().done) return false;
    } catch {
      // compute() renders what is left and reports its error
    }
    this.preparing = undefined;
    this.prepared.add(revision);
    return true;
  }

  private slice(): void {
    this.scheduled = undefined;
    if (this.stopped) return;
    const now = this.options.nowMs ?? (() => performance.now());
    const budget = this.options.sliceMs ?? 10;
    const t0 = now();
    const version = this.version;
    const done: string[] = [];
    for (;;) {
      const next = this.queue.entries().next();
      if (next.done) break;
      const [k, job] = next.value;
      if (this.prepareStep(job.revision)) {
        try {
          const h = this.computeStep(k, job, version);
          if (h !== IN_STEPS) {
            this.queue.delete(k);
            if (h !== undefined) {
              this.rendered += 1;
              this.hashes.set(k, h);
              done.push(job.node);
            }
          }
        } catch (e) {
          this.queue.delete(k);
          this.computing = undefined;
          this.failed.add(k);
          this.options.onError?.(job.node, e);
        }
      }
      if (now() - t0 >= budget) break;
    }
    const took = now() - t0;
    this.longestSliceMs = Math.max(this.longestSliceMs, took);
    const rest = Math.max(0, took - budget);
    if (this.queue.size > 0 && !this.stopped)
      this.scheduled = (this.options.schedule ?? later)(() => this.slice(), rest);
    if (done.length > 0) this.options.onChecked?.(done);
  }
}

const key = (node: string, revision: number) => `${revision}|${node}`;
/** A compute still in steps. */
const IN_STEPS = Symbol('in steps');

function later(fn: () => void, restMs: number): { cancel(): void } {
  if (restMs <= 0) {
    const h = setImmediate(fn);
    h.unref?.();
    return { cancel: () => clearImmediate(h) };
  }
  const t = setTimeout(fn, restMs);
  t.unref?.();
  return { cancel: () => clearTimeout(t) };
}

/** What an expected hash is computed from: the data of `version` under the config of `revision`. */
export interface ExpectedHashInput {
  readonly version: number;
  readonly revision: number;
  readonly config: ProxyConfig;
  /** The content of `version` (the planner's published data while `version` is its latest). */
  readonly data: ClusterDataSource;
}

/**
 * The renderings behind the planner's NodeHashChecks (issue 15 item 3: no per-node work the
 * planner could do once). One ExpectedNodeStateHashes per config revision in use: built once
 * (O(cluster)), then moved to each newer version in O(changed services), and asked per node in
 * O(that node's own items), where a full render + hash per node cost O(cluster) each (~1.7 s per
 * node at 10k services). Keeps the `keep` revisions asked about last (a rollout has two in use);
 * a revision's config never changes, so the revision number names it.
 */
export class ExpectedHashCache {
  private readonly byRevision = new Map<number, { readonly hashes: ExpectedNodeStateHashes; version: number }>();

  constructor(private readonly keep = 2) {}

  hash(node: string, at: ExpectedHashInput): string {
    const e = this.entry(at);
    if (e.version !== at.version) {
      e.hashes.update(at.data);
      e.version = at.version;
    }
    return e.hashes.hash(node);
  }

  /** hash(node, at) as ExpectedNodeStateHashes.hashSteps (the shared part moved to `at` first, at once when not prepared). */
  hashSteps(node: string, at: ExpectedHashInput): Iterator<void, string> {
    const e = this.entry(at);
    if (e.version !== at.version) {
      e.hashes.update(at.data);
      e.version = at.version;
    }
    return e.hashes.hashSteps(node);
  }

  /**
   * The shared part of `at` built in bounded steps (ExpectedNodeStateHashes.updateSteps), for
   * NodeHashChecks' prepare; undefined when it is built already. Until its last step the
   * revision counts as at no version: a hash() then builds what is left at once.
   */
  prepare(at: ExpectedHashInput): Iterator<void> | undefined {
    const e = this.entry(at);
    if (e.version === at.version) return undefined;
    e.version = -1;
    const steps = e.hashes.updateSteps(at.data);
    return (function* () {
      yield* steps;
      e.version = at.version;
    })();
  }

  private entry(at: ExpectedHashInput): { readonly hashes: ExpectedNodeStateHashes; version: number } {
    let e = this.byRevision.get(at.revision);
    this.byRevision.delete(at.revision); // set again below: the most recently used goes last
    e ??= { hashes: new ExpectedNodeStateHashes(at.config), version: -1 };
    this.byRevision.set(at.revision, e);
    for (const r of this.byRevision.keys()) if (this.byRevision.size > this.keep) this.byRevision.delete(r);
    return e;
  }
}
