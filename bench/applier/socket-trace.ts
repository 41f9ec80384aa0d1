// BENCH_TRACE=1 for the ipvs bench: what one endpoint change sends and waits for, from the netlink
// package's socket class (patched in the bench process only): each datagram sent (its messages'
// type:command pairs, the time the synchronous sendmsg took: the kernel runs a netlink request
// inside sendmsg, and a dump's first part too), each datagram received (when, and the time its
// 'message' handler took), so a change's time splits into: JS before the first send, sendmsg
// (the kernel), waiting for the event loop to deliver the reply, the handlers, and the JS after
// the last reply (promise continuations: decode, read-back compare, model update).
// Also the guest's kernel-side CPU around a set of changes (kernel threads by name, softirq and
// irq time from /proc/stat): whether the kernel is still busy after the load.
import { readdirSync, readFileSync } from 'node:fs';
import { RawNetlinkSocket } from 'netlink';

interface Sent {
  readonly at: number;
  readonly ms: number;
  readonly messages: string[];
  /** when the package's send-completion callback ran (a libuv timer it arms after sendmsg) */
  doneAt?: number;
}
interface Received {
  readonly at: number;
  readonly ms: number;
  readonly bytes: number;
}

let sent: Sent[] = [];
let received: Received[] = [];
/** When the dataplane's kernel calls began and ended (PhaseTimingKernel marks them). */
let kernelCalls: { start: number; end: number }[] = [];

/** Marks a kernel call's start; the function returned marks its end. */
export function markKernelCall(): () => void {
  const call = { start: performance.now(), end: 0 };
  kernelCalls.push(call);
  return () => {
    call.end = performance.now();
  };
}

/** Patches RawNetlinkSocket's send and receive once; every socket opened after (or before) is traced. */
export function installSocketTrace(): void {
  const proto = RawNetlinkSocket.prototype as unknown as {
    send(msg: Buffer | Buffer[], options: object, cb?: (e?: Error) => void): void;
    _receive(msg: Buffer, rinfo: object): void;
  };
  const send = proto.send;
  proto.send = function (this: unknown, msg, options, cb) {
    const bufs = Array.isArray(msg) ? msg : [msg];
    const t = performance.now();
    const entry: Sent = { at: t, ms: 0, messages: [] };
    send.call(this, msg, options, (e?: Error) => {
      entry.doneAt = performance.now();
      cb?.(e);
    });
    (entry as { ms: number }).ms = performance.now() - t;
    entry.messages.push(...bufs.flatMap(describe));
    sent.push(entry);
  };
  const receive = proto._receive;
  proto._receive = function (this: unknown, msg, rinfo) {
    const t = performance.now();
    receive.call(this, msg, rinfo);
    received.push({ at: t, ms: performance.now() - t, bytes: msg.length });
  };
}

/** type:cmd of each netlink message in a buffer (genl: byte 16 is the command; nfnetlink: type low byte). */
function describe(buf: Buffer): string[] {
  const out: string[] = [];
  for (let o = 0; o + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(o);
    const type = buf.readUInt16LE(o + 4);
    const flags = buf.readUInt16LE(o + 6);
    const cmd = type >= 0x100 && type < 0x1000 ? `nfnl${type >> 8}:${type & 0xff}` : `${type}:${buf[o + 16]}`;
    out.push(`${cmd}${flags & 0x300 ? '/dump' : ''}${flags & 4 ? '/ack' : ''}`);
    if (len < 16) break;
    o += (len + 3) & ~3;
  }
  return out;
}

export interface ChangeTrace {
  /** apply start → the kernel call that sends (the dataplane's JS: diff, validation, slice, plan) */
  beforeKernelMs: number;
  /** kernel call start → first sendmsg (NetlinkKernel and the client: groups, encoding) */
  kernelJsBeforeSendMs: number;
  /** total time inside sendmsg (the kernel's handling of the requests, synchronous) */
  sendMs: number;
  /** end of the first sendmsg → first datagram handed to JS (the event loop) */
  sendToReplyMs: number;
  /**
   * end of the first sendmsg → the package's send-completion callback (its libuv timer), and
   * whether that callback ran before the first datagram reached JS (1) or after (0)
   */
  sendToCallbackMs: number;
  callbackBeforeReply: number;
  /** time inside the receive handlers (decoding the datagrams, settling requests) */
  receiveMs: number;
  /** last datagram handled → the last kernel call resolved (promise continuations, decoding) */
  replyToKernelEndMs: number;
  /** the last kernel call resolved → apply resolved (model update, read-back compare, verify) */
  afterKernelMs: number;
  kernelCalls: number;
  datagramsSent: number;
  datagramsReceived: number;
  messages: string[];
  /** sizes of the datagrams received, in order */
  receivedBytes: number[];
}

export function startChange(): void {
  sent = [];
  received = [];
  kernelCalls = [];
}

export function endChange(t0: number, t1: number): ChangeTrace {
  const s0 = sent[0];
  const r0 = received[0];
  const rl = received.at(-1);
  // the kernel call that sent the first datagram (an earlier one may have sent nothing)
  const k0 = (s0 && kernelCalls.filter((k) => k.start <= s0.at).at(-1)) || kernelCalls[0];
  const kl = kernelCalls.at(-1);
  return {
    beforeKernelMs: (k0?.start ?? t1) - t0,
    kernelJsBeforeSendMs: k0 && s0 ? s0.at - k0.start : 0,
    sendMs: sent.reduce((a, s) => a + s.ms, 0),
    sendToReplyMs: s0 && r0 ? r0.at - (s0.at + s0.ms) : 0,
    sendToCallbackMs: s0?.doneAt !== undefined ? s0.doneAt - (s0.at + s0.ms) : 0,
    callbackBeforeReply: s0?.doneAt !== undefined && r0 && s0.doneAt < r0.at ? 1 : 0,
    receiveMs: received.reduce((a, r) => a + r.ms, 0),
    replyToKernelEndMs: rl && kl ? kl.end - (rl.at + rl.ms) : 0,
    afterKernelMs: kl ? t1 - kl.end : 0,
    kernelCalls: kernelCalls.length,
    datagramsSent: sent.length,
    datagramsReceived: received.length,
    messages: sent.flatMap((s) => s.messages),
    receivedBytes: received.map((r) => r.bytes),
  };
}

/** Medians of each numeric field, and the messages of the first change (they are all alike). */
export function summarize(traces: readonly ChangeTrace[]): Record<string, unknown> {
  const med = (xs: number[]) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(2);
  const keys = [
    'beforeKernelMs',
    'kernelJsBeforeSendMs',
    'sendMs',
    'sendToReplyMs',
    'sendToCallbackMs',
    'callbackBeforeReply',
    'receiveMs',
    'replyToKernelEndMs',
    'afterKernelMs',
  ] as const;
  return {
    median: Object.fromEntries(keys.map((k) => [k, med(traces.map((t) => t[k]))])),
    max: Object.fromEntries(keys.map((k) => [k, +Math.max(...traces.map((t) => t[k])).toFixed(2)])),
    // in how many of the changes the send-completion callback ran before the first reply
    callbacksBeforeReply: traces.reduce((a, t) => a + t.callbackBeforeReply, 0),
    kernelCalls: med(traces.map((t) => t.kernelCalls)),
    datagramsSent: med(traces.map((t) => t.datagramsSent)),
    datagramsReceived: med(traces.map((t) => t.datagramsReceived)),
    messages: [...new Set(traces.map((t) => t.messages.join(' ')))],
    receivedBytes: [...new Set(traces.map((t) => t.receivedBytes.join(' ')))],
  };
}

/**
 * The guest's kernel-side CPU so far, ms: kernel threads by name (digits dropped: kworker/0:1 →
 * kworker/:), and /proc/stat's irq and softirq columns (timer softirq: IPVS 6.1 walks its rate
 * estimators there every 2 s).
 */
export function kernelCpu(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (!(Number(f[6]) & 0x00200000)) continue; // PF_KTHREAD (field 9: flags)
      const ms = (Number(f[11]) + Number(f[12])) * 10;
      if (ms === 0) continue;
      const key = name.replace(/\d+/g, '').replace(/-.*$/, '');
      out[key] = (out[key] ?? 0) + ms;
    } catch {
      /* gone meanwhile */
    }
  }
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  out['(irq)'] = f[5]! * 10;
  out['(softirq)'] = f[6]! * 10;
  return out;
}

export function cpuDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}
