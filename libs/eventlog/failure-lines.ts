/**
 * What to say of something retried until it works (a follower's catch-up): one line when it starts
 * failing, then at most one per `everyMs` saying how many failures it stands for, and one when it
 * works again. A follower with an unusable file said "following failed … retrying" at every retry
 * (disk10), burying the lines around it. Pure: the caller passes a monotonic time and says the lines.
 */
export class FailureLines {
  /** Failures in a row (0: working). */
  private inRow = 0;
  private startedAt = 0;
  private saidAt = 0;
  /** Failures since the last line said. */
  private unsaid = 0;

  constructor(
    /** What fails, as the lines' subject ("following"). */
    private readonly what: string,
    private readonly everyMs = 60_000,
  ) {}

  /** A failure; the line to say now, if any. */
  failed(why: string, now: number): string | undefined {
    this.inRow++;
    if (this.inRow === 1) {
      this.startedAt = this.saidAt = now;
      return `${this.what} failed (${why}); retrying (said again at most once a minute while it fails)`;
    }
    this.unsaid++;
    if (now - this.saidAt < this.everyMs) return undefined;
    const line = `${this.what} still failing (${why}): ${this.unsaid} more failures since the last line, ${this.inRow} in ${secs(now - this.startedAt)} s; retrying`;
    this.saidAt = now;
    this.unsaid = 0;
    return line;
  }

  /** It worked; the line to say if it had been failing. */
  worked(now: number): string | undefined {
    if (this.inRow === 0) return undefined;
    const line = `${this.what} works again after ${this.inRow} failure${this.inRow === 1 ? '' : 's'} in ${secs(now - this.startedAt)} s`;
    this.inRow = 0;
    this.unsaid = 0;
    return line;
  }
}

function secs(ms: number): number {
  return Math.round(ms / 1000);
}
