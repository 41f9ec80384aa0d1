import { MASQUERADE_MARK } from './nft-names.ts';
import { DISPATCH_MAPS, mapName } from './nft-objects.ts';

/**
 * The fixed part of our table, independent of services: base chains hooked into netfilter, the
 * dispatch maps they look packets up in, and small helper chains. Modelled on kube-proxy's
 * nftables mode (pkg/proxy/nftables/proxier.go): a packet costs one map lookup, however many
 * services exist.
 */
export interface SkeletonChain {
  readonly name: string;
  /** e.g. `type nat hook prerouting priority dstnat; policy accept;` for base chains. */
  readonly hook?: string;
  readonly rules: readonly string[];
}

export interface SkeletonMap {
  readonly name: string;
  readonly type: string;
}

function dispatch(map: string): string[] {
  return [
    `ip daddr . meta l4proto . th dport vmap @${mapName(map as (typeof DISPATCH_MAPS)[number], false)}`,
    `ip6 daddr . meta l4proto . th dport vmap @${mapName(map as (typeof DISPATCH_MAPS)[number], true)}`,
  ];
}

/** Helpers first: dynamic chains jump to them, so they must exist before those rules load. */
export const HELPER_CHAINS: readonly SkeletonChain[] = [
  { name: 'mark-for-masquerade', rules: [`meta mark set meta mark | ${MASQUERADE_MARK}`] },
  {
    name: 'masquerading',
    rules: [
      `meta mark & ${MASQUERADE_MARK} == 0 return`,
      `meta mark set meta mark ^ ${MASQUERADE_MARK}`,
      'masquerade fully-random',
    ],
  },
  // TCP gets a reset, not the ICMP port unreachable kube-proxy sends: the kernel rate-limits ICMP
  // errors per destination host (net.ipv4.icmp_ratelimit: a burst of 6, then 1/s), so a client
  // opening connections to a service without endpoints faster than that timed out instead of
  // being refused (probe22 T2: 6 refused, 856 timeouts in 5 s at 190/s). Resets are not limited.
  { name: 'reject-chain', rules: ['meta l4proto tcp reject with tcp reset', 'reject'] },
];

/** Sets of the skeleton (their elements are rendered with the state: nft-objects.ts's SHARED_SETS). */
export interface SkeletonSet {
  readonly name: string;
  readonly decl: string;
}
export const SKELETON_SETS: readonly SkeletonSet[] = [
  { name: 'hairpin', decl: 'type ipv4_addr . ipv4_addr;' },
  { name: 'hairpin6', decl: 'type ipv6_addr . ipv6_addr;' },
];

export const SKELETON_MAPS: readonly SkeletonMap[] = DISPATCH_MAPS.flatMap((m) => [
  { name: mapName(m, false), type: 'ipv4_addr . inet_proto . inet_service : verdict' },
  { name: mapName(m, true), type: 'ipv6_addr . inet_proto . inet_service : verdict' },
]);

/** Chains that look up the maps, and the base chains; they come after the maps they reference. */
export const DISPATCH_CHAINS: readonly SkeletonChain[] = [
  { name: 'services', rules: dispatch('service-ips') },
  { name: 'firewall-check', rules: dispatch('firewall-ips') },
  { name: 'service-endpoints-check', rules: dispatch('no-endpoint-services') },
  // Source ranges are checked before DNAT rewrites the LB address (dstnat - 10).
  {
    name: 'filter-prerouting',
    hook: 'type filter hook prerouting priority -110; policy accept;',
    rules: ['ct state new jump firewall-check'],
  },
  {
    name: 'filter-output',
    hook: 'type filter hook output priority -110; policy accept;',
    rules: ['ct state new jump firewall-check'],
  },
  // Services without endpoints were not DNATed, so their VIP is still the destination here.
  {
    name: 'filter-input',
    hook: 'type filter hook input priority filter - 10; policy accept;',
    rules: ['ct state new jump service-endpoints-check'],
  },
  {
    name: 'filter-forward',
    hook: 'type filter hook forward priority filter - 10; policy accept;',
    rules: ['ct state new jump service-endpoints-check'],
  },
  {
    name: 'filter-output-post-dnat',
    hook: 'type filter hook output priority filter - 10; policy accept;',
    rules: ['ct state new jump service-endpoints-check'],
  },
  {
    name: 'nat-prerouting',
    hook: 'type nat hook prerouting priority dstnat; policy accept;',
    rules: ['jump services'],
  },
  { name: 'nat-output', hook: 'type nat hook output priority -100; policy accept;', rules: ['jump services'] },
  {
    name: 'nat-postrouting',
    hook: 'type nat hook postrouting priority srcnat; policy accept;',
    // Hairpin: a DNATed connection whose source is its (new) destination is a pod reaching
    // itself through a service; it must be masqueraded so the reply comes back through us.
    rules: [
      'ct status dnat ip saddr . ip daddr @hairpin jump mark-for-masquerade',
      'ct status dnat ip6 saddr . ip6 daddr @hairpin6 jump mark-for-masquerade',
      'jump masquerading',
    ],
  },
];

export const SKELETON_CHAINS: readonly SkeletonChain[] = [...HELPER_CHAINS, ...DISPATCH_CHAINS];

/** What a read-back found wrong with the skeleton, by object, so it can be repaired in place. */
export interface SkeletonDamage {
  /** Skeleton chains missing, or holding another number of rules than ours. */
  readonly chains: readonly string[];
  /** Skeleton sets and maps missing. */
  readonly sets: readonly string[];
}

/**
 * The one skeleton check every read-back uses (netlink, `nft -j`, the test fake): each skeleton
 * chain must exist with as many rules as ours, each skeleton set and map must exist. Returns the
 * problems as one-line texts (notes) and as objects (planNftUpdate's repair). Pure.
 */
export function checkSkeleton(
  ruleCount: (chain: string) => number | undefined,
  hasSet: (name: string) => boolean,
): { problems: string[]; damage: SkeletonDamage } {
  const problems: string[] = [];
  const chains: string[] = [];
  const sets: string[] = [];
  for (const c of SKELETON_CHAINS) {
    const got = ruleCount(c.name);
    if (got === undefined) problems.push(`chain ${c.name} missing`);
    else if (got !== c.rules.length) problems.push(`chain ${c.name} has ${got} rules, want ${c.rules.length}`);
    else continue;
    chains.push(c.name);
  }
  for (const [kind, list] of [
    ['map', SKELETON_MAPS],
    ['set', SKELETON_SETS],
  ] as const) {
    for (const s of list) {
      if (hasSet(s.name)) continue;
      problems.push(`${kind} ${s.name} missing`);
      sets.push(s.name);
    }
  }
  return { problems, damage: { chains, sets } };
}
