import { RareLines } from './rare-lines.ts';

/**
 * Reports (ACKs, NACKs, heartbeats) the planner drops as not valid (probe10 H2): each is counted
 * and said, so an applier whose every report fails the schema (a mixed-release fleet, a bug) does
 * not just go STALE/UNKNOWN with no clue. Saying is rate-limited per node and reason, since a node
 * may flood its own subject; the reason is one of a fixed few (a metric label).
 */
export const INVALID_REASONS = ['too_large', 'not_json', 'schema', 'wrong_node'] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

/** The reason of a collector's error text (libs/bus ack-collector.ts, parseWire). */
export function invalidReason(error: string): InvalidReason {
  if (/over the \d+-byte limit/.test(error)) return 'too_large';
  if (/^\w+: not JSON$/.test(error)) return 'not_json';
  if (error.startsWith('payload claims node') || error.startsWith('invalid node name')) return 'wrong_node';
  return 'schema';
}

/** At most one line per node and reason per `everyMs`; the next line counts the ones not said. */
export class InvalidReportLimiter {
  private readonly lines: RareLines;

  constructor(everyMs = 60_000) {
    this.lines = new RareLines(everyMs);
  }

  /**
   * The line to say for this report, or undefined while its node+reason was said within `everyMs`.
   * `node`: undefined when the subject names no node the planner knows (its text is not kept).
   */
  offer(node: string | undefined, subjectNode: string, error: string, nowMs: number): string | undefined {
    const reason = invalidReason(error);
    return this.lines.note(`${node ?? ''}|${reason}`, nowMs, (unsaid) => {
      const who = node ?? `unknown node ${JSON.stringify(subjectNode.slice(0, 64))}`;
      const more = unsaid ? ` (${unsaid} more from it since the last such line)` : '';
      return `dropped an invalid report from ${who} (${reason}): ${error.slice(0, 200)}${more}`;
    });
  }

  /** Forgets a node no longer shown (node names churn; this must not grow with them). */
  forget(node: string): void {
    this.lines.forget(`${node}|`);
  }
}
