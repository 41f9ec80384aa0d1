import type { NetlinkConnection, NetlinkConnectionStats } from './netlink-connection.ts';

/** What every protocol client (IPVS, ipset) exposes about its windowed connection. */
export abstract class NetlinkClient {
  protected constructor(protected readonly conn: NetlinkConnection) {}

  get stats(): Readonly<NetlinkConnectionStats> {
    return this.conn.stats;
  }

  /** Most requests in flight at once. */
  get window(): number {
    return this.conn.window;
  }

  /** Actual socket buffer sizes after the kernel applied its caps. */
  bufferSizes(): { recv: number; send: number } {
    return this.conn.bufferSizes();
  }

  close(): void {
    this.conn.close();
  }
}
