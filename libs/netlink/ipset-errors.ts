// Kernel ipset error codes (enum ipset_errno plus the per-type codes) → readable text,
// worded like the ipset tool (lib/errcode.c) so operators recognise them.

import { errnoName } from './errno-name.ts';
import { NetlinkError } from './netlink-error.ts';

export type IpsetOp =
  | 'protocol'
  | 'create'
  | 'destroy'
  | 'flush'
  | 'rename'
  | 'swap'
  | 'list'
  | 'add'
  | 'del'
  | 'test'
  | 'header'
  | 'type';

const COMMON: Record<number, readonly [string, string]> = {
  4097: ['IPSET_ERR_PROTOCOL', 'ipset protocol error (malformed request, e.g. an address of the wrong family)'],
  4098: ['IPSET_ERR_FIND_TYPE', 'set type not supported by the kernel'],
  4099: ['IPSET_ERR_MAX_SETS', 'maximal number of sets reached'],
  4100: ['IPSET_ERR_BUSY', 'set is in use by a kernel component'],
  4101: ['IPSET_ERR_EXIST_SETNAME2', 'the second set does not exist, or a set with the new name already exists'],
  4102: ['IPSET_ERR_TYPE_MISMATCH', 'the sets cannot be swapped: their type does not match'],
  4103: ['IPSET_ERR_EXIST', 'element exists'],
  4104: ['IPSET_ERR_INVALID_CIDR', 'invalid CIDR prefix'],
  4105: ['IPSET_ERR_INVALID_NETMASK', 'invalid netmask'],
  4106: ['IPSET_ERR_INVALID_FAMILY', 'protocol family not supported by the set type'],
  4107: ['IPSET_ERR_TIMEOUT', 'timeout cannot be used: set was created without timeout support'],
  4108: ['IPSET_ERR_REFERENCED', 'set is referenced and cannot be destroyed or renamed'],
  4109: ['IPSET_ERR_IPADDR_IPV4', 'an IPv4 address is expected'],
  4110: ['IPSET_ERR_IPADDR_IPV6', 'an IPv6 address is expected'],
  4111: ['IPSET_ERR_COUNTER', 'packet/byte counters cannot be used: set was created without counter support'],
  4112: ['IPSET_ERR_COMMENT', 'comment cannot be used: set was created without comment support'],
  4113: ['IPSET_ERR_INVALID_MARKMASK', 'invalid markmask'],
  4114: ['IPSET_ERR_SKBINFO', 'skbinfo cannot be used: set was created without skbinfo support'],
};
const HASH_SPECIFIC: Record<number, readonly [string, string]> = {
  4352: ['IPSET_ERR_HASH_FULL', 'hash is full, cannot add more elements'],
  4353: ['IPSET_ERR_HASH_ELEM', 'null-valued element cannot be stored in a hash set'],
  4354: ['IPSET_ERR_INVALID_PROTO', 'invalid protocol'],
  4355: ['IPSET_ERR_MISSING_PROTO', 'protocol missing, but must be specified'],
  4356: ['IPSET_ERR_HASH_RANGE_UNSUPPORTED', 'range is not supported in the "net" component of the element'],
  4357: ['IPSET_ERR_HASH_RANGE', 'invalid range, covers the whole address space'],
};
const BITMAP_SPECIFIC: Record<number, readonly [string, string]> = {
  4352: ['IPSET_ERR_BITMAP_RANGE', 'element is out of the range of the set'],
  4353: ['IPSET_ERR_BITMAP_RANGE_SIZE', 'the range exceeds the size limit of the set type'],
};

/** Name and text for an ipset/kernel errno in the context of an operation. */
export function describeIpsetError(errno: number, op: IpsetOp, setType?: string): { code: string; detail: string } {
  if (errno === 4103) {
    if (op === 'add')
      return { code: 'IPSET_ERR_EXIST', detail: "element cannot be added to the set: it's already added" };
    if (op === 'del')
      return { code: 'IPSET_ERR_EXIST', detail: "element cannot be deleted from the set: it's not added" };
  }
  let specific = setType?.startsWith('bitmap:') ? BITMAP_SPECIFIC[errno] : HASH_SPECIFIC[errno];
  // Type-specific codes overlap between hash and bitmap types; say both when the type is unknown.
  if (setType === undefined && HASH_SPECIFIC[errno] && BITMAP_SPECIFIC[errno]) {
    const h = HASH_SPECIFIC[errno]!;
    const b = BITMAP_SPECIFIC[errno]!;
    specific = [`${h[0]}|${b[0]}`, `${h[1]} (hash types) / ${b[1]} (bitmap types)`];
  }
  const known = COMMON[errno] ?? specific;
  if (known) return { code: known[0], detail: known[1] };
  if (errno >= 4352)
    return { code: `IPSET_ERR_TYPE_SPECIFIC+${errno - 4352}`, detail: `set-type specific error ${errno}` };
  const name = errnoName(errno);
  switch (name) {
    case 'ENOENT':
      return { code: name, detail: 'the set with the given name does not exist' };
    case 'EEXIST':
      return { code: name, detail: 'a set with the same name already exists' };
    case 'EPERM':
      return { code: name, detail: 'operation not permitted (need CAP_NET_ADMIN)' };
    case 'EMSGSIZE':
      return { code: name, detail: 'request too large' };
    default:
      return { code: name, detail: `kernel error ${errno}` };
  }
}

export function ipsetError(operation: string, errno: number, op: IpsetOp, setType?: string): NetlinkError {
  const { code, detail } = describeIpsetError(errno, op, setType);
  return new NetlinkError(operation, errno, code, detail);
}

/** A multi-element request the kernel refused at one element: `index` is its place in the request (0-based). */
export class IpsetBatchError extends NetlinkError {
  constructor(
    operation: string,
    errno: number,
    code: string,
    detail: string,
    readonly index: number,
  ) {
    super(operation, errno, code, detail);
  }
}
