/**
 * Each step's failure (append, sync, publish, source, ...) until that step next succeeds, and
 * since when it has failed: what lastError, /readyz and /status say of the planner's own steps.
 */
export class StepFailures {
  /** Each step's failure until that step next succeeds. */
  private readonly failures = new Map<string, string>();
  /** When each failing step started failing (performance.now(): a clock step cannot move it). */
  private readonly failingSince = new Map<string, number>();

  constructor(private readonly onError?: (where: string, err: unknown) => void) {}

  /** The most recent failure still current, or undefined once every step that failed has worked again. */
  get last(): string | undefined {
    return [...this.failures.values()].at(-1);
  }

  /** The failure of one step (e.g. 'append', 'source') while it lasts, else undefined. */
  of(where: string): string | undefined {
    return this.failures.get(where);
  }

  /** How long (ms) a step has failed without a success in between; undefined: it is not failing. */
  failingFor(where: string, nowMs = performance.now()): number | undefined {
    const since = this.failingSince.get(where);
    return since === undefined ? undefined : nowMs - since;
  }

  fail(where: string, err: unknown): void {
    if (!this.failingSince.has(where)) this.failingSince.set(where, performance.now());
    this.failures.delete(where); // re-inserted last: the newest failure is the one shown
    this.failures.set(where, `${where}: ${err instanceof Error ? err.message : String(err)}`);
    this.onError?.(where, err);
  }

  recovered(where: string): void {
    this.failures.delete(where);
    this.failingSince.delete(where);
  }
}
