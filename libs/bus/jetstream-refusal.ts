import { JetStreamApiError } from '@nats-io/jetstream';
import { RequestError, TimeoutError } from '@nats-io/transport-node';

// A leaf on purpose (only the NATS client), like jetstream-transient.ts: libs/eventlog may use it.

/** Why JetStream did not do what was asked, in words an operator can act on. */
export interface JetStreamFailure {
  readonly cause: string;
  /**
   * Waiting will not cure it: an operator must act (free space, raise a limit, enable JetStream).
   * False for what goes away on its own (an election, a server coming back) or cannot be told.
   */
  readonly lasting: boolean;
}

/**
 * JetStream API error codes in plain words (nats-server's server/errors.json, the same codes in
 * 2.9 and 2.12; the client's JetStreamApiCodes names only six of them). Found by hand on a real
 * nats-server 2.9.10: a write to a bucket once the server's `max_file_store` is used up answers
 * 10023 "insufficient resources" (status 503, yet it stays until space is freed), and creating a
 * stream still works then, so a planner starts and its lease claims fail (probe8 J1).
 */
const API_CODES: ReadonlyMap<number, { readonly words: string; readonly lasting: boolean }> = new Map([
  [10002, { words: "the account's JetStream resource limits are exceeded", lasting: true }],
  [
    10008,
    {
      words:
        'JetStream is temporarily unavailable (no meta leader: an election, or too few servers of the cluster for a quorum)',
      lasting: false,
    },
  ],
  [
    10009,
    { words: 'the JetStream cluster cannot handle the request (no leader: an election, or no quorum)', lasting: false },
  ],
  [
    10023,
    {
      words: 'JetStream storage is full on the server (its max_file_store or max_mem_store, or the disk, is used up)',
      lasting: true,
    },
  ],
  [10026, { words: 'the account or stream has reached its maximum number of consumers', lasting: true }],
  [10027, { words: 'the account has reached its maximum number of streams', lasting: true }],
  [10028, { words: "the account's or server's JetStream memory limit is reached", lasting: true }],
  [10039, { words: 'JetStream is not enabled for this account', lasting: true }],
  [10047, { words: "the account's or server's JetStream file storage limit is reached", lasting: true }],
  [10053, { words: "the stream's limits refuse it", lasting: true }],
  [10054, { words: 'the message is larger than the stream or the server allows', lasting: true }],
  [10076, { words: 'JetStream is not enabled on the server', lasting: true }],
  [10077, { words: 'the stream cannot store the message', lasting: true }],
  [10118, { words: 'the stream is offline (no server of its placement can run it)', lasting: true }],
  [10120, { words: 'the account has no JetStream limits (no default or tiered limit applies)', lasting: true }],
]);

/**
 * What an error from a JetStream request means (the first telling one along its `cause` chain):
 * a known API code in words with the server's own text and code; an unknown code is lasting
 * unless its status is 503 (JetStream's "not now"); no responders (the client's "jetstream is
 * not enabled") means nothing serves JetStream there or the stream is gone; an unanswered request
 * cannot be told apart here (see explainJetStreamFailure).
 */
export function describeJetStreamFailure(e: unknown): JetStreamFailure {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++) {
    if (cur instanceof JetStreamApiError) {
      const known = API_CODES.get(cur.code);
      const said = `(JetStream error ${cur.code}: ${cur.message})`;
      return known
        ? { cause: `${known.words} ${said}`, lasting: known.lasting }
        : { cause: `JetStream refused it ${said}`, lasting: cur.status !== 503 };
    }
    if (cur.name === 'JetStreamNotEnabled' || (cur instanceof RequestError && cur.isNoResponders()))
      return {
        cause:
          'nothing answers for JetStream (no responders: JetStream is not enabled on the server, or the stream is gone)',
        lasting: true,
      };
    if (isTimeout(cur)) return { cause: 'no answer from JetStream in time', lasting: false };
  }
  return { cause: e instanceof Error ? e.message : String(e), lasting: false };
}

/** JetStream's code for "maximum number of streams reached" (the account's `streams` limit). */
const MAX_STREAMS = 10027;

/**
 * The streams a planner group makes in its account: the versions stream and targets bucket (one
 * per NATS account), and per group its log, the log's snapshots, the lease and the member list.
 */
export const PLANNER_STREAMS = 6;

/**
 * One line for a planner whose account may not make another stream (probe19 P19-4: a named crash
 * loop, `…: maximum number of streams reached`, that said neither which limit nor what to do), or
 * undefined when `e` (along its `cause` chain) is not that refusal.
 */
export function streamLimitRefusal(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++)
    if (cur instanceof JetStreamApiError && cur.code === MAX_STREAMS)
      return `NATS refuses another JetStream stream: the planner's NATS account has reached its maximum number of streams (JetStream error ${MAX_STREAMS}: ${cur.message}); a planner group needs ${PLANNER_STREAMS} streams in it (SB_VERSIONS and KV_sb_targets, and per group SB_LOG_, OBJ_sb_logsnap_, KV_sb_lease_ and KV_sb_members_ with the group's name): raise the account's JetStream streams limit (limits.streams of its account JWT, SWITCHBOARD's where credentials init made them) or delete streams it does not need, then start the planner again (docs/operations.md, "NATS limits")`;
  return undefined;
}

/** JetStream's code for "maximum consumers limit reached" (the account's `consumer` limit, or a stream's max_consumers). */
const MAX_CONSUMERS = 10026;

/**
 * One line for a follower planner whose account may not make another consumer (a follower reads
 * its group's log with one; the server's bare `maximum consumers limit reached` said neither which
 * limit nor how many a group needs), or undefined when `e` (along its `cause` chain) is not that
 * refusal. The follower retries on its own: a consumer left by a killed planner goes after 30 s.
 */
export function consumerLimitRefusal(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++)
    if (cur instanceof JetStreamApiError && cur.code === MAX_CONSUMERS)
      return `NATS refuses another JetStream consumer: the planner's NATS account has reached its maximum number of consumers (JetStream error ${MAX_CONSUMERS}: ${cur.message}); a group of N planners holds N - 1 (one per follower, on its SB_LOG_ stream) and one more during a hand-over: raise the account's JetStream consumers limit (limits.consumer of its account JWT, SWITCHBOARD's where credentials init made them) to at least the number of planners (docs/operations.md, "NATS limits")`;
  return undefined;
}

/** The part of a NATS connection asked here: a core PING's round trip and the server it is on. */
export interface CoreNats {
  rtt(): Promise<number>;
  getServer(): string;
}

/**
 * describeJetStreamFailure, and for an unanswered request a core NATS PING on the same connection
 * tells why (probe8 J2): answered, JetStream is hung or disabled on that server (or its cluster
 * has no meta leader) while the server itself is fine; unanswered, the server or the link is gone.
 * A bare "timeout" said neither. The PING waits at most `waitMs`.
 */
export async function explainJetStreamFailure(e: unknown, nc: CoreNats, waitMs = 1000): Promise<JetStreamFailure> {
  const f = describeJetStreamFailure(e);
  if (!timedOut(e)) return f;
  const server = nc.getServer();
  // rtt() of a closed connection may throw at once: a PING not answered either
  const coreAnswers = await answersWithin(
    Promise.resolve().then(() => nc.rtt()),
    waitMs,
  );
  return coreAnswers
    ? { cause: `JetStream not answering on ${server} while core NATS does`, lasting: false }
    : { cause: `no answer from NATS on ${server} (not even a core NATS PING within ${waitMs} ms)`, lasting: false };
}

/**
 * The error to report for a failed JetStream step: an unanswered request whose server answers
 * core NATS becomes `JetStream not answering on HOST:PORT while core NATS does`, with the timeout
 * as its cause (so it still counts as transient: jetstream-transient.ts walks causes); any other
 * error is returned as it is.
 */
export async function namingJetStreamSilence(e: unknown, nc: CoreNats, waitMs = 1000): Promise<unknown> {
  if (!timedOut(e)) return e;
  const f = await explainJetStreamFailure(e, nc, waitMs);
  return f.cause.startsWith('JetStream not answering') ? new Error(f.cause, { cause: e }) : e;
}

function isTimeout(e: Error): boolean {
  return e instanceof TimeoutError || /^timeout\b/i.test(e.message);
}

function timedOut(e: unknown): boolean {
  for (let cur = e, depth = 0; cur instanceof Error && depth < 4; cur = cur.cause, depth++) {
    if (cur instanceof JetStreamApiError || cur.name === 'JetStreamNotEnabled') return false;
    if (isTimeout(cur)) return true;
  }
  return false;
}

async function answersWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
