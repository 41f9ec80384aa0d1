// One netlink socket with request/reply matching and a bounded in-flight window.
//
// Why the window: the `netlink` package's native code turns a receive error into an
// 'error' event; with a few hundred requests in flight the kernel's acks overflow the
// default receive buffer (ENOBUFS), and an unhandled 'error' thrown from inside a native
// callback aborts the whole process. So we (1) always listen for 'error', (2) never have
// more than `window` requests outstanding, (3) enlarge SO_RCVBUF/SO_SNDBUF, and (4) never
// throw from the receive path. Requests queued beyond the window wait in JS memory.
//
// Batching: queued requests are packed into one datagram (the kernel's netlink_rcv_skb
// walks every message in an skb), up to `batch` messages / `maxBatchBytes`.
// Acks: with `coalesceAcks`, only the last plain request of a datagram asks for an ack (none
// when a dump ends the datagram: its first reply answers for the requests before it). The
// kernel handles a datagram's messages in order and reports every failing one whether or not
// it asked (netlink_rcv_skb acks on NLM_F_ACK or error), so that last ack proves every earlier
// message of the datagram that got no error was applied: one ack to build, queue and decode per
// datagram instead of one per request.
// Dumps: the kernel runs one dump per socket at a time (a second one gets EBUSY), so
// dump requests are serialized; plain requests keep flowing around a running dump.

import { RawNetlinkSocket } from 'netlink';
import type { ErrnoException } from 'netlink';
import {
  decodeErrorPayload,
  decodeMessages,
  encodeMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  NLMSG_OVERRUN,
} from './netlink-message.ts';
import type { NetlinkMessage } from './netlink-message.ts';
import { NetlinkError } from './netlink-error.ts';
import { constants } from 'node:os';

export interface NetlinkConnectionOptions {
  /** Netlink protocol number (NETLINK_GENERIC 16, NETLINK_NETFILTER 12, NETLINK_ROUTE 0). */
  readonly protocol: number;
  /** Max requests awaiting their ack (default 64). */
  readonly window?: number;
  /** Max messages packed into one datagram (default 32). */
  readonly batch?: number;
  /** SO_RCVBUF request in bytes (default 4 MiB; the kernel caps it at 2 × rmem_max). */
  readonly recvBufferSize?: number;
  /** SO_SNDBUF request in bytes (default 1 MiB). */
  readonly sendBufferSize?: number;
  /**
   * Ask for an ack only on the last plain request of each datagram (see above). For protocols
   * whose kernel side walks a datagram with netlink_rcv_skb (generic netlink, rtnetlink, plain
   * nfnetlink requests). Default false: every request asks for its own ack.
   */
  readonly coalesceAcks?: boolean;
  /** Fail everything in flight when the kernel says nothing for this long (default 60 s). */
  readonly stallTimeoutMs?: number;
  /**
   * Read each datagram into a buffer of this many bytes with one recvmsg (the package's
   * `messagePeeking: false`), instead of the default: a MSG_PEEK for its size, then the read.
   * It also lets the kernel size a dump's datagrams up to it (netlink_recvmsg remembers the
   * largest read buffer a socket offered, capped at 32 KiB less the skb overhead, and
   * netlink_dump allocates that much), so a dump comes in fewer datagrams. A datagram larger
   * than the buffer arrives truncated, which fails everything in flight: only for protocols whose
   * answers are bounded by it (IPVS: dump parts sized as above, acks, small replies).
   */
  readonly receiveBuffer?: number;
  /** The datagram socket (default: the `netlink` package's RawNetlinkSocket); byte-level tests script one. */
  readonly socket?: NetlinkSocket;
}

/** The slice of the `netlink` package's RawNetlinkSocket this connection uses. */
export interface NetlinkSocket {
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  on(event: 'truncatedMessage', listener: () => void): unknown;
  on(event: 'error', listener: (err: ErrnoException) => void): unknown;
  send(data: Buffer[], options: object, callback: (err?: ErrnoException | null) => void): void;
  ref(): unknown;
  unref(): unknown;
  close(): void;
  getRecvBufferSize(): number;
  getSendBufferSize(): number;
}

export interface NetlinkRequest {
  readonly type: number;
  /** Extra header flags; REQUEST is always set, ACK for non-dumps, DUMP when `dump`. */
  readonly flags?: number;
  readonly payload: Uint8Array;
  readonly dump?: boolean;
  /**
   * What the request does, for errors ("add service tcp 10.0.0.1:80"): text, or a RequestLabel
   * whose text is built only when the request fails. A bulk load sends 100k+ requests; building
   * each one's label and error closure up front was per-request work that a success never reads.
   */
  readonly operation: string | RequestLabel;
  /**
   * Optional mapping of a kernel errno to an error (ipset has its own codes).
   * Return undefined to fall back to the generic errno error.
   */
  readonly mapError?: ErrorMapper;
}

/**
 * Maps a kernel errno to an error. `errorPayload` is the NLMSG_ERROR payload (struct nlmsgerr:
 * the errno, then the request echoed back): ipset names the failing element of a multi-element
 * request in it.
 */
export type ErrorMapper = (errno: number, extMessage?: string, errorPayload?: Buffer) => Error | undefined;

/** A request's error text and errno mapping, built only on failure (see NetlinkRequest.operation). */
export interface RequestLabel {
  text(): string;
  /** Like NetlinkRequest.mapError (which it takes precedence over). */
  mapError?(errno: number, extMessage?: string, errorPayload?: Buffer): Error | undefined;
}

/** The text of a request's operation. */
export const operationText = (req: NetlinkRequest): string =>
  typeof req.operation === 'string' ? req.operation : req.operation.text();

export interface NetlinkConnectionStats {
  /** Requests answered (ack, error or dump end). */
  completed: number;
  /** Datagrams sent. */
  datagrams: number;
  /** Highest number of requests simultaneously awaiting an answer. */
  maxInFlight: number;
}

interface Pending {
  readonly req: NetlinkRequest;
  /** A batch: replies for seqs [first, seq) are errors of earlier messages (the last one is acked). */
  batch?: { first: number; error?: Error; timer?: NodeJS.Timeout; datagram: Buffer; ops: readonly NetlinkRequest[] };
  readonly resolve: (msgs: NetlinkMessage[]) => void;
  readonly reject: (err: Error) => void;
  readonly replies: NetlinkMessage[];
  seq: number;
  /**
   * Requests sent without an ack before this one in the same datagram: the kernel's answer to
   * this one (ack or error) proves they were handled, each without error unless one came for it.
   */
  riders?: Pending[];
  /** Arrival order, to send plain requests and dumps first come, first served. */
  order: number;
}

/**
 * First-in first-out queue with O(1) removal at the head. (Array.splice(0, 1) moves every
 * element: with 100k requests queued that made queuing quadratic.)
 */
class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}

const MAX_BATCH_BYTES = 64 * 1024;

export class NetlinkConnection {
  readonly window: number;
  readonly batch: number;
  readonly coalesceAcks: boolean;
  readonly stats: NetlinkConnectionStats = { completed: 0, datagrams: 0, maxInFlight: 0 };
  private readonly socket: NetlinkSocket;
  /** Waiting plain requests (and batches) and waiting dumps; a dump waits while another runs. */
  private readonly requests = new Fifo<Pending>();
  private readonly dumps = new Fifo<Pending>();
  private arrivals = 0;
  private readonly inFlight = new Map<number, Pending>();
  private dumpRunning = false;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private closed = false;
  private pumpScheduled = false;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly stallTimeoutMs: number;

  constructor(opts: NetlinkConnectionOptions) {
    this.window = Math.max(1, opts.window ?? 64);
    this.batch = Math.max(1, Math.min(opts.batch ?? 32, this.window));
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
    this.coalesceAcks = opts.coalesceAcks ?? false;
    this.socket =
      opts.socket ??
      new RawNetlinkSocket(opts.protocol, {
        recvBufferSize: opts.recvBufferSize ?? 4 * 1024 * 1024,
        sendBufferSize: opts.sendBufferSize ?? 1024 * 1024,
        ...(opts.receiveBuffer ? { messagePeeking: false, msgBufferSize: opts.receiveBuffer } : {}),
      });
    this.socket.on('message', (msg) => this.onDatagram(msg));
    this.socket.on('truncatedMessage', () => this.failAll(new Error('netlink: truncated datagram received')));
    // Listening here is what keeps a receive error (ENOBUFS) from aborting the process.
    this.socket.on('error', (err: ErrnoException) => {
      const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : constants.errno.EIO;
      this.failAll(NetlinkError.fromErrno('netlink receive', errno));
    });
    this.socket.unref();
  }

  /** Actual socket buffer sizes after the kernel applied its caps. */
  bufferSizes(): { recv: number; send: number } {
    return { recv: this.socket.getRecvBufferSize(), send: this.socket.getSendBufferSize() };
  }

  get pending(): number {
    return this.requests.length + this.dumps.length + this.inFlight.size;
  }

  /** Sends one request; resolves with the reply messages (acks and DONE stripped). */
  request(req: NetlinkRequest): Promise<NetlinkMessage[]> {
    if (this.closed) return Promise.reject(new Error(`${operationText(req)}: netlink socket is closed`));
    return new Promise((resolve, reject) => {
      this.enqueue({ req, resolve, reject, replies: [], seq: 0, order: 0 });
    });
  }

  /**
   * Sends `messages` as ONE datagram with consecutive sequence numbers, for protocols that treat
   * a datagram as a transaction (nfnetlink batches: BEGIN, ops, END). Only the last message that
   * may be acked (`ackIndex`) carries NLM_F_ACK; the kernel reports every failing message
   * regardless, and delivers all its answers after the whole batch ran. Resolves once that ack
   * arrives without an earlier error; rejects with the first error (its message's operation).
   */
  sendBatch(messages: readonly (NetlinkRequest & { readonly type: number })[], ackIndex: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error('netlink batch: netlink socket is closed'));
    const bufs: Buffer[] = [];
    let first = 0;
    let ackSeq = 0;
    const ops: NetlinkRequest[] = [];
    messages.forEach((m, i) => {
      this.seq = (this.seq + 1) >>> 0 || 1;
      if (i === 0) first = this.seq;
      if (i === ackIndex) ackSeq = this.seq;
      ops.push(m);
      const flags = NLM_F_REQUEST | (i === ackIndex ? NLM_F_ACK : 0) | (m.flags ?? 0);
      bufs.push(encodeMessage({ type: m.type, flags, seq: this.seq, payload: m.payload }));
    });
    if (ackSeq < first) return Promise.reject(new Error('netlink batch: sequence numbers wrapped; retry'));
    const datagram = Buffer.concat(bufs);
    return new Promise<void>((resolve, reject) => {
      const req: NetlinkRequest = {
        type: messages[ackIndex]!.type,
        payload: Buffer.alloc(0),
        operation: messages[ackIndex]!.operation,
        mapError: (errno, ext, payload) => messages[ackIndex]!.mapError?.(errno, ext, payload),
      };
      const p: Pending = {
        req,
        resolve: () => resolve(),
        reject,
        replies: [],
        seq: ackSeq,
        order: 0,
        batch: { first, datagram, ops },
      };
      this.enqueue(p);
    });
  }

  close(): void {
    if (this.closed) return;
    this.failAll(new Error('netlink socket closed'));
    for (const p of [...this.requests.drain(), ...this.dumps.drain()])
      p.reject(new Error(`${operationText(p.req)}: netlink socket closed`));
    this.closed = true;
    // close() is often reached from a promise settled inside the native 'message' callback (a
    // caller's finally after its last reply). Closing the native socket there frees it while the
    // package is still walking that round's datagrams, which crashed the process with SIGSEGV in
    // the VM. Close it on a later turn of the event loop, outside any native callback.
    const socket = this.socket;
    setImmediate(() => socket.close());
  }

  private schedulePump(afterIo = false): void {
    // Coalesce requests issued in the same tick into shared datagrams. After replies, wait
    // for the end of the poll round (setImmediate): the native side hands us up to 32
    // datagrams per round, so the freed slots refill as one batch instead of one by one.
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    const run = () => {
      this.pumpScheduled = false;
      this.pump();
    };
    if (afterIo) setImmediate(run);
    else queueMicrotask(run);
  }

  private pump(): void {
    if (this.closed) return;
    while (this.inFlight.size < this.window) {
      const batch: Pending[] = [];
      const bufs: Buffer[] = [];
      let bytes = 0;
      while (this.inFlight.size < this.window && batch.length < this.batch) {
        const from = this.nextSendable();
        if (!from) break;
        const p = from.peek()!;
        if (p.batch && batch.length > 0) break; // a batch is a datagram of its own
        const buf = p.batch ? p.batch.datagram : this.encode(p);
        if (batch.length > 0 && bytes + buf.length > MAX_BATCH_BYTES) break;
        from.shift();
        if (p.req.dump) this.dumpRunning = true;
        this.inFlight.set(p.seq, p);
        batch.push(p);
        bufs.push(buf);
        bytes += buf.length;
        // A dump's replies are chunked by the kernel; keep it alone in its datagram.
        if (p.req.dump || p.batch) break;
      }
      if (batch.length === 0) break;
      if (this.coalesceAcks) this.coalesce(batch, bufs);
      this.stats.maxInFlight = Math.max(this.stats.maxInFlight, this.inFlight.size);
      this.stats.datagrams++;
      this.socket.ref();
      this.armWatchdog();
      this.socket.send(bufs, {}, (err) => {
        if (!err) return;
        const errno = typeof err.errno === 'number' ? Math.abs(err.errno) : constants.errno.EIO;
        for (const p of batch) this.finish(p, NetlinkError.fromErrno(`${operationText(p.req)} (send)`, errno));
      });
    }
  }

  /** Drops the ack flag of every plain request but the datagram's last; that one carries them. */
  private coalesce(batch: readonly Pending[], bufs: readonly Buffer[]): void {
    // The answerer: the datagram's last request, or a dump ending it (a dump is always last):
    // its first reply proves the writes before it handled, so they need no ack of their own.
    let last = -1;
    for (let i = batch.length - 1; i >= 0; i--)
      if (!batch[i]!.batch) {
        last = i;
        break;
      }
    if (last <= 0) return;
    const riders: Pending[] = [];
    for (let i = 0; i < last; i++) {
      const p = batch[i]!;
      if (p.req.dump || p.batch) continue;
      const buf = bufs[i]!;
      buf.writeUInt16LE(buf.readUInt16LE(6) & ~NLM_F_ACK, 6);
      riders.push(p);
    }
    if (riders.length > 0) batch[last]!.riders = riders;
  }

  private enqueue(p: Pending): void {
    p.order = this.arrivals++;
    (p.req.dump ? this.dumps : this.requests).push(p);
    // On an idle connection, send at the end of this tick even when a refill is waiting for the
    // end of the poll round (setImmediate, scheduled by the last answer): the request would wait
    // for it otherwise, and one event loop round costs ~15 ms in the emulated VM
    // (bench/applier/one-change-probe.ts), most of one endpoint change. With requests in flight
    // (a bulk load) the refill batching is kept.
    if (this.inFlight.size === 0) this.scheduleIdlePump();
    else this.schedulePump();
  }

  private idlePumpScheduled = false;

  private scheduleIdlePump(): void {
    if (this.idlePumpScheduled) return;
    this.idlePumpScheduled = true;
    queueMicrotask(() => {
      this.idlePumpScheduled = false;
      this.pump();
    });
  }

  /** The queue whose head goes next: first come, first served, but dumps wait for a running dump. */
  private nextSendable(): Fifo<Pending> | undefined {
    const r = this.requests.peek();
    const d = this.dumpRunning ? undefined : this.dumps.peek();
    if (!r) return d ? this.dumps : undefined;
    if (!d) return this.requests;
    return d.order < r.order ? this.dumps : this.requests;
  }

  private encode(p: Pending): Buffer {
    this.seq = (this.seq + 1) >>> 0 || 1;
    p.seq = this.seq;
    const flags = NLM_F_REQUEST | (p.req.dump ? NLM_F_DUMP : NLM_F_ACK) | (p.req.flags ?? 0);
    return encodeMessage({ type: p.req.type, flags, seq: p.seq, payload: p.req.payload });
  }

  private onDatagram(buf: Buffer): void {
    // Runs inside a native callback: nothing here may throw.
    try {
      for (const msg of decodeMessages(buf)) this.onMessage(msg);
    } catch (e) {
      this.failAll(new Error(`netlink: cannot decode reply: ${(e as Error).message}`));
    }
    try {
      this.armWatchdog();
      this.schedulePump(true);
    } catch {
      /* closed meanwhile */
    }
  }

  private onMessage(msg: NetlinkMessage): void {
    const p = this.inFlight.get(msg.seq) ?? this.batchOf(msg.seq);
    if (!p) return; // not ours (late reply after a failure, or a notification)
    if (p.batch && msg.seq !== p.seq) return this.onBatchReply(p, msg);
    // Any answer to this request (ack, error, a dump's first reply) means the kernel handled
    // every rider before it in the datagram.
    if (p.riders) this.settleRiders(p);
    if (msg.type === NLMSG_NOOP || msg.type === NLMSG_OVERRUN) return;
    if (msg.type === NLMSG_ERROR) {
      const e = decodeErrorPayload(msg.payload, msg.flags);
      if (e.errno === 0) return this.finish(p);
      return this.finish(p, this.mapError(p.req, e.errno, e.extMessage, msg.payload));
    }
    if (msg.type === NLMSG_DONE) {
      const status = msg.payload.length >= 4 ? msg.payload.readInt32LE(0) : 0;
      return this.finish(p, status < 0 ? this.mapError(p.req, -status) : undefined);
    }
    p.replies.push(msg);
  }

  /** Resolves the riders that got no error: the kernel handled them (they precede an answered message). */
  private settleRiders(p: Pending): void {
    const riders = p.riders!;
    p.riders = undefined;
    for (const r of riders) this.finish(r);
  }

  private batchOf(seq: number): Pending | undefined {
    for (const p of this.inFlight.values()) if (p.batch && seq >= p.batch.first && seq < p.seq) return p;
    return undefined;
  }

  /** An answer for an earlier message of a batch: only errors are sent for those. */
  private onBatchReply(p: Pending, msg: NetlinkMessage): void {
    if (msg.type !== NLMSG_ERROR || !p.batch) return;
    const e = decodeErrorPayload(msg.payload, msg.flags);
    if (e.errno === 0 || p.batch.error) return;
    const op = p.batch.ops[msg.seq - p.batch.first];
    p.batch.error = op
      ? this.mapError(op, e.errno, e.extMessage, msg.payload)
      : NetlinkError.fromErrno('netlink batch', e.errno, e.extMessage);
    // The kernel answers after the whole batch ran, the ack of the last message right behind the
    // errors; if it stopped early (ENOMEM), that ack never comes: do not wait for the watchdog.
    p.batch.timer = setTimeout(() => this.finish(p, p.batch!.error), 500);
    p.batch.timer.unref();
  }

  private mapError(req: NetlinkRequest, errno: number, ext?: string, errorPayload?: Buffer): Error {
    const label = typeof req.operation === 'string' ? undefined : req.operation;
    const mapped = label?.mapError
      ? label.mapError(errno, ext, errorPayload)
      : req.mapError?.(errno, ext, errorPayload);
    if (mapped) return mapped;
    return NetlinkError.fromErrno(operationText(req), errno, ext);
  }

  private finish(p: Pending, err?: Error): void {
    if (!this.inFlight.delete(p.seq)) return;
    if (p.batch) {
      if (p.batch.timer) clearTimeout(p.batch.timer);
      err = p.batch.error ?? err; // the first failing message explains the batch
    }
    if (p.req.dump) this.dumpRunning = false;
    this.stats.completed++;
    if (err) p.reject(err);
    else p.resolve(p.replies);
    if (this.inFlight.size === 0 && !this.closed) {
      this.socket.unref();
      this.disarmWatchdog();
    }
    this.schedulePump(true);
  }

  private failAll(err: Error): void {
    for (const p of [...this.inFlight.values()]) {
      this.finish(
        p,
        err instanceof NetlinkError
          ? new NetlinkError(operationText(p.req), err.errno, err.code, err.detail)
          : new Error(`${operationText(p.req)}: ${err.message}`),
      );
    }
  }

  private armWatchdog(): void {
    this.disarmWatchdog();
    if (this.inFlight.size === 0) return;
    this.watchdog = setTimeout(() => {
      this.failAll(
        NetlinkError.fromErrno(
          'netlink',
          constants.errno.ETIMEDOUT,
          `no answer from the kernel for ${this.stallTimeoutMs} ms`,
        ),
      );
    }, this.stallTimeoutMs);
    this.watchdog.unref();
  }

  private disarmWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = undefined;
  }
}
