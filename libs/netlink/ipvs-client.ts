// IpvsClient: IPVS over generic netlink through one windowed NetlinkConnection.

import { NetlinkClient } from './netlink-client.ts';
import { NetlinkConnection } from './netlink-connection.ts';
import type { RequestLabel } from './netlink-connection.ts';
import { NETLINK_GENERIC, decodeGenl, resolveGenlFamily } from './genl-family.ts';
import type { GenlFamily } from './genl-family.ts';
import { NetlinkError } from './netlink-error.ts';
import { errnoName } from './errno-name.ts';
import {
  IPVS_GENL_NAME,
  decodeDestMessage,
  decodeInfo,
  decodeServiceMessage,
  decodeTimeouts,
  destLabel,
  encodeDelDest,
  encodeDelService,
  encodeFlush,
  encodeGetConfig,
  encodeGetDests,
  encodeGetInfo,
  encodeGetService,
  encodeNewDest,
  encodeNewService,
  encodeSetConfig,
  encodeSetDest,
  encodeSetService,
  serviceFamily,
  serviceLabel,
} from './ipvs-codec.ts';
import type {
  IpvsDestination,
  IpvsDestinationKey,
  IpvsInfo,
  IpvsService,
  IpvsServiceKey,
  IpvsTimeouts,
} from './ipvs-types.ts';

export interface IpvsClientOptions {
  /** Max requests awaiting an answer (default 64). */
  readonly window?: number;
  /** Max requests per datagram (default 32). */
  readonly batch?: number;
  readonly recvBufferSize?: number;
  readonly sendBufferSize?: number;
  readonly stallTimeoutMs?: number;
  /** Fixed receive buffer in bytes instead of peeking each datagram's size (NetlinkConnectionOptions.receiveBuffer). */
  readonly receiveBuffer?: number;
}

type Kind = 'service' | 'destination' | 'config';

// What the kernel's errnos mean for each kind of IPVS object (ip_vs_ctl.c).
function describe(kind: Kind, errno: number): string | undefined {
  switch (errnoName(errno)) {
    case 'EEXIST':
      return kind === 'destination' ? 'destination already exists' : 'virtual service already exists';
    case 'ESRCH':
      return 'no such virtual service';
    case 'ENOENT':
      return kind === 'destination'
        ? 'no such destination'
        : 'no such scheduler or persistence engine (module not loaded?)';
    case 'EINVAL':
      return kind === 'destination'
        ? 'invalid destination (address not unicast, or bad forwarding/thresholds)'
        : 'invalid argument';
    case 'EPERM':
      return 'operation not permitted (need CAP_NET_ADMIN)';
    case 'EBUSY':
      return 'busy (another dump is running on this socket)';
    default:
      return undefined;
  }
}

/**
 * An IPVS request's error text and errno mapping, built only if the kernel refuses it: the
 * labels cost two address-family checks and a few strings per request, for nothing on success.
 */
class IpvsLabel implements RequestLabel {
  constructor(
    private readonly kind: Kind,
    /** "add service", "list destinations of", "add destination" ... */
    private readonly what: string,
    private readonly svc?: IpvsServiceKey,
    private readonly dest?: IpvsDestinationKey,
    /** Between the destination and its service: "to", "of", "from". */
    private readonly join = '',
  ) {}

  text(): string {
    if (!this.svc) return this.what;
    if (!this.dest) return `${this.what} ${serviceLabel(this.svc)}`;
    return `${this.what} ${destLabel(this.dest)} ${this.join} ${serviceLabel(this.svc)}`;
  }

  mapError(errno: number, ext?: string): Error | undefined {
    const d = describe(this.kind, errno);
    return d ? new NetlinkError(this.text(), errno, errnoName(errno), ext ? `${d}: ${ext}` : d) : undefined;
  }
}

export class IpvsClient extends NetlinkClient {
  private constructor(
    conn: NetlinkConnection,
    readonly family: GenlFamily,
  ) {
    super(conn);
  }

  /** Opens a socket in the current network namespace and resolves the "IPVS" family. */
  static async open(opts: IpvsClientOptions = {}): Promise<IpvsClient> {
    const conn = new NetlinkConnection({ protocol: NETLINK_GENERIC, coalesceAcks: true, ...opts });
    try {
      return new IpvsClient(conn, await resolveGenlFamily(conn, IPVS_GENL_NAME));
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  private send(label: IpvsLabel, payload: Buffer, dump = false) {
    return this.conn.request({ type: this.family.id, payload, dump, operation: label });
  }

  /** Every service; `stats: false` leaves out the traffic counters (cheaper to decode). */
  async listServices(opts: { stats?: boolean } = {}): Promise<IpvsService[]> {
    const withStats = opts.stats ?? true;
    const msgs = await this.send(LIST_SERVICES, encodeGetService(), true);
    return msgs.map((m) => decodeServiceMessage(m.payload, withStats));
  }

  /** One service, or undefined when it does not exist. */
  async getService(key: IpvsServiceKey, opts: { stats?: boolean } = {}): Promise<IpvsService | undefined> {
    try {
      const msgs = await this.send(new IpvsLabel('service', 'get service', key), encodeGetService(key));
      return msgs[0] ? decodeServiceMessage(msgs[0].payload, opts.stats ?? true) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && (e.code === 'ESRCH' || e.code === 'ENOENT')) return undefined;
      throw e;
    }
  }

  /** A service's destinations; `stats: false` leaves out the traffic counters (cheaper to decode). */
  async listDestinations(svc: IpvsServiceKey, opts: { stats?: boolean } = {}): Promise<IpvsDestination[]> {
    const fam = serviceFamily(svc);
    const withStats = opts.stats ?? true;
    const msgs = await this.send(new IpvsLabel('service', 'list destinations of', svc), encodeGetDests(svc), true);
    return msgs.map((m) => decodeDestMessage(m.payload, fam, withStats));
  }

  async addService(svc: IpvsService): Promise<void> {
    await this.send(new IpvsLabel('service', 'add service', svc), encodeNewService(svc));
  }

  async editService(svc: IpvsService): Promise<void> {
    await this.send(new IpvsLabel('service', 'edit service', svc), encodeSetService(svc));
  }

  async deleteService(key: IpvsServiceKey): Promise<void> {
    await this.send(new IpvsLabel('service', 'delete service', key), encodeDelService(key));
  }

  async addDestination(svc: IpvsServiceKey, dest: IpvsDestination): Promise<void> {
    await this.send(new IpvsLabel('destination', 'add destination', svc, dest, 'to'), encodeNewDest(svc, dest));
  }

  async editDestination(svc: IpvsServiceKey, dest: IpvsDestination): Promise<void> {
    await this.send(new IpvsLabel('destination', 'edit destination', svc, dest, 'of'), encodeSetDest(svc, dest));
  }

  async deleteDestination(svc: IpvsServiceKey, dest: IpvsDestinationKey): Promise<void> {
    await this.send(new IpvsLabel('destination', 'delete destination', svc, dest, 'from'), encodeDelDest(svc, dest));
  }

  async getTimeouts(): Promise<IpvsTimeouts> {
    const msgs = await this.send(new IpvsLabel('config', 'get IPVS timeouts'), encodeGetConfig());
    if (!msgs[0]) throw new Error('get IPVS timeouts: empty reply');
    return decodeTimeouts(msgs[0].payload);
  }

  /** Sets the given timeouts (seconds); omitted ones stay as they are. */
  async setTimeouts(t: Partial<IpvsTimeouts>): Promise<void> {
    await this.send(new IpvsLabel('config', 'set IPVS timeouts'), encodeSetConfig(t));
  }

  async info(): Promise<IpvsInfo> {
    const msgs = await this.send(new IpvsLabel('config', 'get IPVS info'), encodeGetInfo());
    if (!msgs[0]) throw new Error('get IPVS info: empty reply');
    decodeGenl(msgs[0].payload);
    return decodeInfo(msgs[0].payload);
  }

  /** Removes every service (ipvsadm -C). The applier must not call this on shared hosts. */
  async flush(): Promise<void> {
    await this.send(new IpvsLabel('config', 'flush IPVS'), encodeFlush());
  }
}

const LIST_SERVICES = new IpvsLabel('service', 'list IPVS services');

export const openIpvs = (opts?: IpvsClientOptions): Promise<IpvsClient> => IpvsClient.open(opts);
