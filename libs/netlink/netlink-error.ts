import { errnoName } from './errno-name.ts';

/**
 * A request the kernel refused (or that could not be sent/answered). `code` is the errno
 * name ("EEXIST") or, for ipset, the IPSET_ERR_* name; `errno` the raw positive number.
 */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  constructor(
    readonly operation: string,
    readonly errno: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${operation}: ${detail} (${code})`);
  }

  static fromErrno(operation: string, errno: number, detail?: string): NetlinkError {
    return new NetlinkError(operation, errno, errnoName(errno), detail ?? defaultDetail(errno));
  }
}

function defaultDetail(errno: number): string {
  switch (errnoName(errno)) {
    case 'EEXIST':
      return 'already exists';
    case 'ENOENT':
      return 'no such object';
    case 'ESRCH':
      return 'no such service';
    case 'EINVAL':
      return 'invalid argument';
    case 'EPERM':
      return 'operation not permitted (need CAP_NET_ADMIN)';
    case 'EBUSY':
      return 'resource busy';
    case 'ENOBUFS':
      return 'socket receive buffer overflowed, replies were lost';
    case 'ETIMEDOUT':
      return 'timed out waiting for the kernel';
    case 'EOPNOTSUPP':
      return 'operation not supported';
    case 'ENODEV':
      return 'no such device';
    case 'EADDRNOTAVAIL':
      return 'address not available';
    default:
      return `kernel error ${errno}`;
  }
}
