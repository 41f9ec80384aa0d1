// The unix sockets a network namespace holds, as the kernel's sock_diag reports them
// (NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY for AF_UNIX: linux/sock_diag.h, linux/unix_diag.h):
// each listening socket's inode, name and the uid that created it. Abstract unix socket names are
// per network namespace and anyone in it can bind one, so a name alone proves nothing about its
// holder; the uid the kernel reports does (services/applier/node-lock.ts).

import { NetlinkConnection } from './netlink-connection.ts';
import { findAttr } from './netlink-attrs.ts';

export const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const AF_UNIX = 1;
/** udiag_show: the socket's name (UNIX_DIAG_NAME) and its creator's uid (UNIX_DIAG_UID, Linux 5.3+). */
const UDIAG_SHOW_NAME = 0x01;
const UDIAG_SHOW_UID = 0x40;
const UNIX_DIAG_NAME = 0;
const UNIX_DIAG_UID = 7;
/** The unix socket states sock_diag selects by (1 << state): a listening one is TCP_LISTEN. */
const TCP_LISTEN = 10;
const UNIX_DIAG_MSG_SIZE = 16;

export interface UnixSocketInfo {
  readonly inode: number;
  /**
   * Its address: `@` then the rest for an abstract name (its trailing NULs dropped: Node binds
   * an abstract name padded to the whole sun_path), the path for a bound file, '' when unbound.
   */
  readonly name: string;
  /** The uid that created it, in this process's user namespace; undefined on kernels before 5.3. */
  readonly uid: number | undefined;
}

/** struct unix_diag_req: every listening unix socket, with its name and uid. */
export function encodeUnixDiagListeners(): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt8(AF_UNIX, 0); // sdiag_family; sdiag_protocol and pad stay 0
  b.writeUInt32LE(1 << TCP_LISTEN, 4); // udiag_states
  b.writeUInt32LE(0, 8); // udiag_ino: any
  b.writeUInt32LE(UDIAG_SHOW_NAME | UDIAG_SHOW_UID, 12); // udiag_show
  return b; // udiag_cookie: none
}

/** One reply (struct unix_diag_msg, then its attributes); throws, one line, on a short one. */
export function decodeUnixDiag(payload: Buffer): UnixSocketInfo {
  if (payload.length < UNIX_DIAG_MSG_SIZE)
    throw new Error(
      `sock_diag: unix socket reply of ${payload.length} bytes, shorter than its ${UNIX_DIAG_MSG_SIZE}-byte header`,
    );
  const attrs = payload.subarray(UNIX_DIAG_MSG_SIZE);
  const raw = findAttr(attrs, UNIX_DIAG_NAME);
  const uid = findAttr(attrs, UNIX_DIAG_UID);
  return {
    inode: payload.readUInt32LE(4),
    name: raw === undefined || raw.length === 0 ? '' : raw[0] === 0 ? `@${stripNuls(raw.subarray(1))}` : stripNuls(raw),
    uid: uid && uid.length >= 4 ? uid.readUInt32LE(0) : undefined,
  };
}

const stripNuls = (b: Buffer): string => {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return b.subarray(0, end).toString('latin1');
};

/** The listening unix sockets of this process's network namespace. */
export async function listListeningUnixSockets(): Promise<UnixSocketInfo[]> {
  const conn = new NetlinkConnection({ protocol: NETLINK_SOCK_DIAG, recvBufferSize: 1 << 20, sendBufferSize: 1 << 16 });
  try {
    const msgs = await conn.request({
      type: SOCK_DIAG_BY_FAMILY,
      payload: encodeUnixDiagListeners(),
      dump: true,
      operation: 'list listening unix sockets (sock_diag)',
    });
    return msgs.map((m) => decodeUnixDiag(m.payload));
  } finally {
    conn.close();
  }
}
