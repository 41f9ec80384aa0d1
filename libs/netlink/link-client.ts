// LinkClient: the kube-ipvs0 dummy device and the service addresses bound to it.

import { NetlinkConnection } from './netlink-connection.ts';
import type { RequestLabel } from './netlink-connection.ts';
import { NetlinkError } from './netlink-error.ts';
import { errnoName } from './errno-name.ts';
import { NLM_F_CREATE, NLM_F_EXCL } from './netlink-message.ts';
import { familyOf } from './ip-address.ts';
import {
  NETLINK_ROUTE,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  decodeAddress,
  decodeLink,
  encodeAddress,
  encodeCreateLink,
  encodeDelLink,
  encodeGetAddresses,
  encodeGetLink,
  encodeSetLinkUp,
} from './rtnl-codec.ts';
import type { Link, LinkAddress } from './rtnl-codec.ts';

export const KUBE_IPVS_DEVICE = 'kube-ipvs0';

export interface LinkClientOptions {
  readonly window?: number;
  /** Max requests per datagram (default 32). */
  readonly batch?: number;
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
}

const describe = (errno: number): string | undefined => {
  switch (errnoName(errno)) {
    case 'ENODEV':
      return 'no such link';
    case 'EEXIST':
      return 'already exists';
    case 'EADDRNOTAVAIL':
      return 'address is not assigned to the link';
    case 'EOPNOTSUPP':
      return 'link type not supported by this kernel (module missing?)';
    case 'EPERM':
      return 'operation not permitted (need CAP_NET_ADMIN)';
    default:
      return undefined;
  }
};

/** A request's error text and errno mapping, built only if the kernel refuses it (see IpvsLabel). */
class LinkLabel implements RequestLabel {
  constructor(
    private readonly what: string,
    private readonly address?: string,
    /** "to" / "from" the device. */
    private readonly join?: string,
    private readonly device?: string,
  ) {}

  text(): string {
    return this.address === undefined ? this.what : `${this.what} ${this.address} ${this.join} ${this.device}`;
  }

  mapError(errno: number, ext?: string): Error | undefined {
    const d = describe(errno);
    return d ? new NetlinkError(this.text(), errno, errnoName(errno), ext ? `${d}: ${ext}` : d) : undefined;
  }
}

export class LinkClient {
  private constructor(private readonly conn: NetlinkConnection) {}

  static open(opts: LinkClientOptions = {}): LinkClient {
    return new LinkClient(new NetlinkConnection({ protocol: NETLINK_ROUTE, coalesceAcks: true, ...opts }));
  }

  private send(
    type: number,
    payload: Buffer,
    operation: string | LinkLabel,
    opts: { flags?: number; dump?: boolean } = {},
  ) {
    return this.conn.request({
      type,
      payload,
      operation: typeof operation === 'string' ? new LinkLabel(operation) : operation,
      flags: opts.flags ?? 0,
      dump: opts.dump ?? false,
    });
  }

  /** The link called `name`, or undefined. */
  async getLink(name: string): Promise<Link | undefined> {
    try {
      const msgs = await this.send(RTM_GETLINK, encodeGetLink(name), `get link ${name}`);
      return msgs[0] ? decodeLink(msgs[0].payload) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && e.code === 'ENODEV') return undefined;
      throw e;
    }
  }

  async listLinks(): Promise<Link[]> {
    const msgs = await this.send(RTM_GETLINK, encodeGetLink(), 'list links', { dump: true });
    return msgs.filter((m) => m.type === RTM_NEWLINK).map((m) => decodeLink(m.payload));
  }

  /**
   * Makes sure a dummy link `name` exists and is up; returns it. A link of that name but
   * another kind is an error (we never take over a foreign device).
   */
  async ensureDummy(name = KUBE_IPVS_DEVICE): Promise<Link> {
    let link = await this.getLink(name);
    if (!link) {
      try {
        await this.send(RTM_NEWLINK, encodeCreateLink(name, 'dummy', true), `create dummy link ${name}`, {
          flags: NLM_F_CREATE | NLM_F_EXCL,
        });
      } catch (e) {
        if (!(e instanceof NetlinkError && e.code === 'EEXIST')) throw e; // lost a race: fine
      }
      link = await this.getLink(name);
      if (!link) throw new Error(`create dummy link ${name}: link not found after creation`);
    }
    if (link.kind !== 'dummy') throw new Error(`link ${name} exists but is of kind ${link.kind ?? 'none'}, not dummy`);
    if (!link.up) {
      await this.setUp(name, true);
      link = (await this.getLink(name)) ?? link;
    }
    return link;
  }

  async setUp(name: string, up: boolean): Promise<void> {
    const link = await this.requireLink(name, `set link ${name} ${up ? 'up' : 'down'}`);
    await this.send(RTM_NEWLINK, encodeSetLinkUp(link.index, up), `set link ${name} ${up ? 'up' : 'down'}`);
  }

  async deleteLink(name: string): Promise<void> {
    const link = await this.requireLink(name, `delete link ${name}`);
    await this.send(RTM_DELLINK, encodeDelLink(link.index), `delete link ${name}`);
  }

  /** Addresses on link `name` (both families unless one is given). */
  async listAddresses(name: string, family?: 'inet' | 'inet6'): Promise<LinkAddress[]> {
    const link = await this.requireLink(name, `list addresses of ${name}`);
    const msgs = await this.send(RTM_GETADDR, encodeGetAddresses(family), `list addresses of ${name}`, { dump: true });
    return msgs
      .filter((m) => m.type === RTM_NEWADDR)
      .map((m) => decodeAddress(m.payload))
      .filter((a) => a.linkIndex === link.index);
  }

  /**
   * Adds address/prefix (default /32 or /128) to link `name` (or to a link already looked up,
   * which saves a request per address when adding many). EEXIST when already there.
   */
  async addAddress(name: string | Link, address: string, prefixLength?: number): Promise<void> {
    const op = new LinkLabel('add address', address, 'to', typeof name === 'string' ? name : name.name);
    const link = typeof name === 'string' ? await this.requireLink(name, op.text()) : name;
    await this.send(RTM_NEWADDR, encodeAddress(link.index, address, prefixLength), op, {
      flags: NLM_F_CREATE | NLM_F_EXCL,
    });
  }

  async deleteAddress(name: string | Link, address: string, prefixLength?: number): Promise<void> {
    const op = new LinkLabel('delete address', address, 'from', typeof name === 'string' ? name : name.name);
    const link = typeof name === 'string' ? await this.requireLink(name, op.text()) : name;
    if (!familyOf(address)) throw new Error(`${op.text()}: invalid IP address`);
    await this.send(RTM_DELADDR, encodeAddress(link.index, address, prefixLength), op);
  }

  close(): void {
    this.conn.close();
  }

  private async requireLink(name: string, operation: string): Promise<Link> {
    const link = await this.getLink(name);
    if (!link) throw new NetlinkError(operation, 19, 'ENODEV', `no link named ${name}`);
    return link;
  }
}

export const openLinks = (opts?: LinkClientOptions): LinkClient => LinkClient.open(opts);
