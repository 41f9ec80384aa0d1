import { DEFAULT_IPSET_MAXELEM, ipsetRoomFor, kernelIpText, type IpsetState, type NodeState } from '../model/index.ts';

/**
 * The create line as `ipset save` prints it, without the random per-set initval; its maxelem is
 * what the ipvs applier creates the set with for `entries` entries (ipsetRoomFor; 0: the default).
 */
export function ipsetCreateLine(set: Pick<IpsetState, 'name' | 'type' | 'family'>, entries = 0): string {
  if (set.type === 'bitmap:port') return `create ${set.name} bitmap:port range 0-65535`;
  const maxElem = ipsetRoomFor(entries) ?? DEFAULT_IPSET_MAXELEM;
  return `create ${set.name} ${set.type} family ${set.family ?? 'inet'} hashsize 1024 maxelem ${maxElem} bucketsize 12`;
}

/** `ipset save` text of every set, sets and members in sorted order (addresses as kernelIpText). */
export function formatIpsetSave(state: Pick<NodeState, 'ipsets'>): string {
  const lines: string[] = [];
  for (const set of state.ipsets) {
    lines.push(ipsetCreateLine(set, set.entries.length));
    for (const e of set.entries) lines.push(`add ${set.name} ${kernelEntryText(e)}`);
  }
  return lines.map((l) => l + '\n').join('');
}

/** An entry (`ip,proto:port[,ip|,net]`, or a port) with each address as ipset prints it. */
function kernelEntryText(entry: string): string {
  if (!entry.includes('::')) return entry; // only IPv6 texts starting with a zero run can change
  return entry
    .split(',')
    .map((part) => {
      const slash = part.indexOf('/');
      return slash < 0 ? kernelIpText(part) : kernelIpText(part.slice(0, slash)) + part.slice(slash);
    })
    .join(',');
}
