import { JetStreamApiError, type PubAck } from '@nats-io/jetstream';

/** JetStream's refusals of an append whose expectation failed: the stream's last sequence, its last message id. */
const WRONG_LAST_SEQUENCE = 10071;
const WRONG_LAST_MSG_ID = 10070;

/** One message of a chain, named by its Nats-Msg-Id (the same message always gets the same id). */
export interface ChainMessage {
  readonly msgID: string;
}

/** What a chain append asks the stream to check before storing one of its messages. */
export interface ChainExpectation {
  /** The stream's last sequence must be exactly this. */
  readonly lastSequence: number;
  /** ...and the message stored there must carry this id (the chain's previous message). */
  readonly lastMsgID?: string;
}

export interface ChainAppender<M extends ChainMessage> {
  /** Messages sent before the oldest of them is answered (1: one at a time). */
  readonly width: number;
  /** The stream's last sequence as the appender knows it (what a message sent alone expects). */
  lastSeq(): number;
  /** A message was stored at `seq` (not a duplicate): the appender's known end moves there. */
  stored(seq: number): void;
  /** Sends `m` with these expectations; resolves with the stream's answer, rejects with its refusal. */
  send(m: M, expect: ChainExpectation): Promise<PubAck>;
  /**
   * Appends `m` by itself, expecting the known end; when the stream moved, resolves that first
   * (foreign messages are stepped over; another leader's message is a fence: it throws).
   */
  alone(m: M): Promise<PubAck>;
  /** Asked before every send: a reason stops the chain (nothing further is sent; it is thrown as the error's message). */
  mayAppend?(): string | undefined;
  /** The stream answered `m` with an ack (stored or a duplicate): it is never sent again. */
  acked?(m: M): void;
}

/**
 * Appends `msgs` to a stream in order with up to `width` of them in flight, without giving up
 * the conditional append that fences a stale writer.
 *
 * Appending one message at a time, each expecting the last sequence the previous one's ack
 * returned, costs a round trip (and the server's store) per message: for a checkpoint of ~28
 * chunks of 512 KiB, most of the time between "recorded" and "on NATS". Here message i of a window
 * opened at known end `base` expects last sequence base+i AND, for i > 0, that the stream's last
 * message is message i-1 (Nats-Expected-Last-Msg-Id; the server sets it from every stored
 * message, to '' for one without an id). So each one is stored only directly behind its
 * predecessor: as if it had been sent after the predecessor's ack. Anything another writer stores
 * in between (a newer leader's term claim, a core publish on our subjects) makes the next message
 * fail its expectation, and every later one fails too (their predecessor is not last), so nothing
 * after the first refused message is stored by the window.
 *
 * The server checks a duplicate (same Nats-Msg-Id within the dedupe window) before expectations:
 * a message stored by an earlier attempt answers `duplicate` and stores nothing. Any answer other
 * than "stored right where expected" (a duplicate, a refusal, an error) closes the window: nothing
 * more is sent until every message in flight is answered; then the first refused one is appended
 * again by itself through `alone` (which reads what moved the stream and fences or steps over it),
 * and a window opens again behind it with the other refused ones first, in order. Any other error (timeout, lost connection) is thrown once the
 * window has drained; the caller retries the whole artifact, whose stored messages then dedupe.
 * Resolves with whether any message was a duplicate, once every message is stored.
 */
export async function appendChain<M extends ChainMessage>(
  msgs: Iterable<M>,
  o: ChainAppender<M>,
): Promise<{ duplicate: boolean }> {
  const width = Math.max(1, Math.floor(o.width));
  const source = msgs[Symbol.iterator]();
  const flights: { m: M; expect: number; answer: Promise<Answer> }[] = [];
  const redo: M[] = [];
  let open = true;
  let exhausted = false;
  let duplicate = false;
  let failure: { error: unknown } | undefined;
  for (;;) {
    while (open && !failure && flights.length < width && (redo.length > 0 || !exhausted)) {
      const refused = o.mayAppend?.();
      if (refused) {
        failure = { error: new Error(refused) };
        break;
      }
      let m = redo.shift();
      if (!m) {
        const next = source.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        m = next.value;
      }
      const prev = flights.at(-1);
      const expect: ChainExpectation = prev
        ? { lastSequence: prev.expect + 1, lastMsgID: prev.m.msgID }
        : { lastSequence: o.lastSeq() };
      flights.push({ m, expect: expect.lastSequence, answer: settle(o.send(m, expect)) });
    }
    const f = flights.shift();
    if (f) {
      const a = await f.answer;
      if (a.ok) o.acked?.(f.m);
      if (a.ok && !a.ack.duplicate && a.ack.seq === f.expect + 1) {
        o.stored(a.ack.seq);
        continue;
      }
      open = false;
      if (a.ok) {
        // Stored by an earlier attempt (duplicate), or — only when an earlier message of this
        // window was refused — stored behind an earlier attempt's copy of its predecessor.
        if (a.ack.duplicate) duplicate = true;
        else o.stored(Math.max(o.lastSeq(), a.ack.seq));
      } else if (isExpectationRefusal(a.error)) redo.push(f.m);
      else failure ??= { error: a.error };
      continue;
    }
    // The window has drained.
    if (failure) throw failure.error;
    const m = redo.shift();
    if (m) {
      // the first refused one alone: it learns what moved the stream (a fence throws); the rest
      // go through the window again behind it
      const ack = await o.alone(m);
      o.acked?.(m);
      duplicate ||= ack.duplicate;
    } else if (exhausted) return { duplicate };
    open = true;
  }
}

type Answer = { readonly ok: true; readonly ack: PubAck } | { readonly ok: false; readonly error: unknown };

function settle(p: Promise<PubAck>): Promise<Answer> {
  return p.then(
    (ack) => ({ ok: true, ack }),
    (error: unknown) => ({ ok: false, error }),
  );
}

function isExpectationRefusal(e: unknown): boolean {
  return e instanceof JetStreamApiError && (e.code === WRONG_LAST_SEQUENCE || e.code === WRONG_LAST_MSG_ID);
}
