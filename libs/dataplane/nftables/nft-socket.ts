// nfnetlink sockets for nf_tables, as the netlink runner and its dump worker open them.
import { RawNetlinkSocket } from 'netlink';
import { NetlinkConnection, type NetlinkSocket } from '../../netlink/index.ts';

export const NETLINK_NETFILTER = 12;

/**
 * Receive buffer passed to each recvmsg. The kernel sizes a dump's datagrams by the largest
 * buffer the reader has passed (up to 32 KiB); the `netlink` package's default peek-then-read
 * passes 1 byte, then the datagram's size, so dumps came in ~4 KiB pieces. nf_tables resumes a
 * rule or chain dump by walking again from the table's first rule to where it stopped, so the
 * number of pieces multiplies: a 10k-service read-back spent minutes there. 68 KiB also holds
 * the largest error ack (it echoes our largest message, < 64 KiB).
 */
export const RECV_DATAGRAM_BYTES = 68 * 1024;

/**
 * `large`: receive into RECV_DATAGRAM_BYTES buffers (table-wide dumps in 32 KiB pieces); else
 * peek each datagram's size first (many small per-chain / per-set dumps: a large buffer per
 * datagram would be allocated and zeroed for a few hundred bytes). `onDatagram` sees each one.
 */
export function nfnetlinkConnection(
  recvBufferSize: number,
  sendBufferSize: number,
  large: boolean,
  onDatagram?: (msg: Buffer) => void,
): NetlinkConnection {
  const raw = new RawNetlinkSocket(NETLINK_NETFILTER, {
    messagePeeking: !large,
    msgBufferSize: RECV_DATAGRAM_BYTES,
    recvBufferSize,
    sendBufferSize,
  });
  if (onDatagram) raw.on('message', onDatagram);
  return new NetlinkConnection({ protocol: NETLINK_NETFILTER, socket: raw satisfies NetlinkSocket });
}
