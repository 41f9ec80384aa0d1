import { JetStreamApiError } from '@nats-io/jetstream';
import { RequestError, TimeoutError } from '@nats-io/transport-node';
import { ReplicasRefused } from './stream-replicas.ts';

// Nearly a leaf on purpose (only stream-replicas.ts, itself a leaf): libs/eventlog's replicator uses it, and the bus
// index imports libs/eventlog, so going through the index would make a cycle.

/**
 * JetStream API error codes that a forming or re-electing cluster answers with and that go away
 * on their own (nats-server's errors.json): 10008 "JetStream system temporarily unavailable",
 * 10009 "JetStream cluster can not handle request". Placement refusals (10005 no suitable peers,
 * 10023 insufficient resources) are not retried: they usually mean more replicas than servers, and
 * an operator should hear that at once (ReplicasRefused, exit 2).
 */
const TRANSIENT_API_CODES: ReadonlySet<number> = new Set([10008, 10009]);

/**
 * True for a failure that waiting can cure: a request nobody answered in time (no meta leader yet,
 * a stream leader being elected), no responders (JetStream not up on the server yet), a 503 from
 * the JetStream API. A refusal (bad config, too many replicas, permissions) is not transient.
 */
export function isTransientJetStreamError(e: unknown): boolean {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++) {
    if (cur instanceof ReplicasRefused) return false;
    if (cur instanceof TimeoutError) return true;
    if (cur instanceof RequestError && cur.isNoResponders()) return true;
    if (cur instanceof JetStreamApiError) return cur.status === 503 || TRANSIENT_API_CODES.has(cur.code);
    // Wrapped or re-thrown as plain errors (the message is all that is left).
    if (/^(timeout|503\b)|no responders/i.test(cur.message)) return true;
  }
  return false;
}

export interface RetryTransientOptions {
  /** Give up (rethrow the last error) once this many ms have passed since the first try. */
  withinMs: number;
  /** First pause; doubles up to maxPauseMs. */
  pauseMs?: number;
  maxPauseMs?: number;
  /** Told about each transient failure before the pause. */
  onRetry?: (e: Error, attempt: number) => void;
  /** Clock and sleep for tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Runs `run` again after a transient JetStream failure until it succeeds or `withinMs` is spent.
 * `run` must be safe to repeat: every caller here opens or creates something idempotently and
 * releases what a failed attempt took before it throws.
 */
export async function retryTransient<T>(run: () => Promise<T>, o: RetryTransientOptions): Promise<T> {
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const deadline = now() + o.withinMs;
  let pause = o.pauseMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (e) {
      if (!isTransientJetStreamError(e) || now() + pause > deadline) throw e;
      o.onRetry?.(e as Error, attempt);
      await sleep(pause);
      pause = Math.min(pause * 2, o.maxPauseMs ?? 2000);
    }
  }
}

/**
 * A promise that rejects when `abandon(e)` is called, and never otherwise: raced against a request
 * in flight, it lets its caller stop waiting (the request runs on, its answer unread). Its own
 * rejection is handled here, so one nobody raced does not become an unhandled rejection.
 *
 * Race requests with `race(p)`, never `Promise.race([p, promise])`: Promise.race adds a reaction to
 * every racer, and `promise` stays pending for as long as the planner leads (weeks), so each
 * request raced so left one on it, holding the race's promise and its answer (a PubAck, a
 * publish result) until the next step-down: ~400 bytes per bus write and log append, for ever
 * (probe21 P21-2). `race` holds a request only until it settles.
 */
export interface AbandonSignal {
  readonly promise: Promise<never>;
  abandon(e: Error): void;
  /** `p`, or a rejection as soon as abandon() is called (p runs on); nothing of p is kept once it settled. */
  race<T>(p: Promise<T>): Promise<T>;
}

export function abandonSignal(): AbandonSignal {
  let abandon!: (e: Error) => void;
  const promise = new Promise<never>((_, rej) => {
    abandon = rej;
  });
  promise.catch(() => {});
  const waiting = new Set<(e: Error) => void>();
  let reason: Error | undefined;
  return {
    promise,
    abandon(e) {
      reason ??= e;
      abandon(e);
      for (const reject of waiting) reject(e);
      waiting.clear();
    },
    race<T>(p: Promise<T>): Promise<T> {
      if (reason) {
        p.catch(() => {});
        return Promise.reject(reason);
      }
      return new Promise<T>((resolve, reject) => {
        waiting.add(reject);
        p.then(
          (v) => {
            waiting.delete(reject);
            resolve(v);
          },
          (e) => {
            waiting.delete(reject);
            reject(e);
          },
        );
      });
    },
  };
}
