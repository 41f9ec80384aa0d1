import { realServerKey, virtualServerKey, type NodeState } from '../../model/index.ts';
import type { NetfilterGlue } from './netfilter-glue.ts';
import type { ObservedKernel } from './observed-kernel.ts';
import { sameVsSpec, vsSpec } from './plan-kernel-ops.ts';

/**
 * Read-back check, independent of the planner: does the kernel now hold `desired`? Returns the
 * mismatches (empty = verified). Real servers left at weight 0 while draining are allowed.
 */
export function verifyKernelState(
  desired: NodeState,
  observed: ObservedKernel,
  glue: NetfilterGlue | undefined,
  sysctls: Readonly<Record<string, string>>,
): string[] {
  const out: string[] = [];
  // forEach rather than for-loops over the state: see BULK_LOOPS in plan-kernel-ops.ts
  const vsByKey = new Map(observed.virtualServers.map((v) => [virtualServerKey(v), v]));
  desired.virtualServers.forEach((vs) => {
    const key = virtualServerKey(vs);
    const have = vsByKey.get(key);
    if (!have) {
      out.push(`missing IPVS service ${key}`);
      return;
    }
    if (!sameVsSpec(have, vsSpec(vs)))
      out.push(
        `IPVS service ${key} has scheduler/flags/persistence ${have.scheduler}/${have.schedulerFlags.join(',')}/${have.persistenceTimeout}`,
      );
    const rs = new Map(have.realServers.map((r) => [realServerKey(r), r]));
    vs.realServers.forEach((r) => {
      const h = rs.get(realServerKey(r));
      if (!h) out.push(`missing real server ${realServerKey(r)} of ${key}`);
      else if (h.weight !== r.weight) out.push(`real server ${realServerKey(r)} of ${key} has weight ${h.weight}`);
      rs.delete(realServerKey(r));
    });
    rs.forEach((h, k) => {
      if (h.weight !== 0) out.push(`unexpected real server ${k} of ${key} with weight ${h.weight}`);
    });
  });
  const bound = new Set(observed.boundAddresses);
  if (!observed.dummyDevice) out.push('dummy device missing');
  desired.boundAddresses.forEach((a) => {
    if (!bound.has(a)) out.push(`address ${a} not bound`);
  });
  const sets = new Map(observed.ipsets.map((s) => [s.name, s]));
  for (const s of desired.ipsets) {
    const h = sets.get(s.name);
    if (!h) {
      out.push(`missing ipset ${s.name}`);
      continue;
    }
    if (h.type !== s.type) out.push(`ipset ${s.name} has type ${h.type}`);
    if (h.entries.join('\n') !== s.entries.join('\n'))
      out.push(`ipset ${s.name} has ${h.entries.length} entries, want ${s.entries.length}`);
  }
  for (const [table, chains] of Object.entries(glue?.chains ?? {})) {
    for (const [chain, rules] of Object.entries(chains)) {
      const h = observed.netfilter.tables[table]?.[chain];
      if (!h || h.join('\n') !== rules.join('\n')) out.push(`netfilter chain ${table}/${chain} differs`);
    }
    for (const [chain, jumps] of Object.entries(glue?.jumps[table] ?? {})) {
      for (const j of jumps)
        if (!observed.netfilter.tables[table]?.[chain]?.includes(j))
          out.push(`netfilter jump missing in ${table}/${chain}`);
    }
  }
  for (const [k, v] of Object.entries(sysctls)) {
    const h = observed.sysctls[k];
    if (h !== undefined && h.trim() !== v) out.push(`sysctl ${k}=${h.trim()}, want ${v}`);
  }
  return out;
}
