/**
 * The planner's wall clock, checked against the NATS server's (probe12 L1–L3). A planner stamps
 * what it records (versions, operations, ACK receipt, rollout wave and bake starts) and measures
 * ages (retention, a wave or bake it takes over) with its wall clock; one started before NTP synced,
 * or a replica on a host whose clock is off, stamped an hour in the future, ended a canary's bake
 * the moment it took over, made audits answer versions the node had left, and compacted versions
 * inside the retention window. The NATS server stamps every JetStream write with its own clock, the
 * same for every planner of the group: a planner reads the stamp of a write it made (its member
 * record, every TTL/4) and learns how far its clock is from the server's.
 *
 * Within `boundMs` the planner's own clock is used (planners of a group stay that close, and the log
 * clamps a row to its parent within 60 s, CLOCK_STEP_BOUND_MS); beyond it, `now()` is the server's
 * time as measured, so the group keeps one time whichever planner writes.
 */
export class ServerClock {
  private offset: { readonly ms: number; readonly rttMs: number } | undefined;

  constructor(
    private readonly boundMs = SERVER_CLOCK_BOUND_MS,
    private readonly wall: () => number = () => Date.now(),
  ) {}

  /**
   * A write sent at `sentMs` and answered at `answeredMs` (this process's wall clock) that the
   * server stamped `serverMs`: the server stored it in between, so the offset is known to within
   * half the round trip. A round trip over `maxRttMs` (an event loop blocked, a slow server) is
   * too loose to learn from.
   */
  sample(sentMs: number, serverMs: number, answeredMs: number, maxRttMs = 2000): void {
    const rttMs = answeredMs - sentMs;
    if (!Number.isFinite(serverMs) || !(rttMs >= 0) || rttMs > maxRttMs) return;
    this.offset = { ms: serverMs - (sentMs + answeredMs) / 2, rttMs };
  }

  /** How far the server's clock is ahead of this process's (negative: behind); undefined: not measured yet. */
  offsetMs(): number | undefined {
    return this.offset?.ms;
  }

  /** The correction now() applies: the offset when it exceeds the bound, else 0. */
  correctionMs(): number {
    const o = this.offset?.ms;
    return o !== undefined && Math.abs(o) > this.boundMs ? o : 0;
  }

  /** The time to stamp and measure ages by. */
  now(): Date {
    return new Date(this.wall() + this.correctionMs());
  }

  /** One line while the clocks differ by more than the bound, else undefined. */
  describe(): string | undefined {
    const c = this.correctionMs();
    if (c === 0) return undefined;
    const s = Math.round(Math.abs(c) / 1000);
    return `this planner's clock is ${s} s ${c < 0 ? 'ahead of' : 'behind'} the NATS server's: it stamps and measures ages by the server's time (fix its NTP)`;
  }
}

/** Planners closer to the server's clock than this use their own. */
export const SERVER_CLOCK_BOUND_MS = 30_000;
