// NetlinkConnection's queue, with a scripted socket: requests beyond the window wait and go out
// first come, first served; a dump waits while another dump runs, plain requests pass it.
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
  type NetlinkMessage,
} from '../../../libs/netlink/netlink-message.ts';

class ScriptedSocket extends EventEmitter implements NetlinkSocket {
  readonly sent: NetlinkMessage[] = [];
  send(data: Buffer[], _options: object, callback: (err?: null) => void): void {
    this.sent.push(...decodeMessages(Buffer.concat(data)));
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
  ack(m: NetlinkMessage): void {
    this.emit('message', encodeMessage({ type: NLMSG_ERROR, flags: 0, seq: m.seq, payload: encodeErrorPayload(0, m) }));
  }
  done(m: NetlinkMessage): void {
    this.emit('message', encodeMessage({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: m.seq, payload: Buffer.alloc(4) }));
  }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('NetlinkConnection queue', () => {
  it('sends first come, first served within the window; a dump waits for the running one, plain requests pass it', async () => {
    const socket = new ScriptedSocket();
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 8 });
    const req = (type: number, dump = false) =>
      conn.request({ type, payload: Buffer.alloc(4), dump, operation: `op${type}` });
    const a = req(0x100, true),
      b = req(0x101),
      c = req(0x102, true),
      d = req(0x103);
    await tick();
    expect(socket.sent.map((m) => m.type)).toEqual([0x100, 0x101, 0x103]);
    socket.done(socket.sent[0]!);
    await tick();
    expect(socket.sent.map((m) => m.type)).toEqual([0x100, 0x101, 0x103, 0x102]);
    socket.ack(socket.sent[1]!);
    socket.ack(socket.sent[2]!);
    socket.done(socket.sent[3]!);
    await expect(Promise.all([a, b, c, d])).resolves.toHaveLength(4);
    conn.close();
  });

  it('thousands of requests beyond the window all go out once, in order, and settle', async () => {
    const socket = new ScriptedSocket();
    const conn = new NetlinkConnection({ protocol: 16, socket, window: 16 });
    const n = 5000;
    const all = Promise.all(
      Array.from({ length: n }, (_, i) =>
        conn.request({ type: 0x100 + (i % 7), payload: Buffer.from([i & 255, i >> 8, 0, 0]), operation: `op${i}` }),
      ),
    );
    let acked = 0;
    while (acked < n) {
      await tick();
      expect(socket.sent.length - acked).toBeLessThanOrEqual(16);
      for (const m of socket.sent.slice(acked)) socket.ack(m);
      acked = socket.sent.length;
    }
    await expect(all).resolves.toHaveLength(n);
    expect(socket.sent.map((m) => m.payload[0]! + (m.payload[1]! << 8))).toEqual(
      Array.from({ length: n }, (_, i) => i),
    );
    conn.close();
  });
});
