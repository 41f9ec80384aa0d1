/**
 * How many console event streams may be open at once: per token identity and in all. Each open
 * stream holds a timer, a socket and up to the stream's buffer limit of unsent bytes, and gets the
 * snapshot text written to it at every change, on the planner's one thread: without a cap, any
 * viewer token could open streams until the planner ran out of memory or time.
 *
 * Pure bookkeeping: take() answers a slot (release it when the stream ends, any number of times)
 * or the refusal with its HTTP code: 429 when this identity holds its share (its own streams are
 * the cause), 503 when the planner holds all it serves (try later).
 */
export interface StreamLimits {
  /** Streams one token identity may hold open (default 10: a few tabs and a wallboard or two). */
  readonly perIdentity?: number;
  /** Streams the planner serves at once (default 100). */
  readonly total?: number;
}

export const DEFAULT_STREAMS_PER_IDENTITY = 10;
export const DEFAULT_STREAMS_TOTAL = 100;

export type SlotAnswer = { readonly release: () => void } | { readonly code: 429 | 503; readonly reason: string };

export class StreamSlots {
  private readonly held = new Map<string, number>();
  private total = 0;
  readonly perIdentity: number;
  readonly max: number;

  constructor(o: StreamLimits = {}) {
    this.perIdentity = o.perIdentity ?? DEFAULT_STREAMS_PER_IDENTITY;
    this.max = o.total ?? DEFAULT_STREAMS_TOTAL;
  }

  take(identity: string): SlotAnswer {
    const mine = this.held.get(identity) ?? 0;
    if (mine >= this.perIdentity)
      return {
        code: 429,
        reason: `${identity} already has ${mine} console event streams open (at most ${this.perIdentity} per token identity); close one`,
      };
    if (this.total >= this.max)
      return {
        code: 503,
        reason: `the planner already serves ${this.total} console event streams (at most ${this.max}); try again later`,
      };
    this.held.set(identity, mine + 1);
    this.total++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.total--;
        const left = (this.held.get(identity) ?? 1) - 1;
        if (left > 0) this.held.set(identity, left);
        else this.held.delete(identity);
      },
    };
  }

  /** Streams open now (for identity, or in all). */
  open(identity?: string): number {
    return identity === undefined ? this.total : (this.held.get(identity) ?? 0);
  }
}
