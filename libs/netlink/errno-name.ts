import { constants } from 'node:os';

// Reverse of os.constants.errno, built once: 17 → 'EEXIST'. Several names share a number
// (EAGAIN/EWOULDBLOCK); the first one listed by Node wins.
const byNumber = new Map<number, string>();
// Where Linux has aliases, use the name kernel sources and iproute2 use.
for (const name of ['EOPNOTSUPP', 'EAGAIN', 'EDEADLK']) {
  const num = (constants.errno as Record<string, number>)[name];
  if (num !== undefined) byNumber.set(num, name);
}
for (const [name, num] of Object.entries(constants.errno)) {
  if (!byNumber.has(num)) byNumber.set(num, name);
}

/** errno number (positive) → symbolic name, or `E<num>` when unknown. */
export function errnoName(errno: number): string {
  return byNumber.get(errno) ?? `E${errno}`;
}
