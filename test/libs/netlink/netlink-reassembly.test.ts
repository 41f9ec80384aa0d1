// Byte-level tests of netlink framing and reply reassembly (nats.js parser-test style): bytes in,
// messages out, no kernel. decodeMessages is fed every prefix of a datagram, one byte at a time;
// NetlinkConnection gets a scripted socket that delivers a dump one message per datagram.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { NetlinkConnection, type NetlinkSocket } from '../../../libs/netlink/netlink-connection.ts';
import {
  NLMSG_DONE,
  NLMSG_ERROR,
  NLM_F_MULTI,
  decodeMessages,
  encodeErrorPayload,
  encodeMessage,
} from '../../../libs/netlink/netlink-message.ts';

const msg = (type: number, seq: number, payload: number[], flags = 0) =>
  encodeMessage({ type, flags, seq, payload: Buffer.from(payload) });

describe('decodeMessages fed one byte at a time', () => {
  const parts = [msg(0x10, 1, [1, 2, 3]), msg(0x11, 2, []), msg(0x12, 3, [9, 9, 9, 9, 9])];
  const datagram = Buffer.concat(parts);
  const expected = [
    [0x10, 1, [1, 2, 3]],
    [0x11, 2, []],
    [0x12, 3, [9, 9, 9, 9, 9]],
  ];
  // Oracle: message i is complete once its declared length is in; what follows the last complete
  // message may be up to 3 bytes of alignment padding, anything longer is a cut-off header.
  const starts = parts.map((_, i) => parts.slice(0, i).reduce((a, p) => a + p.length, 0));
  const ends = parts.map((p, i) => starts[i]! + p.readUInt32LE(0));

  it('every prefix decodes exactly the messages it completes, or throws on a cut-off message', () => {
    for (let n = 0; n <= datagram.length; n++) {
      const prefix = datagram.subarray(0, n);
      const k = ends.filter((e) => e <= n).length;
      const next = k < parts.length ? starts[k]! : datagram.length;
      if (n - next <= 3) {
        expect(
          decodeMessages(prefix).map((m) => [m.type, m.seq, [...m.payload]]),
          `prefix of ${n} bytes`,
        ).toEqual(expected.slice(0, k));
      } else {
        expect(() => decodeMessages(prefix), `prefix of ${n} bytes`).toThrow(/malformed netlink message at offset \d+/);
      }
    }
  });

  it('an unpadded last message (length not a multiple of 4) decodes with its exact payload', () => {
    const m = msg(0x10, 5, [7, 7, 7]); // len 19, padded to 20
    const unpadded = m.subarray(0, 19);
    expect([...decodeMessages(unpadded)[0]!.payload]).toEqual([7, 7, 7]);
  });
});

/** A socket whose kernel side is the test: it records sent datagrams and replays scripted replies. */
class ScriptedSocket extends EventEmitter implements NetlinkSocket {
  readonly sent: Buffer[] = [];
  send(data: Buffer[], _options: object, callback: (err?: null) => void): void {
    this.sent.push(Buffer.concat(data));
    callback(null);
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
  /** Delivers `bytes` as datagrams of the given sizes, each through the 'message' event. */
  deliver(datagrams: Buffer[]): void {
    for (const d of datagrams) this.emit('message', d);
  }
}

describe('NetlinkConnection reassembles replies across datagrams', () => {
  it('a dump delivered one message per datagram resolves once, at DONE, with every part in order', async () => {
    const socket = new ScriptedSocket();
    const conn = new NetlinkConnection({ protocol: 12, socket });
    const reply = conn.request({ type: 0x0a01, payload: Buffer.alloc(4), dump: true, operation: 'dump' });
    await new Promise((r) => setImmediate(r));
    const seq = decodeMessages(socket.sent[0]!)[0]!.seq;
    let settled = false;
    void reply.then(() => {
      settled = true;
    });
    const parts = Array.from({ length: 50 }, (_, i) => msg(0x0a00, seq, [i, i + 1, i + 2], NLM_F_MULTI));
    socket.deliver(parts);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false); // no DONE yet
    socket.deliver([msg(NLMSG_DONE, seq, [0, 0, 0, 0], NLM_F_MULTI)]);
    const got = await reply;
    expect(got.map((m) => [...m.payload])).toEqual(parts.map((_, i) => [i, i + 1, i + 2]));
    conn.close();
  });

  it('acks of a batch arriving one per datagram, out of order, settle each request with its own outcome', async () => {
    const socket = new ScriptedSocket();
    const conn = new NetlinkConnection({ protocol: 12, socket });
    const reqs = [0, 1, 2].map((i) =>
      conn.request({ type: 0x0a00 + i, payload: Buffer.alloc(4), operation: `op${i}` }),
    );
    await new Promise((r) => setImmediate(r));
    const sent = socket.sent.flatMap(decodeMessages);
    expect(sent).toHaveLength(3);
    const ack = (i: number, errno: number) => msg(NLMSG_ERROR, sent[i]!.seq, [...encodeErrorPayload(errno, sent[i]!)]);
    socket.deliver([ack(2, 0), ack(0, 0), ack(1, 2)]); // ENOENT for op1
    await expect(reqs[0]).resolves.toEqual([]);
    await expect(reqs[1]).rejects.toThrow(/op1.*ENOENT/);
    await expect(reqs[2]).resolves.toEqual([]);
    conn.close();
  });

  it('a truncated datagram fails what is in flight instead of hanging or throwing from the socket callback', async () => {
    const socket = new ScriptedSocket();
    const conn = new NetlinkConnection({ protocol: 12, socket });
    const reply = conn.request({ type: 0x0a01, payload: Buffer.alloc(4), dump: true, operation: 'dump' });
    await new Promise((r) => setImmediate(r));
    const seq = decodeMessages(socket.sent[0]!)[0]!.seq;
    const whole = msg(0x0a00, seq, [1, 2, 3, 4, 5, 6, 7, 8], NLM_F_MULTI);
    expect(() => socket.deliver([whole.subarray(0, whole.length - 5)])).not.toThrow();
    await expect(reply).rejects.toThrow(/dump: netlink: cannot decode reply: malformed netlink message/);
    conn.close();
  });
});
