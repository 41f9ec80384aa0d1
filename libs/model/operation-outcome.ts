import type { Operation } from './event-schema.ts';

/**
 * A refused operator action as the operations log keeps it (probe11 K5): the kind it asked for,
 * its actor and reason, and in `params.refused` the answer's status, its one-line error and the
 * request (without the reason, which has its own column). Nothing reads these params back as
 * state: the axes restore from `pin`, `configState` and `cluster` only.
 */
export interface RefusedRequest {
  readonly status: number;
  readonly error: string;
  readonly request: Readonly<Record<string, unknown>>;
}

/** A refusal's error and request are cut to these sizes: the record is evidence, not a copy. */
const MAX_ERROR = 300;
const MAX_REQUEST = 2000;

export function refusedOperation(
  o: Omit<Operation, 'params'> & { status: number; error: string; request: Record<string, unknown> },
): Operation {
  const line = o.error.split('\n')[0]!.trim();
  const { reason: _reason, ...asked } = o.request;
  const text = JSON.stringify(asked);
  const refused: RefusedRequest = {
    status: o.status,
    error: line.length > MAX_ERROR ? `${line.slice(0, MAX_ERROR)}…` : line,
    request: text.length > MAX_REQUEST ? { cut: `${text.slice(0, MAX_REQUEST)}…` } : asked,
  };
  return { kind: o.kind, actor: o.actor, reason: o.reason, params: { refused } };
}

/** What an operation record's outcome was: `accepted`, or `refused (409): <its error>`. */
export function operationOutcome(op: Pick<Operation, 'params'>): string {
  const r = op.params.refused as RefusedRequest | undefined;
  return r && typeof r === 'object' ? `refused (${r.status}): ${r.error}` : 'accepted';
}
