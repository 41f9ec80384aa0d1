// NetlinkConnection with coalesceAcks, against a scripted socket that answers like the kernel's
// netlink_rcv_skb: every message of a datagram in order, an ack only when NLM_F_ACK is set, an
// error for a failing message whether it asked or not, each answer a datagram of its own.
import { EventEmitter } from 'node:events';
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { NetlinkConnection, type NetlinkSocket } from '../../../libs/netlink/netlink-connection.ts';
import { NetlinkError } from '../../../libs/netlink/netlink-error.ts';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_MULTI,
  decodeMessages,
  encodeErrorPayload,
  encodeMessage,
  type NetlinkMessage,
} from '../../../libs/netlink/netlink-message.ts';

class KernelLikeSocket extends EventEmitter implements NetlinkSocket {
  readonly datagrams: NetlinkMessage[][] = [];
  /** Payload first bytes of the messages the "kernel" refuses (EEXIST). */
  readonly failing = new Set<number>();
  /** First payload bytes of the requests applied so far, in order (what a dump returns). */
  readonly applied: number[] = [];
  /** Stop answering (a kernel that went quiet). */
  silent = false;
  send(data: Buffer[], _options: object, callback: (err?: null) => void): void {
    const msgs = decodeMessages(Buffer.concat(data));
    this.datagrams.push(msgs);
    callback(null);
    if (this.silent) return;
    for (const m of msgs) {
      if (m.flags & NLM_F_DUMP) {
        // A dump: one reply holding what the writes before it left, then DONE.
        const reply = encodeMessage({ type: 0x20, flags: NLM_F_MULTI, seq: m.seq, payload: Buffer.from(this.applied) });
        const done = encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: m.seq, payload: Buffer.alloc(4) });
        setImmediate(() => this.emit('message', Buffer.concat([reply, done])));
        continue;
      }
      const errno = this.failing.has(m.payload[0]!) ? constants.errno.EEXIST : 0;
      if (errno === 0) this.applied.push(m.payload[0]!);
      if (errno === 0 && !(m.flags & NLM_F_ACK)) continue;
      const answer = encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: m.seq, payload: encodeErrorPayload(errno, m) });
      setImmediate(() => this.emit('message', answer));
    }
  }
  ref(): void {}
  unref(): void {}
  close(): void {}
  getRecvBufferSize(): number {
    return 1 << 20;
  }
  getSendBufferSize(): number {
    return 1 << 20;
  }
}

const settle = (ps: Promise<unknown>[]) =>
  Promise.allSettled(ps).then((rs) => rs.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as Error).message)));

function requests(conn: NetlinkConnection, n: number): Promise<unknown>[] {
  return Array.from({ length: n }, (_, i) =>
    conn.request({ type: 0x20, payload: Buffer.from([i, 0, 0, 0]), operation: `op${i}` }),
  );
}

describe('NetlinkConnection coalesceAcks', () => {
  it('asks for one ack per datagram, on its last request, and settles every request of it', async () => {
    const socket = new KernelLikeSocket();
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 64, batch: 8, coalesceAcks: true });
    expect(await settle(requests(conn, 20))).toEqual(Array(20).fill('ok'));
    expect(socket.datagrams.map((d) => d.length)).toEqual([8, 8, 4]);
    for (const d of socket.datagrams)
      expect(d.map((m) => !!(m.flags & NLM_F_ACK))).toEqual(d.map((_, i) => i === d.length - 1));
    expect(conn.stats.completed).toBe(20);
    conn.close();
  });

  it('a request on an idle connection goes out in the same tick, not after the refill that the last answer scheduled', async () => {
    const socket = new KernelLikeSocket();
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 64, batch: 8, coalesceAcks: true });
    await conn.request({ type: 0x20, payload: Buffer.from([1, 0, 0, 0]), operation: 'first' });
    // The answer scheduled a refill for the end of the poll round (setImmediate); the connection is idle.
    const second = conn.request({ type: 0x20, payload: Buffer.from([2, 0, 0, 0]), operation: 'second' });
    for (let i = 0; i < 5; i++) await Promise.resolve(); // microtasks only: no event loop round
    expect(socket.datagrams).toHaveLength(2);
    await second;
    conn.close();
  });

  it('a refused request in the middle fails alone; the ones around it are applied', async () => {
    const socket = new KernelLikeSocket();
    socket.failing.add(3);
    socket.failing.add(7); // the last of its datagram: its error is the datagram's answer
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 64, batch: 8, coalesceAcks: true });
    const out = await settle(requests(conn, 12));
    expect(out.filter((r) => r !== 'ok')).toHaveLength(2);
    expect(out[3]).toMatch(/^op3: /);
    expect(out[7]).toMatch(/^op7: /);
    expect(out.filter((r, i) => r === 'ok' && i !== 3 && i !== 7)).toHaveLength(10);
    conn.close();
  });

  it('a kernel that never answers fails the requests that rode on the missing ack (never resolves them)', async () => {
    const socket = new KernelLikeSocket();
    socket.silent = true;
    const conn = new NetlinkConnection({
      protocol: 16,
      socket,
      window: 64,
      batch: 8,
      coalesceAcks: true,
      stallTimeoutMs: 50,
    });
    const out = await settle(requests(conn, 5));
    expect(out).toHaveLength(5);
    for (const r of out) expect(r).toMatch(/no answer from the kernel/);
    conn.close();
  });

  it('closing with requests in flight rejects every one of them', async () => {
    const socket = new KernelLikeSocket();
    socket.silent = true;
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 64, batch: 8, coalesceAcks: true });
    const ps = requests(conn, 5);
    await new Promise((r) => setImmediate(r));
    conn.close();
    for (const r of await settle(ps)) expect(r).toMatch(/closed/);
  });

  it('writes followed by a dump in one datagram need no ack: the dump answers for them, and sees them', async () => {
    const socket = new KernelLikeSocket();
    socket.failing.add(1);
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 64, batch: 8, coalesceAcks: true });
    const writes = requests(conn, 3);
    const dump = conn.request({ type: 0x20, payload: Buffer.from([9, 0, 0, 0]), dump: true, operation: 'dump' });
    expect(await settle(writes)).toEqual(['ok', expect.stringMatching(/^op1: /), 'ok']);
    const replies = await dump;
    expect([...replies[0]!.payload]).toEqual([0, 2]);
    expect(socket.datagrams).toHaveLength(1);
    expect(socket.datagrams[0]!.map((m) => m.flags & NLM_F_ACK)).toEqual([0, 0, 0, 0]);
    conn.close();
  });

  it('without the option every request asks for its own ack', async () => {
    const socket = new KernelLikeSocket();
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 64, batch: 8 });
    expect(await settle(requests(conn, 10))).toEqual(Array(10).fill('ok'));
    for (const d of socket.datagrams) for (const m of d) expect(m.flags & NLM_F_ACK).toBe(NLM_F_ACK);
    conn.close();
  });

  it('errors keep their errno', async () => {
    const socket = new KernelLikeSocket();
    socket.failing.add(1);
    const conn = new NetlinkConnection({ protocol: 16, socket, batch: 8, coalesceAcks: true });
    const ps = requests(conn, 3);
    const err = await ps[1]!.catch((e: unknown) => e);
    await Promise.allSettled(ps);
    expect(err).toBeInstanceOf(NetlinkError);
    expect((err as NetlinkError).code).toBe('EEXIST');
    conn.close();
  });
});
