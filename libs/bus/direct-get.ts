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

/**
 * JetStream direct get ($JS.API.DIRECT.GET.<stream>): no consumer state on the server, one
 * request per message, and permissions that name exactly what a node may read. `last` asks for
 * the newest message on a subject; `next` for the first one on it at or after `seq` (readers that
 * must skip foreign messages stored on a subject walk forward with it).
 */
export async function directGet(
  nc: Requester,
  stream: string,
  q: { last: string } | { next: string; seq: number } | { seq: number },
  timeoutMs: number,
): Promise<DirectGot> {
  const subject = 'last' in q ? q.last : 'next' in q ? q.next : `seq ${q.seq}`;
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
