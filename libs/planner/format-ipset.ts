import type { IpsetState, NodeState } from '../model/index.ts';

/** The create line as `ipset save` prints it, without the random per-set initval. */
export function ipsetCreateLine(set: Pick<IpsetState, 'name' | 'type' | 'family'>): string {
  if (set.type === 'bitmap:port') return `create ${set.name} bitmap:port range 0-65535`;
  return `create ${set.name} ${set.type} family ${set.family ?? 'inet'} hashsize 1024 maxelem 65536 bucketsize 12`;
}

/** `ipset save` text of every set, sets and members in sorted order. */
export function formatIpsetSave(state: Pick<NodeState, 'ipsets'>): string {
  const lines: string[] = [];
  for (const set of state.ipsets) {
    lines.push(ipsetCreateLine(set));
    for (const e of set.entries) lines.push(`add ${set.name} ${e}`);
  }
  return lines.map((l) => l + '\n').join('');
}
