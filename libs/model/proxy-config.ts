import { parseCidr } from './ip-address.ts';

/**
 * Proxy configuration: the slow axis of versioning. Revisions of it roll out in waves and can be
 * rolled back, independently of data versions.
 */
export type ProxyMode = 'ipvs' | 'nftables';

export interface ProxyConfig {
  readonly mode: ProxyMode;
  /** IPVS scheduler: rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh. */
  readonly scheduler: string;
  /** Scheduler flags for sh/mh, as ipvsadm names them: sh-fallback, sh-port, mh-fallback, mh-port. */
  readonly schedulerFlags: readonly string[];
  readonly tcpTimeout: number;
  readonly tcpFinTimeout: number;
  readonly udpTimeout: number;
  readonly strictARP: boolean;
  readonly masqueradeAll: boolean;
  readonly clusterCIDR: string;
  readonly excludeCIDRs: readonly string[];
  /**
   * NodePorts are served only on node addresses inside these CIDRs; empty = every address of the
   * Node object (its InternalIPs and ExternalIPs). kube-proxy ≥1.29's `["primary"]` reads as empty.
   */
  readonly nodePortAddresses: readonly string[];
}

export const DEFAULT_PROXY_CONFIG: ProxyConfig = Object.freeze({
  mode: 'ipvs',
  scheduler: 'rr',
  schedulerFlags: [],
  tcpTimeout: 0, // 0 = leave the kernel default, as kube-proxy does
  tcpFinTimeout: 0,
  udpTimeout: 0,
  strictARP: false,
  masqueradeAll: false,
  clusterCIDR: '',
  excludeCIDRs: [],
  nodePortAddresses: [],
});

/** kube-proxy's special nodePortAddresses value: the node's primary addresses (see readProxyConfig). */
export const NODE_PORT_ADDRESSES_PRIMARY = 'primary';

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'sh', 'dh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos'];
const FLAGS: Record<string, string[]> = { sh: ['sh-fallback', 'sh-port'], mh: ['mh-fallback', 'mh-port'] };

/**
 * What a config sets that its mode cannot honour: nftables mode balances every service at random
 * (kube-proxy's nftables mode does the same), so an IPVS scheduler other than the default, or its
 * flags, has no effect there. One line per setting, for notes; empty when nothing is ignored.
 */
export function settingsIgnoredByMode(config: ProxyConfig): string[] {
  if (config.mode !== 'nftables') return [];
  const ignored: string[] = [];
  if (config.scheduler !== DEFAULT_PROXY_CONFIG.scheduler)
    ignored.push(`scheduler ${config.scheduler} has no effect in nftables mode (it balances at random)`);
  if (config.schedulerFlags.length > 0)
    ignored.push(`scheduler flags ${config.schedulerFlags.join(',')} have no effect in nftables mode`);
  return ignored;
}

/** Validates a (partial) config over the defaults; throws one clear line naming the bad field. */
export function readProxyConfig(input: unknown): ProxyConfig {
  if (input === undefined || input === null) return DEFAULT_PROXY_CONFIG;
  if (typeof input !== 'object' || Array.isArray(input)) throw new Error('proxy config must be an object');
  const c = { ...DEFAULT_PROXY_CONFIG, ...(input as Partial<ProxyConfig>) };
  const known = new Set(Object.keys(DEFAULT_PROXY_CONFIG));
  for (const k of Object.keys(input)) if (!known.has(k)) throw new Error(`proxy config: unknown field ${k}`);
  if (c.mode !== 'ipvs' && c.mode !== 'nftables')
    throw new Error(`proxy config: mode must be ipvs or nftables, got ${String(c.mode)}`);
  if (!SCHEDULERS.includes(c.scheduler)) throw new Error(`proxy config: unknown scheduler ${String(c.scheduler)}`);
  for (const f of c.schedulerFlags) {
    if (!(FLAGS[c.scheduler] ?? []).includes(f))
      throw new Error(`proxy config: flag ${f} does not apply to scheduler ${c.scheduler}`);
  }
  for (const k of ['tcpTimeout', 'tcpFinTimeout', 'udpTimeout'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] > 86400 * 30)
      throw new Error(`proxy config: ${k} must be whole seconds`);
  }
  for (const k of ['strictARP', 'masqueradeAll'] as const) {
    if (typeof c[k] !== 'boolean') throw new Error(`proxy config: ${k} must be true or false`);
  }
  // Parsing trims, the kernel tools do not: a value must be used exactly as it was checked.
  const untrimmed = (k: string, t: unknown) => {
    if (typeof t !== 'string') throw new Error(`proxy config: ${k} must be a string, got ${JSON.stringify(t)}`);
    if (t !== t.trim()) throw new Error(`proxy config: ${k}: ${JSON.stringify(t)} has leading or trailing whitespace`);
  };
  untrimmed('clusterCIDR', c.clusterCIDR);
  for (const k of ['excludeCIDRs', 'nodePortAddresses'] as const) {
    if (!Array.isArray(c[k])) throw new Error(`proxy config: ${k} must be a list of CIDRs`);
    for (const t of c[k]) untrimmed(k, t);
  }
  // kube-proxy ≥1.29's spelling of "the node's own addresses" (its nftables default; probe6 P6):
  // what an empty list means here, so stored as one (old appliers read it, equal configs hash equal)
  if (c.nodePortAddresses.includes(NODE_PORT_ADDRESSES_PRIMARY)) {
    if (c.nodePortAddresses.length > 1)
      throw new Error(`proxy config: nodePortAddresses: "primary" must be the only entry (or list CIDRs only)`);
    c.nodePortAddresses = [];
  }
  const cidrs = (k: 'excludeCIDRs' | 'nodePortAddresses') =>
    c[k].map((t) => {
      const p = parseCidr(t);
      if (!p || !t.includes('/')) throw new Error(`proxy config: ${k}: invalid CIDR ${JSON.stringify(t)}`);
      return p.text;
    });
  if (c.clusterCIDR !== '' && !parseCidr(c.clusterCIDR))
    throw new Error(`proxy config: clusterCIDR: invalid CIDR ${c.clusterCIDR}`);
  return Object.freeze({
    ...c,
    schedulerFlags: [...c.schedulerFlags].sort(),
    excludeCIDRs: cidrs('excludeCIDRs'),
    nodePortAddresses: cidrs('nodePortAddresses'),
  });
}
