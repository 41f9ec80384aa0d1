// Public surface of libs/netlink: kernel clients (IPVS, ipset, links) and their pure codecs.
export { NetlinkError } from './netlink-error.ts';
export { errnoName } from './errno-name.ts';
export { NetlinkConnection } from './netlink-connection.ts';
export type {
  NetlinkConnectionOptions,
  NetlinkConnectionStats,
  NetlinkRequest,
  NetlinkSocket,
} from './netlink-connection.ts';
export { bytesToIp, familyOf, ipToBytes, writeIpv4 } from './ip-address.ts';
export type { IpFamily } from './ip-address.ts';

export { IpvsClient, openIpvs } from './ipvs-client.ts';
export type { IpvsClientOptions } from './ipvs-client.ts';
export type {
  IpvsDestination,
  IpvsDestinationKey,
  IpvsForward,
  IpvsInfo,
  IpvsProtocol,
  IpvsService,
  IpvsServiceFlag,
  IpvsServiceKey,
  IpvsStats,
  IpvsTimeouts,
} from './ipvs-types.ts';
export { destLabel, serviceLabel } from './ipvs-codec.ts';
export {
  IPVS_LISTING_PATH,
  parseIpvsListing,
  type IpvsListedDestination,
  type IpvsListedService,
} from './ipvs-listing.ts';

export { IpsetClient, openIpset } from './ipset-client.ts';
export type { IpsetClientOptions } from './ipset-client.ts';
export { IPSET_TYPES } from './ipset-types.ts';
export type {
  IpsetCreate,
  IpsetEntry,
  IpsetHeader,
  IpsetProto,
  IpsetSet,
  IpsetType,
} from './ipset-types.ts';
export { entryFromText, entryToSaveLine, entryToText, headerToSaveLine } from './ipset-entry-text.ts';
export { describeIpsetError, IpsetBatchError } from './ipset-errors.ts';

export { KUBE_IPVS_DEVICE, LinkClient, openLinks } from './link-client.ts';
export type { LinkClientOptions } from './link-client.ts';
export type { Link, LinkAddress } from './rtnl-codec.ts';

// nf_tables messages and expressions (the netlink runner of libs/dataplane/nftables speaks them).
export * from './nftables-codec.ts';
export * from './nftables-expr.ts';
export { scanRule, type RuleDigestParts } from './nftables-rule-scan.ts';
export { be32Attr, decodeAttrs } from './netlink-attrs.ts';
export { encodeMessage } from './netlink-message.ts';

// Who holds a unix socket: the kernel's sock_diag (libs/locks' abstract name claims).
export { listListeningUnixSockets, type UnixSocketInfo } from './sock-diag.ts';
