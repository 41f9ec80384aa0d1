// NetlinkConnection's receiveBuffer against the real kernel of this machine (generic netlink's
// controller, present on every Linux): read into a fixed buffer, a dump's datagrams may be as
// large as that buffer (netlink_recvmsg remembers the largest buffer a socket offered and
// netlink_dump sizes its parts by it), so a dump arrives in fewer datagrams than when each
// datagram's size is peeked first (the kernel then keeps a dump's parts at about a page).
import { describe, expect, it } from 'vitest';
import { GENL_ID_CTRL, NETLINK_GENERIC, encodeGenl } from '../../../libs/netlink/genl-family.ts';
import { NetlinkConnection } from '../../../libs/netlink/netlink-connection.ts';

const CTRL_CMD_GETFAMILY = 3;

/** The datagrams (their sizes) of the second of two dumps of every generic netlink family. */
async function secondDumpDatagrams(receiveBuffer?: number): Promise<{ sizes: number[]; families: number }> {
  const conn = new NetlinkConnection({ protocol: NETLINK_GENERIC, ...(receiveBuffer ? { receiveBuffer } : {}) });
  try {
    // the connection's own socket, to count what arrives (not part of its interface)
    const socket = (conn as unknown as { socket: { on(e: 'message', l: (b: Buffer) => void): void } }).socket;
    const sizes: number[] = [];
    socket.on('message', (b) => sizes.push(b.length));
    const dump = () =>
      conn.request({
        type: GENL_ID_CTRL,
        payload: encodeGenl(CTRL_CMD_GETFAMILY, 1, []),
        dump: true,
        operation: 'dump genl families',
      });
    await dump(); // the first dump's first part is sized before the socket has read anything
    sizes.length = 0;
    const families = (await dump()).length;
    return { sizes, families };
  } finally {
    conn.close();
  }
}

describe('NetlinkConnection receiveBuffer (real generic netlink socket)', () => {
  it('reads a dump in fewer, larger datagrams than with peeked sizes, with the same messages', async () => {
    const peeked = await secondDumpDatagrams();
    const fixed = await secondDumpDatagrams(32 * 1024);
    expect(fixed.families).toBe(peeked.families);
    expect(fixed.families).toBeGreaterThan(0);
    // with peeking the kernel never builds a part larger than about a page
    expect(Math.max(...peeked.sizes)).toBeLessThanOrEqual(4096);
    expect(fixed.sizes.length).toBeLessThan(peeked.sizes.length);
  });
});
