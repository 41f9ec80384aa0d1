/**
 * What to say of something retried until it works (a follower's catch-up): one line when it starts
 * failing, then at most one per `everyMs` saying how many failures it stands for, and one when it
 * works again. A follower with an unusable file said "following failed … retrying" at every retry
 * (disk10), burying the lines around it. Lines of any kind are at least `everyMs` apart, except a
 * recovery's: something that fails and works by turns (a consumer stalling again and again) says
 * about one failure and one recovery a minute, a failure run nothing was said of ends unsaid.
 * Pure: the caller passes a monotonic time and says the lines.
 */
export class FailureLines {
  /** Failures in a row (0: working). */
  private inRow = 0;
  private startedAt = 0;
  private saidAt = Number.NEGATIVE_INFINITY;
  /** Whether a line was said of the failures in a row so far. */
  private saidRun = false;
  /** Failures since the last line said. */
  private unsaid = 0;

  constructor(
    /** What fails, as the lines' subject ("following"). */
    private readonly what: string,
    private readonly everyMs = 60_000,
  ) {}

  /** A failure; the line to say now, if any. */
  failed(why: string, now: number): string | undefined {
    if (this.inRow++ === 0) this.startedAt = now;
    if (now - this.saidAt < this.everyMs) {
      this.unsaid++;
      return undefined;
    }
    const span = `${this.inRow} in ${secs(now - this.startedAt)} s`;
    const line = this.saidRun
      ? `${this.what} still failing (${why}): ${this.unsaid + 1} failures since the last line, ${span}; retrying`
      : `${this.what} failed (${why})${this.inRow > 1 ? ` (${span})` : ''}; retrying (said again at most once a minute while it fails)`;
    this.saidAt = now;
    this.saidRun = true;
    this.unsaid = 0;
    return line;
  }

  /** It worked; the line to say if its failing was said. */
  worked(now: number): string | undefined {
    if (this.inRow === 0) return undefined;
    const line = this.saidRun
      ? `${this.what} works again after ${this.inRow} failure${this.inRow === 1 ? '' : 's'} in ${secs(now - this.startedAt)} s`
      : undefined;
    if (line) this.saidAt = now;
    this.inRow = 0;
    this.unsaid = 0;
    this.saidRun = false;
    return line;
  }
}

function secs(ms: number): number {
  return Math.round(ms / 1000);
}
