/**
 * Each step's failure (append, sync, publish, source, ...) until that step next succeeds, and
 * since when it has failed: what lastError, /readyz and /status say of the planner's own steps.
 */

/** A step's failure as said to the operator: it started (or changed), or it is over. */
export type StepFailureChange =
  | { readonly where: string; readonly failing: string }
  | { readonly where: string; readonly failing?: undefined; readonly failedForMs: number };

export interface StepFailuresOptions {
  readonly onError?: (where: string, err: unknown) => void;
  /**
   * A step started failing, failed differently (at most once per `sayEveryMs`), or works again.
   * Not every retry: a source or publish that fails each second would fill the log with one line.
   */
  readonly onChange?: (c: StepFailureChange) => void;
  /** Least time between two lines about one failing step whose error changes (default 60 s). */
  readonly sayEveryMs?: number;
  readonly nowMs?: () => number;
}

export class StepFailures {
  /** Each step's failure until that step next succeeds. */
  private readonly failures = new Map<string, string>();
  /** When each failing step started failing (performance.now(): a clock step cannot move it). */
  private readonly failingSince = new Map<string, number>();
  /** What was last said of each failing step, and when (the steps said at all: onChange). */
  private readonly said = new Map<string, { text: string; atMs: number }>();
  private readonly now: () => number;

  constructor(private readonly o: StepFailuresOptions = {}) {
    this.now = o.nowMs ?? (() => performance.now());
  }

  /** The most recent failure still current, or undefined once every step that failed has worked again. */
  get last(): string | undefined {
    return [...this.failures.values()].at(-1);
  }

  /** The failure of one step (e.g. 'append', 'source') while it lasts, else undefined. */
  of(where: string): string | undefined {
    return this.failures.get(where);
  }

  /** How long (ms) a step has failed without a success in between; undefined: it is not failing. */
  failingFor(where: string, nowMs = this.now()): number | undefined {
    const since = this.failingSince.get(where);
    return since === undefined ? undefined : nowMs - since;
  }

  /** `say`: false for a failure someone else already tells the operator (the group's: its lease, its cluster). */
  fail(where: string, err: unknown, say = true): void {
    const now = this.now();
    if (!this.failingSince.has(where)) this.failingSince.set(where, now);
    const text = err instanceof Error ? err.message : String(err);
    this.failures.delete(where); // re-inserted last: the newest failure is the one shown
    this.failures.set(where, `${where}: ${text}`);
    this.o.onError?.(where, err);
    const said = this.said.get(where);
    if (!say || said?.text === text || (said && now - said.atMs < (this.o.sayEveryMs ?? 60_000))) return;
    this.said.set(where, { text, atMs: now });
    this.o.onChange?.({ where, failing: text });
  }

  recovered(where: string): void {
    const since = this.failingSince.get(where);
    this.failures.delete(where);
    this.failingSince.delete(where);
    if (this.said.delete(where) && since !== undefined) this.o.onChange?.({ where, failedForMs: this.now() - since });
  }
}
