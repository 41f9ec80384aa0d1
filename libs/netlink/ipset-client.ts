// IpsetClient: ipset over nfnetlink through one windowed NetlinkConnection.

import { NetlinkClient } from './netlink-client.ts';
import { NetlinkConnection } from './netlink-connection.ts';
import type { RequestLabel } from './netlink-connection.ts';
import { familyOf } from './ip-address.ts';
import type { IpFamily } from './ip-address.ts';
import { NetlinkError } from './netlink-error.ts';
import { IpsetBatchError, ipsetError } from './ipset-errors.ts';
import type { IpsetOp } from './ipset-errors.ts';
import {
  IPSET_PROTOCOL,
  IPSET_PROTOCOL_MIN,
  IpsetCmd,
  NETLINK_NETFILTER,
  decodeAdtErrorLine,
  decodeListMessage,
  decodeProtocolReply,
  decodeTypeReply,
  encodeAdt,
  encodeAdtBatch,
  encodeCreate,
  encodeDestroy,
  encodeFlush,
  encodeHeader,
  encodeList,
  encodeProtocol,
  encodeRename,
  encodeSwap,
  encodeTypeQuery,
  mergeListChunks,
} from './ipset-codec.ts';
import type { IpsetRequest } from './ipset-codec.ts';
import type { IpsetCreate, IpsetEntry, IpsetHeader, IpsetSet, IpsetType } from './ipset-types.ts';
import { entryToText } from './ipset-entry-text.ts';
import type { NetlinkMessage } from './netlink-message.ts';

export interface IpsetClientOptions {
  readonly window?: number;
  readonly batch?: number;
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
  readonly stallTimeoutMs?: number;
}

/**
 * An ipset request's error text and errno mapping, built only if the kernel refuses it (a bulk
 * load sends tens of thousands). With `entries` (a multi-element request) the error names the
 * element the kernel refused, read from its echoed LINENO.
 */
class IpsetLabel implements RequestLabel {
  constructor(
    private readonly op: IpsetOp,
    /** The whole text, or with `set` its verb: "add to" → "add to ipset NAME". */
    private readonly what: string,
    private readonly set?: string,
    private readonly setType?: string,
    private readonly entries?: readonly IpsetEntry[],
  ) {}

  text(): string {
    return this.set === undefined ? this.what : `${this.what} ipset ${this.set}`;
  }

  mapError(errno: number, _ext?: string, errorPayload?: Buffer): Error {
    const line = this.entries && errorPayload ? decodeAdtErrorLine(errorPayload) : undefined;
    const entry = line !== undefined ? this.entries?.[line - 1] : undefined;
    if (!entry) return ipsetError(this.text(), errno, this.op, this.setType);
    const e = ipsetError(
      `${this.text()}: element ${line} of ${this.entries!.length} (${elementText(entry, this.setType)})`,
      errno,
      this.op,
      this.setType,
    );
    return new IpsetBatchError(e.operation, e.errno, e.code, e.detail, line! - 1);
  }
}

/** An element as `ipset save` prints it when the set's type is known (else its fields). */
function elementText(e: IpsetEntry, setType: string | undefined): string {
  try {
    if (setType) return entryToText(setType as IpsetType, e);
  } catch {
    /* fields below */
  }
  return JSON.stringify(e);
}

export class IpsetClient extends NetlinkClient {
  private readonly revisions = new Map<string, number>();
  // Type and family of sets seen through this client (create/list): lets add/del/test
  // reject a wrong-family address before the kernel answers a bare IPSET_ERR_PROTOCOL,
  // and tells hash from bitmap when decoding type-specific error codes.
  private readonly known = new Map<string, { type: string; family?: IpFamily }>();

  private constructor(
    conn: NetlinkConnection,
    readonly protocol: number,
  ) {
    super(conn);
  }

  /** Opens a socket in the current network namespace and agrees on the protocol version. */
  static async open(opts: IpsetClientOptions = {}): Promise<IpsetClient> {
    const conn = new NetlinkConnection({ protocol: NETLINK_NETFILTER, coalesceAcks: true, ...opts });
    try {
      const r = encodeProtocol(IPSET_PROTOCOL);
      const msgs = await conn.request({
        type: r.type,
        payload: r.payload,
        operation: 'ipset protocol handshake',
        mapError: (errno) => ipsetError('ipset protocol handshake', errno, 'protocol'),
      });
      if (!msgs[0]) throw new Error('ipset protocol handshake: empty reply');
      const kernel = decodeProtocolReply(msgs[0].payload);
      const protocol = Math.min(IPSET_PROTOCOL, kernel.protocol);
      if (protocol < IPSET_PROTOCOL_MIN) {
        throw new Error(
          `ipset: kernel speaks protocol ${kernel.protocol}, we need ${IPSET_PROTOCOL_MIN}-${IPSET_PROTOCOL}`,
        );
      }
      return new IpsetClient(conn, protocol);
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  private send(
    r: IpsetRequest,
    op: IpsetOp,
    operation: string | IpsetLabel,
    setType?: string,
  ): Promise<NetlinkMessage[]> {
    return this.conn.request({
      type: r.type,
      flags: r.flags,
      payload: r.payload,
      dump: r.dump,
      operation: typeof operation === 'string' ? new IpsetLabel(op, operation, undefined, setType) : operation,
    });
  }

  /** Highest revision of a set type this kernel has (cached). */
  async typeRevision(type: IpsetType, family?: IpFamily): Promise<number> {
    const key = `${type}/${family ?? 'inet'}`;
    const cached = this.revisions.get(key);
    if (cached !== undefined) return cached;
    const msgs = await this.send(
      encodeTypeQuery(this.protocol, type, family),
      'type',
      `query ipset type ${type}`,
      type,
    );
    if (!msgs[0]) throw new Error(`query ipset type ${type}: empty reply`);
    const rev = decodeTypeReply(msgs[0].payload).max;
    this.revisions.set(key, rev);
    return rev;
  }

  /** Creates a set. `exist`: succeed when an identical set already exists (ipset -exist). */
  async create(c: IpsetCreate, opts: { exist?: boolean } = {}): Promise<void> {
    const rev = await this.typeRevision(c.type, c.family);
    await this.send(encodeCreate(this.protocol, rev, c, opts.exist), 'create', `create ipset ${c.name}`, c.type);
    this.known.set(c.name, { type: c.type, ...(c.type === 'bitmap:port' ? {} : { family: c.family ?? 'inet' }) });
  }

  /** Destroys a set. `exist`: no error when it does not exist. */
  async destroy(name: string, opts: { exist?: boolean } = {}): Promise<void> {
    await this.send(encodeDestroy(this.protocol, name, opts.exist), 'destroy', `destroy ipset ${name}`);
    this.known.delete(name);
  }

  async flush(name: string): Promise<void> {
    await this.send(encodeFlush(this.protocol, name), 'flush', `flush ipset ${name}`);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.send(encodeRename(this.protocol, from, to), 'rename', `rename ipset ${from} to ${to}`);
    const k = this.known.get(from);
    this.known.delete(from);
    if (k) this.known.set(to, k);
  }

  async swap(a: string, b: string): Promise<void> {
    await this.send(encodeSwap(this.protocol, a, b), 'swap', `swap ipsets ${a} and ${b}`);
    const ka = this.known.get(a);
    const kb = this.known.get(b);
    this.known.delete(a);
    this.known.delete(b);
    if (kb) this.known.set(a, kb);
    if (ka) this.known.set(b, ka);
  }

  private adt(cmd: 9 | 10 | 11, op: IpsetOp, name: string, entry: IpsetEntry, exist?: boolean, label: string = op) {
    const k = this.known.get(name);
    const wrong = k?.family ? wrongFamily(entry, k.family) : undefined;
    if (wrong) {
      const operation = `${label} ipset ${name}`;
      return Promise.reject(
        new NetlinkError(operation, 0, 'EAFNOSUPPORT', `address ${wrong} but set ${name} is family ${k!.family}`),
      );
    }
    return this.send(
      encodeAdt(this.protocol, cmd, name, entry, exist),
      op,
      new IpsetLabel(op, label, name, k?.type),
      k?.type,
    );
  }

  /**
   * ADD/DEL of several elements of one set in one message (encodeAdtBatch, as `ipset restore`
   * sends them): one request, one queue entry and one kernel message instead of one per element.
   * The kernel stops at the first element it refuses: the elements before it are applied, the
   * rest of this message is not; the rejection is an IpsetBatchError naming that element (`index`
   * into `entries`). Keep a batch to a few dozen elements: a refused request comes back echoed
   * in full in the error, and the window's worth of them must fit the receive buffer.
   */
  private adtBatch(
    cmd: 9 | 10,
    op: 'add' | 'del',
    label: string,
    name: string,
    entries: readonly IpsetEntry[],
    exist?: boolean,
  ) {
    const k = this.known.get(name);
    if (k?.family) {
      for (let i = 0; i < entries.length; i++) {
        const wrong = wrongFamily(entries[i]!, k.family);
        if (wrong) {
          return Promise.reject(
            new IpsetBatchError(
              `${label} ipset ${name}: element ${i + 1} of ${entries.length}`,
              0,
              'EAFNOSUPPORT',
              `address ${wrong} but set ${name} is family ${k.family}`,
              i,
            ),
          );
        }
      }
    }
    return this.send(
      encodeAdtBatch(this.protocol, cmd, name, entries, exist),
      op,
      new IpsetLabel(op, label, name, k?.type, entries),
      k?.type,
    );
  }

  /** Adds several elements in one message (see adtBatch). `exist`: no error for those already there. */
  async addBatch(name: string, entries: readonly IpsetEntry[], opts: { exist?: boolean } = {}): Promise<void> {
    await this.adtBatch(IpsetCmd.ADD, 'add', 'add to', name, entries, opts.exist);
  }

  /** Deletes several elements in one message (see adtBatch). `exist`: no error for those absent. */
  async delBatch(name: string, entries: readonly IpsetEntry[], opts: { exist?: boolean } = {}): Promise<void> {
    await this.adtBatch(IpsetCmd.DEL, 'del', 'delete from', name, entries, opts.exist);
  }

  /** Adds an element. `exist`: no error when it is already there. */
  async add(name: string, entry: IpsetEntry, opts: { exist?: boolean } = {}): Promise<void> {
    await this.adt(IpsetCmd.ADD, 'add', name, entry, opts.exist, 'add to');
  }

  /** Deletes an element. `exist`: no error when it is absent. */
  async del(name: string, entry: IpsetEntry, opts: { exist?: boolean } = {}): Promise<void> {
    await this.adt(IpsetCmd.DEL, 'del', name, entry, opts.exist, 'delete from');
  }

  /** True when the element is in the set. */
  async test(name: string, entry: IpsetEntry): Promise<boolean> {
    try {
      await this.adt(IpsetCmd.TEST, 'test', name, entry);
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'IPSET_ERR_EXIST') return false;
      throw e;
    }
  }

  /** Every set (or one by name) with its header and entries. */
  async list(name?: string): Promise<IpsetSet[]> {
    const msgs = await this.send(encodeList(this.protocol, name), 'list', name ? `list ipset ${name}` : 'list ipsets');
    const sets = mergeListChunks(msgs.map((m) => decodeListMessage(m.payload)));
    for (const s of sets) {
      this.known.set(s.header.name, { type: s.header.type, ...(s.header.family ? { family: s.header.family } : {}) });
    }
    return sets;
  }

  /** Names of all sets. */
  async names(): Promise<string[]> {
    return (await this.list()).map((s) => s.header.name);
  }

  /** Header of one set (type, family, revision, sizes) or undefined when it does not exist. */
  async header(name: string): Promise<IpsetHeader | undefined> {
    try {
      const sets = await this.list(name);
      return sets[0]?.header;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'ENOENT') return undefined;
      throw e;
    }
  }

  /** IPSET_CMD_HEADER: name, type, family and revision only (cheaper than list). */
  async basicHeader(name: string): Promise<Pick<IpsetHeader, 'name' | 'type' | 'family' | 'revision'>> {
    const msgs = await this.send(encodeHeader(this.protocol, name), 'header', `header of ipset ${name}`);
    if (!msgs[0]) throw new Error(`header of ipset ${name}: empty reply`);
    const { header } = decodeListMessage(msgs[0].payload);
    if (!header) throw new Error(`header of ipset ${name}: reply without type`);
    return {
      name: header.name,
      type: header.type,
      revision: header.revision,
      ...(header.family ? { family: header.family } : {}),
    };
  }
}

/** "x is inet6" when an address of the entry is not of `family`. */
function wrongFamily(e: IpsetEntry, family: IpFamily): string | undefined {
  for (const ip of [e.ip, e.ip2]) {
    const fam = ip === undefined ? undefined : familyOf(ip);
    if (fam && fam !== family) return `${ip} is ${fam}`;
  }
  return undefined;
}

export const openIpset = (opts?: IpsetClientOptions): Promise<IpsetClient> => IpsetClient.open(opts);
