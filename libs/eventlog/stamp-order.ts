/**
 * Wall-clock stamps of a hash-chained table (versions' created_at, acks' received_at) and the
 * times audits place its rows at (review4 G6).
 *
 * The writer keeps a table's stamps monotonic by clamping a stamp up to the previous row's, but
 * only by up to CLOCK_STEP_BOUND_MS (clock skew between the planners of a group, a small NTP
 * slew). A previous row further ahead than that is a clock fault: one row stamped by a clock far
 * ahead (an RTC wrong until NTP syncs, a VM restored from a snapshot) used to become the stamp of
 * every later row, the whole group's, until real time passed it. Beyond the bound the writer
 * keeps its own time and says so, and the stamps step back there.
 *
 * Rows are made in id order, whatever their stamps say; a step back says that the rows on one
 * side of it were stamped by a wrong clock, and placeInTime decides which:
 *  - a run of rows stamped more than the bound below the highest stamp before them, after which
 *    the stamps are back at that level (a clock behind that NTP then corrected: a dip), is placed
 *    at that highest stamp (never before the rows made before it, as the clamp would have); so is
 *    a run not followed by such a row (yet) that is no longer than the run of rows it finds more
 *    than the bound ahead (one planner minutes behind another after a failover, review2 L3);
 *  - otherwise the rows before the step that are more than the bound ahead of a later row's stamp
 *    were stamped by a clock ahead that has since been corrected (the later rows outnumber them):
 *    each is placed at the earliest later stamp (a row that exists at time t proves the rows
 *    before it existed then too);
 *  - the result is made non-decreasing in id order (a row is never placed before the row before
 *    it: review2 L3's rule for steps within the bound, as in logs written before the bound).
 * Without a step beyond the bound this is just that last rule, so answers about such logs do not
 * change. Which side of a step was wrong is a guess from the rows around it; rows written later
 * may change the reading of a recent step (its error is at most the step, or the time until the
 * clock was corrected).
 */

/** How far a stamp is clamped up to the previous row's before it counts as a clock fault. */
export const CLOCK_STEP_BOUND_MS = 60_000;

/**
 * The time (ms) each row is placed at, non-decreasing, for stamps (ms) in id order (see above).
 * A stamp that is not a time (NaN) is placed with the row before it. Pure, O(n).
 */
export function placeInTime(stamps: readonly number[], boundMs = CLOCK_STEP_BOUND_MS): number[] {
  const n = stamps.length;
  const out = stamps.map((s, i) => (Number.isNaN(s) ? (i > 0 ? stamps[i - 1]! : Number.NEGATIVE_INFINITY) : s));
  // Dips: lifted to the level before them when a later row is back at that level.
  let high = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    if (out[i]! >= high - boundMs) {
      high = Math.max(high, out[i]!);
      continue;
    }
    let back = i + 1;
    while (back < n && out[back]! < high - boundMs) back++;
    if (back === n) {
      // Not resolved (yet): the rows after the step outnumber those it calls ahead: a correction (below).
      const ahead = out.slice(0, i).filter((s) => s > out[i]! + boundMs).length;
      if (n - i > ahead) break;
    }
    for (let j = i; j < back; j++) out[j] = high;
    i = back - 1;
  }
  // Clocks ahead: a row more than the bound after a later row's time is placed at that time.
  let later = Number.POSITIVE_INFINITY;
  for (let i = n - 1; i >= 0; i--) {
    if (out[i]! > later + boundMs) out[i] = later;
    later = Math.min(later, out[i]!);
  }
  for (let i = 1; i < n; i++) if (out[i]! < out[i - 1]!) out[i] = out[i - 1]!;
  return out;
}

/** Whether some stamp is more than the bound before the highest one before it (a clock fault). */
export function hasClockStep(stamps: readonly number[], boundMs = CLOCK_STEP_BOUND_MS): boolean {
  let high = Number.NEGATIVE_INFINITY;
  for (const s of stamps) {
    if (s < high - boundMs) return true;
    if (s > high) high = s;
  }
  return false;
}

/**
 * Where placeInTime guesses (probe12 L2): fed stamps in id order, the span of times a step back
 * makes uncertain — from where the stamps last jumped forward past the bound before stepping back
 * (where a wrong clock may have begun), or the lowest stamp after the step, to the highest stamp
 * before it — and the largest step. An answer for a time inside it may be off by up to that step:
 * with two wrong clocks in turn, the rows' order alone cannot say which side was wrong.
 */
export class StepSpan {
  private high = Number.NEGATIVE_INFINITY;
  private jumpFrom: number | undefined;
  private from = Number.POSITIVE_INFINITY;
  private to = Number.NEGATIVE_INFINITY;
  private largest = 0;

  constructor(private readonly boundMs = CLOCK_STEP_BOUND_MS) {}

  /** The next row's stamp (ms; NaN: no stamp, skipped). */
  add(t: number): void {
    if (Number.isNaN(t)) return;
    if (t > this.high + this.boundMs && Number.isFinite(this.high)) this.jumpFrom = this.high;
    if (t < this.high - this.boundMs) {
      this.from = Math.min(this.from, t, this.jumpFrom ?? t);
      this.to = Math.max(this.to, this.high);
      this.largest = Math.max(this.largest, this.high - t);
    }
    if (t > this.high) this.high = t;
  }

  /** Whether some stamp stepped back by more than the bound (hasClockStep). */
  stepped(): boolean {
    return this.largest > 0;
  }

  /** One line when `at` (ms) lies in the uncertain span, else undefined; `what` names the stamps. */
  uncertainAt(at: number, what: string): string | undefined {
    if (!this.stepped() || at < this.from || at > this.to) return undefined;
    return `${what} step back by up to ${Math.round(this.largest / 1000)} s between ${new Date(this.from).toISOString()} and ${new Date(this.to).toISOString()} (a planner's clock was wrong): rows are placed by their order, and this answer may be off by that much`;
  }
}

/**
 * The stamp of a new row after one stamped `prev` (ISO-8601 UTC), the writer's clock reading
 * `now`: `now`, or `prev` when that is ahead of `now` by at most the bound (monotonic along the
 * chain: review2 L3). A `prev` further ahead is a clock fault: `now` is kept and `aheadMs` says
 * by how much `prev` is ahead, for the writer to report.
 */
export function nextStamp(
  prev: string | null | undefined,
  now: string,
  boundMs = CLOCK_STEP_BOUND_MS,
): { readonly stamp: string; readonly aheadMs?: number } {
  if (!prev || prev <= now) return { stamp: now };
  const aheadMs = Date.parse(prev) - Date.parse(now);
  return aheadMs > boundMs ? { stamp: now, aheadMs } : { stamp: prev };
}
