/** The slice of a NATS connection the readers call (request/reply). */
export interface Requester {
  request(subject: string, payload?: Uint8Array | string, opts?: { timeout: number }): Promise<ReplyMsg>;
}

export interface ReplyMsg {
  readonly data: Uint8Array;
  readonly headers?: { get(k: string): string; readonly code: number; readonly description: string } | undefined;
}

export type DirectGot =
  | {
      readonly ok: true;
      readonly seq: number;
      readonly subject: string;
      readonly data: Uint8Array;
      header(k: string): string;
    }
  /** missing: no such message; absentStream: the stream itself does not exist (yet, or any more). */
  | {
      readonly ok: false;
      readonly missing: boolean;
      readonly absentStream?: boolean;
      readonly error: string;
      /** The request's own failure (a timeout: transient, see isTransientJetStreamError). */
      readonly cause?: unknown;
    };

/** One stored message asked for: the newest on a subject, the first on it at or after `seq`, or `seq` itself. */
export type MessageQuery = { last: string } | { next: string; seq: number } | { seq: number };

/** What a failure names: the subject asked for, or the seq. */
const queried = (q: MessageQuery): string => ('last' in q ? q.last : 'next' in q ? q.next : `seq ${q.seq}`);

/**
 * JetStream direct get ($JS.API.DIRECT.GET.<stream>): no consumer state on the server, one
 * request per message, and permissions that name exactly what a node may read. `last` asks for
 * the newest message on a subject; `next` for the first one on it at or after `seq` (readers that
 * must skip foreign messages stored on a subject walk forward with it).
 */
export async function directGet(nc: Requester, stream: string, q: MessageQuery, timeoutMs: number): Promise<DirectGot> {
  const subject = queried(q);
  let m: ReplyMsg;
  try {
    m =
      'last' in q
        ? await nc.request(`$JS.API.DIRECT.GET.${stream}.${q.last}`, new Uint8Array(0), { timeout: timeoutMs })
        : await nc.request(
            `$JS.API.DIRECT.GET.${stream}`,
            JSON.stringify('next' in q ? { seq: q.seq, next_by_subj: q.next } : { seq: q.seq }),
            { timeout: timeoutMs },
          );
  } catch (e) {
    const msg = (e as Error).message;
    // no responders: nothing serves direct gets for this stream, i.e. it does not exist
    if (/no responders|503/i.test(msg))
      return { ok: false, missing: true, absentStream: true, error: `stream ${stream} does not exist` };
    return { ok: false, missing: false, error: `${subject}: ${msg}`, cause: e };
  }
  const h = m.headers;
  if (!h) return { ok: false, missing: false, error: `${subject}: reply without headers` };
  if (h.code === 404 || h.code === 408) return { ok: false, missing: true, error: `${subject}: not found` };
  if (h.code === 503) return { ok: false, missing: true, absentStream: true, error: `stream ${stream} does not exist` };
  if (h.code !== 0 && h.code !== 200)
    return { ok: false, missing: false, error: `${subject}: ${h.code} ${h.description}` };
  const got = h.get('Nats-Subject');
  if ('last' in q && got !== subject) return { ok: false, missing: false, error: `${subject}: reply is for ${got}` };
  if ('next' in q && got !== subject)
    return { ok: false, missing: true, error: `${subject}: not found after seq ${q.seq}` };
  return { ok: true, seq: Number(h.get('Nats-Sequence')), subject: got, data: m.data, header: (k) => h.get(k) };
}

/**
 * directGet's reads answered by the stream's leader (`$JS.API.STREAM.MSG.GET.<stream>`) instead of
 * by any replica: for a planner's own reads of the versions stream (its claim, a republish). A
 * direct get may land on a replica that is frozen (sockets open, nothing answered, its route not
 * yet known dead) and wait out its whole timeout, each try again with a replica's chance; the
 * leader is the replica that stores, and a stream in election answers neither. Same results as
 * directGet for the same stored messages (a test holds them equal on a real nats-server).
 */
export async function leaderGet(nc: Requester, stream: string, q: MessageQuery, timeoutMs: number): Promise<DirectGot> {
  const subject = queried(q);
  const body =
    'last' in q ? { last_by_subj: q.last } : 'next' in q ? { seq: q.seq, next_by_subj: q.next } : { seq: q.seq };
  let m: ReplyMsg;
  try {
    m = await nc.request(`$JS.API.STREAM.MSG.GET.${stream}`, JSON.stringify(body), { timeout: timeoutMs });
  } catch (e) {
    return { ok: false, missing: false, error: `${subject}: ${(e as Error).message}`, cause: e };
  }
  let r: StreamMsgGetReply;
  try {
    r = JSON.parse(new TextDecoder().decode(m.data)) as StreamMsgGetReply;
  } catch {
    return { ok: false, missing: false, error: `${subject}: reply is not JSON` };
  }
  if (r.error) {
    if (r.error.err_code === STREAM_NOT_FOUND)
      return { ok: false, missing: true, absentStream: true, error: `stream ${stream} does not exist` };
    if (r.error.err_code === NO_MESSAGE_FOUND) return { ok: false, missing: true, error: `${subject}: not found` };
    return { ok: false, missing: false, error: `${subject}: ${r.error.code} ${r.error.description ?? ''}`.trimEnd() };
  }
  const msg = r.message;
  if (!msg || typeof msg.subject !== 'string' || typeof msg.seq !== 'number')
    return { ok: false, missing: false, error: `${subject}: reply without a message` };
  const got = msg.subject;
  if ('last' in q && got !== subject) return { ok: false, missing: false, error: `${subject}: reply is for ${got}` };
  if ('next' in q && got !== subject)
    return { ok: false, missing: true, error: `${subject}: not found after seq ${q.seq}` };
  const headers = parseHeaderBlock(msg.hdrs ? Buffer.from(msg.hdrs, 'base64').toString('utf8') : '');
  const data = msg.data ? new Uint8Array(Buffer.from(msg.data, 'base64')) : new Uint8Array(0);
  return { ok: true, seq: msg.seq, subject: got, data, header: (k) => headers.get(k) ?? '' };
}

interface StreamMsgGetReply {
  readonly error?: { readonly code: number; readonly err_code?: number; readonly description?: string };
  readonly message?: { readonly subject: string; readonly seq: number; readonly hdrs?: string; readonly data?: string };
}

/** JetStream's error codes for a stream that does not exist and a message that is not there. */
const STREAM_NOT_FOUND = 10059;
const NO_MESSAGE_FOUND = 10037;

/**
 * A stored message's NATS header block ("NATS/1.0\r\nKey: value\r\n...\r\n\r\n") as its first value
 * per key, as the client's headers read for directGet (values trimmed, names as written).
 */
function parseHeaderBlock(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const k = line.slice(0, colon).trim();
    if (!out.has(k)) out.set(k, line.slice(colon + 1).trim());
  }
  return out;
}
