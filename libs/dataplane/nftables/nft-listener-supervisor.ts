/**
 * Keeps the change-notification listener (nft-notification-listener.ts) running (node10 L1).
 * Before, a listener that died (SIGKILL from the OOM killer or an operator, ENOBUFS, a crash of
 * its native module) was started again only by the next apply or periodic resync (a minute away
 * by default), and its loss became a resync only when the ruleset generation had already moved:
 * meanwhile our table could be deleted or flushed with no drift signal, and nothing said the
 * listener was gone.
 *
 * A loss schedules a restart after a backoff: 500 ms, doubling up to 30 s for each restart that
 * fails or each death soon after a restart, back to 500 ms once the listener has stayed up for a
 * healthy period (60 s). After each restart that works, `onBack` asks for a full resync (read
 * back + repair): commits made while it was down were never recorded, so nothing but a read can
 * say what they changed. One line when it dies and one when it is back (`say`, stderr by
 * default), not one per failed attempt. Timers are unref'd: they never keep a process alive.
 */
export interface NftListenerSupervisorOptions {
  /** Starts the listener (resolves at once when it runs); rejects when it cannot. */
  readonly start: () => Promise<void>;
  /** After a restart that worked (`downMs`: how long it was down; `why`: what ended it). */
  readonly onBack: (downMs: number, why: string) => void;
  /** Where the two lines go (default stderr). */
  readonly say?: (line: string) => void;
  /** First restart delay (ms, default 500). */
  readonly initialDelayMs?: number;
  /** Longest restart delay (ms, default 30 000). */
  readonly maxDelayMs?: number;
  /** A listener up this long resets the delay to initialDelayMs (ms, default 60 000). */
  readonly healthyMs?: number;
  /** Milliseconds now, monotonic (default performance.now). */
  readonly clock?: () => number;
}

export const LISTENER_RESTART_INITIAL_MS = 500;
export const LISTENER_RESTART_MAX_MS = 30_000;
export const LISTENER_HEALTHY_MS = 60_000;

export class NftListenerSupervisor {
  private delayMs: number;
  private timer: NodeJS.Timeout | undefined;
  /** Set while the listener is down: since when and why (the first loss of this outage). */
  private outage: { since: number; why: string; attempts: number } | undefined;
  /** When it last came up (clock). */
  private upSince = Number.NEGATIVE_INFINITY;
  private closed = false;
  private readonly clock: () => number;

  constructor(private readonly o: NftListenerSupervisorOptions) {
    this.delayMs = o.initialDelayMs ?? LISTENER_RESTART_INITIAL_MS;
    this.clock = o.clock ?? (() => performance.now());
  }

  /** Why the listener is down, or undefined while it runs (or was never lost). */
  get down(): string | undefined {
    return this.outage?.why;
  }

  /** The running listener was lost (`why`): says so once per outage and schedules its restart. */
  lost(why: string): void {
    if (this.closed) return;
    if (!this.outage) {
      const now = this.clock();
      if (now - this.upSince >= (this.o.healthyMs ?? LISTENER_HEALTHY_MS))
        this.delayMs = this.o.initialDelayMs ?? LISTENER_RESTART_INITIAL_MS;
      this.outage = { since: now, why, attempts: 0 };
      this.say(
        `nftables change-notification listener down (${why}): restarting in ${this.delayMs} ms; a full resync follows its restart`,
      );
    }
    this.schedule();
  }

  /**
   * The listener runs again, started by someone else (an apply's or resync's own start): the
   * outage ends as if the supervisor had restarted it, full resync included.
   */
  started(): void {
    if (this.closed || !this.outage) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.back();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => void this.attempt(), this.delayMs);
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    const outage = this.outage;
    if (this.closed || !outage) {
      this.timer = undefined;
      return;
    }
    outage.attempts++;
    // Each try, good or bad, makes the next outage's first wait longer until a healthy period passes.
    this.delayMs = Math.min(this.delayMs * 2, this.o.maxDelayMs ?? LISTENER_RESTART_MAX_MS);
    let ok = true;
    try {
      await this.o.start();
    } catch {
      ok = false;
    }
    this.timer = undefined;
    if (this.closed || this.outage !== outage) return; // closed, or started() ended it meanwhile
    if (ok) this.back();
    else this.schedule();
  }

  private back(): void {
    const outage = this.outage!;
    this.outage = undefined;
    const now = this.clock();
    this.upSince = now;
    const downMs = Math.round(now - outage.since);
    this.say(
      `nftables change-notification listener back after ${downMs} ms (${outage.attempts} restart attempt${outage.attempts === 1 ? '' : 's'}; lost: ${outage.why}): full resync`,
    );
    this.o.onBack(downMs, outage.why);
  }

  private say(line: string): void {
    (this.o.say ?? ((l: string) => process.stderr.write(`${l}\n`)))(line);
  }
}
