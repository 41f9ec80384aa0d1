// Capped exponential backoff with jitter. `random` is injectable so tests get exact delays.

export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialMs?: number;
  /** Upper bound for the un-jittered delay (default 30 s). */
  maxMs?: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Fraction of the delay that is randomized (default 0.5: delay in [d/2, d]). */
  jitter?: number;
  /** Uniform [0, 1) source (default Math.random). */
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? 500;
    this.maxMs = options.maxMs ?? 30_000;
    this.factor = options.factor ?? 2;
    this.jitter = options.jitter ?? 0.5;
    this.random = options.random ?? Math.random;
    if (
      !(this.initialMs >= 0) ||
      !(this.maxMs >= this.initialMs) ||
      !(this.factor >= 1) ||
      !(this.jitter >= 0 && this.jitter <= 1)
    ) {
      throw new Error(
        `invalid backoff options: ${JSON.stringify({ initialMs: this.initialMs, maxMs: this.maxMs, factor: this.factor, jitter: this.jitter })}`,
      );
    }
  }

  /** Failures since the last reset(). */
  get failures(): number {
    return this.attempt;
  }

  /** Delay before the next retry; each call counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt += 1;
    // Jitter spreads reconnects of many informers after a shared apiserver outage.
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  reset(): void {
    this.attempt = 0;
  }
}

/**
 * The wait before a retry: the backoff's delay, or longer when the server asked for it (429/503
 * Retry-After), capped so a wrong or hostile header cannot park the client for long.
 */
export function retryDelayMs(backoffMs: number, retryAfterSeconds: number | undefined, capMs = 60_000): number {
  if (retryAfterSeconds === undefined || !(retryAfterSeconds > 0)) return backoffMs;
  return Math.max(backoffMs, Math.min(retryAfterSeconds * 1000, capMs));
}
