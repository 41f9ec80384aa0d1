import { Counter, type Registry } from 'prom-client';
import { refusedOperation, type Operation, type OperationKind } from '../../libs/model/index.ts';
import type { ApiRoute, RouteCall } from './http-api.ts';
import { HttpError } from './http-error.ts';
import { RareLines } from './rare-lines.ts';

/**
 * What the API does with operator actions it refuses (probe11 K5).
 *
 * An authenticated operator's refused operation (a 409 collision with a rollout, a failed promote,
 * a 400 on a field, a version compacted away) is an operator action: it goes to the operations
 * log with actor, reason, the request and `refused (CODE): <error>`, on the leader only (a
 * follower answers 307/503 before any handler runs, and Planner.recordRefusal refuses there too).
 * 5xx answers are not refusals (a 503 "not confirmed" may still land) and are not recorded.
 *
 * Operators are trusted identities from the token file, yet a script looping on a 409 must not
 * grow the log without bound: each token gets REFUSALS_BURST records at once, then one per
 * REFUSAL_REFILL_MS; refusals beyond are counted (switchboard_planner_operations_refused_total,
 * recorded="false") and said on stderr at most once a minute. The bucket is per token identity,
 * not per recorded actor: the client-sent actor suffix is free text.
 *
 * 401/403 (no token, a wrong one, a viewer trying to operate, a write from another site's page:
 * request-guard.ts) are not operator actions and are never written to the log (an unauthenticated
 * client must not grow it): they are counted (switchboard_planner_requests_denied_total) and said
 * on stderr at most once a minute.
 */
export const REFUSALS_BURST = 20;
export const REFUSAL_REFILL_MS = 30_000;
const SAY_EVERY_MS = 60_000;

/** The planner's part: writes one operation record if it leads (rejects otherwise). */
export interface RefusalSink {
  recordRefusal(op: Operation): Promise<unknown>;
}

function counter(registry: Registry | undefined, name: string, help: string, labelNames: string[]) {
  if (!registry) return undefined;
  return (
    (registry.getSingleMetric(name) as Counter<string> | undefined) ??
    new Counter({ name, help, labelNames, registers: [registry] })
  );
}

/** Says a running count on stderr at most once per SAY_EVERY_MS (the first one at once). */
class RareLine {
  private readonly lines = new RareLines(SAY_EVERY_MS);
  constructor(
    private readonly say: (line: string) => void,
    private readonly now: () => number,
  ) {}
  /** `line` gets the count of notes this line stands for (this one and those not said before it). */
  note(line: (count: number) => string): void {
    const said = this.lines.note('', this.now(), (unsaid) => line(unsaid + 1));
    if (said !== undefined) this.say(said);
  }
}

export interface RefusalOptions {
  readonly registry?: Registry;
  readonly say?: (line: string) => void;
  readonly now?: () => number;
}

/** Records refused operations of authenticated operators, within a budget per token. */
export class RefusalRecorder {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly counted;
  private readonly over: RareLine;
  private readonly now: () => number;

  constructor(
    private readonly sink: RefusalSink,
    o: RefusalOptions = {},
  ) {
    this.now = o.now ?? Date.now;
    this.counted = counter(
      o.registry,
      'switchboard_planner_operations_refused_total',
      'Operations refused to an authenticated operator (4xx), by status and whether the refusal was recorded in the log',
      ['status', 'recorded'],
    );
    this.over = new RareLine(o.say ?? ((l) => process.stderr.write(`planner: ${l}\n`)), this.now);
  }

  /** The route with its refusals recorded: the answer is unchanged, the record is written before it. */
  route(r: ApiRoute): ApiRoute {
    return { ...r, handle: (call) => this.recorded(r.path, call, () => r.handle(call)) };
  }

  private async recorded(path: string, call: RouteCall, run: () => unknown): Promise<unknown> {
    try {
      return await run();
    } catch (e) {
      // as the API answers it (http-api.ts): a planner operation's own error is a 409
      const status = e instanceof HttpError ? e.code : 409;
      if (status >= 400 && status < 500) await this.record(path, call, status, e);
      throw e;
    }
  }

  private async record(path: string, call: RouteCall, status: number, e: unknown): Promise<void> {
    const recorded = this.take(call.principal?.identity ?? 'anonymous');
    this.counted?.inc({ status: String(status), recorded: String(recorded) });
    if (!recorded) {
      this.over.note(
        (n) =>
          `${n} refused operation(s) not recorded in the log: ${call.who.actor} exceeded ${REFUSALS_BURST} recorded refusals (then 1 per ${REFUSAL_REFILL_MS / 1000} s); see switchboard_planner_operations_refused_total`,
      );
      return;
    }
    const op = refusedOperation({
      kind: path.slice(1) as OperationKind, // /pin, /rollback, ...: the routes are named by their kind
      actor: call.who.actor,
      reason: call.who.reason,
      status,
      error: e instanceof Error ? e.message : String(e),
      request: call.body,
    });
    // Awaited: the answer waits for the group's flush, as an accepted operation's does. A refusal that
    // cannot be written or flushed (a follower, a full disk, a fenced leader) still answers as it would.
    await this.sink.recordRefusal(op).catch(() => {});
  }

  private take(key: string): boolean {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: REFUSALS_BURST, at: t };
    b.tokens = Math.min(REFUSALS_BURST, b.tokens + (t - b.at) / REFUSAL_REFILL_MS);
    b.at = t;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** 401/403: counted and said on stderr (at most once a minute), never written to the log. */
export class DeniedRequests {
  private readonly counted;
  private readonly line: RareLine;

  constructor(o: RefusalOptions = {}) {
    this.counted = counter(
      o.registry,
      'switchboard_planner_requests_denied_total',
      "API requests answered 401 (no or a wrong token) or 403 (a viewer token on an operation, a write from another site's page); not recorded in the log",
      ['status'],
    );
    this.line = new RareLine(o.say ?? ((l) => process.stderr.write(`planner: ${l}\n`)), o.now ?? Date.now);
  }

  note(status: 401 | 403, what: string): void {
    this.counted?.inc({ status: String(status) });
    this.line.note((n) => `${n} API request(s) denied since the last such line; latest: ${status} ${what}`);
  }
}
