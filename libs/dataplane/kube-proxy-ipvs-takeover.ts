import { execFile } from 'node:child_process';
import type { NodeState } from '../model/index.ts';
import { IPSET_TABLE, ipsetName } from '../planner/index.ts';
import { glueChains, glueFamilies, glueSetNames, netfilterGlue } from './ipvs/netfilter-glue.ts';

/** The chains kube-proxy's ipvs mode creates, per table (pkg/proxy/ipvs/proxier.go). */
export const KUBE_PROXY_CHAINS: Readonly<Record<string, readonly string[]>> = {
  nat: [
    'KUBE-SERVICES',
    'KUBE-POSTROUTING',
    'KUBE-NODE-PORT',
    'KUBE-LOAD-BALANCER',
    'KUBE-FIREWALL',
    'KUBE-MARK-MASQ',
    'KUBE-PROXY-CANARY',
  ],
  filter: [
    'KUBE-FORWARD',
    'KUBE-NODE-PORT',
    'KUBE-PROXY-FIREWALL',
    'KUBE-SOURCE-RANGES-FIREWALL',
    'KUBE-IPVS-FILTER',
    'KUBE-IPVS-OUT-FILTER',
    'KUBE-PROXY-CANARY',
  ],
  mangle: ['KUBE-PROXY-CANARY'],
};
const KUBE_PROXY_SETS = new Set(IPSET_TABLE.flatMap(([base]) => [ipsetName(base, 'IPv4'), ipsetName(base, 'IPv6')]));

/**
 * Taking a node over from kube-proxy's ipvs mode (docs/migrate-from-kube-proxy.md). The ipvs
 * dataplane already adopts every object kube-proxy made with the same identity as one of ours
 * (virtual servers, kube-ipvs0 addresses, same-named ipsets and KUBE-* chains), so the Services we
 * render never lose their virtual server. What is left after our first verified apply is what
 * kube-proxy had and we do not render; this removes exactly that:
 *  - IPVS services that were kube-proxy's — their address was bound on kube-ipvs0, or their
 *    protocol/port was in kube-proxy's KUBE-NODE-PORT-* sets — when it started (snapshot taken
 *    before our first apply, since that apply rewrites those sets), and that we do not render;
 *  - addresses that were on kube-ipvs0 and that we do not bind;
 *  - kube-proxy's iptables chains (KUBE_PROXY_CHAINS: by name, so the kubelet's KUBE-KUBELET-CANARY
 *    and KUBE-FIREWALL stay) that our glue does not declare, with every rule jumping to them; then
 *    kube-proxy's ipsets (IPSET_TABLE names, both families) our state and glue do not use.
 * Foreign objects (IPVS services on other addresses, other chains and sets) are never touched.
 * IPv4 tables here; kube-proxy's ip6tables chains our IPv6 glue does not declare (all of them on a
 * node without IPv6 services) are removed with its other leftovers (kube-proxy-leftovers.ts).
 */
export interface KubeProxyIpvsSnapshot {
  /** "TCP/10.96.0.10:80" keys of kube-proxy's IPVS services, with the ipvsadm service flag. */
  readonly services: ReadonlyMap<string, { flag: '-t' | '-u'; hostPort: string }>;
  readonly vips: readonly string[];
}

export type Exec = (cmd: string, args: readonly string[], input?: string) => Promise<string>;
const DEVICE = 'kube-ipvs0';

export async function snapshotKubeProxyIpvs(exec: Exec = defaultExec): Promise<KubeProxyIpvsSnapshot> {
  const vips = (await exec('ip', ['-o', '-4', 'addr', 'show', 'dev', DEVICE]).catch(() => ''))
    .split('\n')
    .map((l) => /inet (\S+?)\/\d+/.exec(l)?.[1])
    .filter((x): x is string => !!x);
  const nodePorts = new Set<string>();
  for (const [set, proto] of [
    ['KUBE-NODE-PORT-TCP', 'TCP'],
    ['KUBE-NODE-PORT-UDP', 'UDP'],
    ['KUBE-NODE-PORT-LOCAL-TCP', 'TCP'],
    ['KUBE-NODE-PORT-LOCAL-UDP', 'UDP'],
  ] as const) {
    const text = await exec('ipset', ['save', set]).catch(() => '');
    for (const m of text.matchAll(/^add \S+ (\d+)$/gm)) nodePorts.add(`${proto}:${m[1]}`);
  }
  const services = new Map<string, { flag: '-t' | '-u'; hostPort: string }>();
  const vipSet = new Set(vips);
  for (const m of (await exec('ipvsadm', ['-Sn'])).matchAll(/^-A (-t|-u) (\S+)/gm)) {
    const flag = m[1] as '-t' | '-u';
    const hostPort = m[2]!;
    const proto = flag === '-t' ? 'TCP' : 'UDP';
    const i = hostPort.lastIndexOf(':');
    const addr = hostPort.slice(0, i).replace(/^\[(.*)\]$/, '$1');
    const port = hostPort.slice(i + 1);
    if (vipSet.has(addr) || nodePorts.has(`${proto}:${port}`)) services.set(`${proto}/${hostPort}`, { flag, hostPort });
  }
  return { services, vips };
}

export interface RemovalPlan {
  readonly ipvsDeletes: readonly { flag: '-t' | '-u'; hostPort: string }[];
  readonly addressDeletes: readonly string[];
  /** iptables-restore --noflush input; empty when no chain is left over. */
  readonly iptablesRestore: string;
  readonly staleChains: readonly string[];
  readonly ipsetDestroys: readonly string[];
}

/** Pure: what to remove, given the snapshot, what we rendered, iptables-save text and the ipset names present. */
export function planKubeProxyIpvsRemoval(
  snap: KubeProxyIpvsSnapshot,
  desired: NodeState,
  iptablesSave: string,
  ipsets: readonly string[],
): RemovalPlan {
  const host = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  const ours = new Set(desired.virtualServers.map((v) => `${v.protocol}/${host(v.address, v.port)}`));
  const ipvsDeletes = [...snap.services].filter(([k]) => !ours.has(k)).map(([, v]) => v);
  const bound = new Set(desired.boundAddresses);
  const addressDeletes = snap.vips.filter((a) => !bound.has(a));
  const glue = netfilterGlue(desired.settings, glueFamilies(desired));
  const ourChains = glueChains(glue);
  const out: string[] = [];
  const staleChains: string[] = [];
  for (const [table, text] of splitTables(iptablesSave)) {
    const theirs = new Set(KUBE_PROXY_CHAINS[table] ?? []);
    const mine = new Set(ourChains[table] ?? []);
    const stale = [...text.matchAll(/^:(\S+)/gm)].map((m) => m[1]!).filter((c) => theirs.has(c) && !mine.has(c));
    if (stale.length === 0) continue;
    const staleSet = new Set(stale);
    const deletes = [...text.matchAll(/^-A (\S+) (.*)$/gm)]
      .filter(
        (m) =>
          !staleSet.has(m[1]!) && /(?:-j|-g) (\S+)/.exec(m[2]!) && staleSet.has(/(?:-j|-g) (\S+)/.exec(m[2]!)![1]!),
      )
      .map((m) => `-D ${m[1]} ${m[2]}`);
    out.push(`*${table}`, ...deletes, ...stale.map((c) => `-F ${c}`), ...stale.map((c) => `-X ${c}`), 'COMMIT');
    staleChains.push(...stale.map((c) => `${table}/${c}`));
  }
  const usedSets = new Set([...desired.ipsets.map((s) => s.name), ...glueSetNames(glue)]);
  const ipsetDestroys = ipsets.filter((n) => KUBE_PROXY_SETS.has(n) && !usedSets.has(n));
  return {
    ipvsDeletes,
    addressDeletes,
    iptablesRestore: out.length ? out.join('\n') + '\n' : '',
    staleChains,
    ipsetDestroys,
  };
}

/** Runs the plan in the order that keeps every step valid; returns notes. */
export async function removeKubeProxyIpvs(
  snap: KubeProxyIpvsSnapshot,
  desired: NodeState,
  exec: Exec = defaultExec,
): Promise<string[]> {
  const plan = planKubeProxyIpvsRemoval(
    snap,
    desired,
    await exec('iptables-save', []),
    (await exec('ipset', ['list', '-n']))
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  for (const s of plan.ipvsDeletes) await exec('ipvsadm', ['-D', s.flag, s.hostPort]);
  for (const a of plan.addressDeletes) await exec('ip', ['addr', 'del', `${a}/32`, 'dev', DEVICE]);
  if (plan.iptablesRestore) await exec('iptables-restore', ['--noflush'], plan.iptablesRestore);
  for (const n of plan.ipsetDestroys) await exec('ipset', ['destroy', n]);
  const notes = [
    `take-over: removed kube-proxy's ${plan.ipvsDeletes.length} IPVS services, ${plan.addressDeletes.length} ${DEVICE} addresses, ${plan.staleChains.length} chains, ${plan.ipsetDestroys.length} ipsets we do not render`,
  ];
  return notes;
}

function splitTables(save: string): [string, string][] {
  const out: [string, string][] = [];
  for (const part of save.split(/^\*/m).slice(1)) {
    const nl = part.indexOf('\n');
    out.push([part.slice(0, nl).trim(), part.slice(nl + 1)]);
  }
  return out;
}

/** Runs a tool, its stdout as the answer; a failure names the tool and its first stderr line. */
export const defaultExec: Exec = (cmd, args, input) =>
  new Promise((resolve, reject) => {
    const c = execFile(cmd, [...args], { maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim().split('\n')[0] || err.message}`));
      else resolve(String(stdout));
    });
    // EPIPE from a tool that exits early is reported by its exit code, never as an uncaught error.
    c.stdin?.on('error', () => {});
    if (input !== undefined) c.stdin?.end(input);
  });
