import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { nftObjectName } from '../../../../libs/dataplane/nftables/nft-names.ts';
import { renderNftObjects } from '../../../../libs/dataplane/nftables/nft-objects.ts';
import { renderNftRuleset } from '../../../../libs/dataplane/nftables/render-nft-ruleset.ts';
import { nodeState } from '../../../netns/support/node-state-builder.ts';

const chainWith = (objects: ReturnType<typeof renderNftObjects>, prefix: string) =>
  [...objects.chains].filter(([n]) => n.startsWith(prefix));

describe('renderNftObjects', () => {
  it('dispatches a ClusterIP through the service-ips map to a DNAT through its endpoint map', () => {
    const o = renderNftObjects(
      nodeState(
        [
          {
            servicePort: 'ns/a:p',
            address: '10.96.0.1',
            port: 80,
            endpoints: ['10.1.0.1:8080', '10.1.0.2:8080', '10.1.0.3:8080'],
          },
        ],
        { clusterCIDR: '10.1.0.0/16' },
      ),
    );
    const [[svcName, svcRules]] = chainWith(o, 'service-');
    expect(o.elements.get('service-ips')!.get('10.96.0.1 . tcp . 80')).toBe(`goto ${svcName}`);
    expect(svcRules[0]).toBe('ip daddr 10.96.0.1 tcp dport 80 ip saddr != 10.1.0.0/16 jump mark-for-masquerade');
    const [map, decl] = [...o.sets][0]!;
    expect(map).toMatch(/^endpoints-\w{8}-ns\/a\/p\/tcp$/);
    expect(decl).toBe('typeof numgen random mod 65536 : ip daddr . tcp dport; flags interval;');
    expect(svcRules.at(-1)).toBe(`meta l4proto tcp dnat ip to numgen random mod 65536 map @${map}`);
    expect(o.elements.get(map)).toEqual(
      new Map([
        ['0-21844', '10.1.0.1 . 8080'],
        ['21845-43689', '10.1.0.2 . 8080'],
        ['43690-65535', '10.1.0.3 . 8080'],
      ]),
    );
    expect(chainWith(o, 'endpoint-')).toEqual([]);
    expect([...o.elements.get('hairpin')!.keys()]).toEqual([
      '10.1.0.1 . 10.1.0.1',
      '10.1.0.2 . 10.1.0.2',
      '10.1.0.3 . 10.1.0.3',
    ]);
  });

  it('counts the groups that share a hairpin entry', () => {
    const o = renderNftObjects(
      nodeState([
        { servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:80', '10.1.0.1:81'] },
        { servicePort: 'ns/b:p', address: '10.96.0.2', port: 80, endpoints: ['10.1.0.1:90'] },
      ]),
    );
    expect(o.shared.get('hairpin')).toEqual(new Map([['10.1.0.1 . 10.1.0.1', 2]]));
  });

  it('marks external traffic for masquerade under Cluster policy but keeps client IPs under Local', () => {
    const o = renderNftObjects(
      nodeState([
        { servicePort: 'ns/c:p', address: '192.168.1.1', port: 30001, role: 'node-port', endpoints: ['10.1.0.1:80'] },
        {
          servicePort: 'ns/l:p',
          address: '192.168.1.1',
          port: 30002,
          role: 'node-port',
          localOnly: true,
          endpoints: ['10.1.0.2:80'],
        },
      ]),
    );
    const ext = new Map(chainWith(o, 'external-').map(([n, r]) => [n.includes('/local') ? 'local' : 'cluster', r]));
    expect(ext.get('cluster')![0]).toBe('jump mark-for-masquerade');
    expect(ext.get('local')![0]).toBe('fib saddr type local jump mark-for-masquerade');
    expect(o.elements.get('service-ips')!.get('192.168.1.1 . tcp . 30002')).toMatch(/^goto external-.*\/local$/);
  });

  it('session affinity: one timeout set per endpoint, checked before numgen and refreshed on DNAT', () => {
    const o = renderNftObjects(
      nodeState([
        {
          servicePort: 'ns/a:p',
          address: '10.96.0.1',
          port: 80,
          persistenceTimeout: 10800,
          endpoints: ['10.1.0.1:80', '10.1.0.2:80'],
        },
      ]),
    );
    expect([...o.sets.values()]).toEqual(Array(2).fill('type ipv4_addr; flags dynamic,timeout; timeout 10800s;'));
    const [[, svc]] = chainWith(o, 'service-');
    expect(svc.filter((r) => /^ip saddr @affinity-\S+ goto endpoint-/.test(r))).toHaveLength(2);
    for (const [, r] of chainWith(o, 'endpoint-')) expect(r[0]).toMatch(/^update @affinity-\S+ \{ ip saddr \}$/);
    expect(svc.at(-1)).toMatch(/^numgen random mod 2 vmap \{ 0 : goto endpoint-\S+, 1 : goto endpoint-\S+ \}$/);
  });

  it('LoadBalancer source ranges become a firewall chain dropping other sources; no endpoints at all reject (external too, as kube-proxy)', () => {
    const o = renderNftObjects(
      nodeState([
        {
          servicePort: 'ns/lb:p',
          address: '203.0.113.5',
          port: 443,
          role: 'load-balancer',
          sourceRanges: ['10.0.0.0/8', '172.16.0.0/12'],
          endpoints: ['10.1.0.1:443'],
        },
        { servicePort: 'ns/none:p', address: '10.96.0.7', port: 53, protocol: 'UDP', endpoints: [] },
        {
          servicePort: 'ns/none-local:p',
          address: '203.0.113.6',
          port: 80,
          role: 'load-balancer',
          localOnly: true,
          endpoints: [],
        },
      ]),
    );
    const [[fw, rules]] = chainWith(o, 'firewall-');
    expect(rules).toEqual(['ip saddr != { 10.0.0.0/8, 172.16.0.0/12 } drop']);
    expect(o.elements.get('firewall-ips')!.get('203.0.113.5 . tcp . 443')).toBe(`goto ${fw}`);
    expect(o.elements.get('no-endpoint-services')!.get('10.96.0.7 . udp . 53')).toBe('goto reject-chain');
    expect(o.elements.get('no-endpoint-services')!.get('203.0.113.6 . tcp . 80')).toBe('goto reject-chain');
    expect(o.elements.get('service-ips')!.has('10.96.0.7 . udp . 53')).toBe(false);
  });

  it('Local policy with endpoints elsewhere only: pods and the node short-circuit to them, the rest is dropped (probe6 P2, P8)', () => {
    const o = renderNftObjects(
      nodeState(
        [
          {
            servicePort: 'ns/rem:p',
            address: '203.0.113.6',
            port: 80,
            role: 'load-balancer',
            localOnly: true,
            noLocalEndpoints: true,
            endpoints: ['10.1.0.9:80'],
          },
          // internalTrafficPolicy Local, endpoints elsewhere only: dropped (kube-proxy), not rejected
          {
            servicePort: 'ns/itl:p',
            address: '10.96.0.8',
            port: 80,
            localOnly: true,
            noLocalEndpoints: true,
            endpoints: ['10.1.0.9:80'],
          },
        ],
        { clusterCIDR: '10.1.0.0/16' },
      ),
    );
    expect(o.elements.get('no-endpoint-services')!.get('203.0.113.6 . tcp . 80')).toBe('drop');
    expect(o.elements.get('no-endpoint-services')!.get('10.96.0.8 . tcp . 80')).toBe('drop');
    expect(o.elements.get('service-ips')!.has('10.96.0.8 . tcp . 80')).toBe(false);
    const [[ext, rules]] = chainWith(o, 'external-');
    expect(o.elements.get('service-ips')!.get('203.0.113.6 . tcp . 80')).toBe(`goto ${ext}`);
    const [[cluster]] = chainWith(o, 'service-');
    expect(cluster).toMatch(/\/cluster$/);
    expect(rules).toEqual([
      'fib saddr type local jump mark-for-masquerade',
      `ip saddr 10.1.0.0/16 goto ${cluster}`,
      `fib saddr type local goto ${cluster}`,
    ]);
  });

  it('Local policy with local and remote endpoints: outside traffic to the local ones, pods and the node to all', () => {
    const o = renderNftObjects(
      nodeState([
        {
          servicePort: 'ns/loc:p',
          address: '203.0.113.7',
          port: 80,
          role: 'load-balancer',
          localOnly: true,
          endpoints: ['10.1.0.1:80'],
          clusterEndpoints: ['10.1.0.1:80', '10.2.0.1:80'],
        },
      ]),
    );
    const chains = new Map(chainWith(o, 'service-'));
    const local = [...chains.keys()].find((n) => n.endsWith('/local'))!;
    const cluster = [...chains.keys()].find((n) => n.endsWith('/cluster'))!;
    const slots = (chain: string) => [...o.elements.get(/@(\S+)$/.exec(chains.get(chain)!.at(-1)!)![1]!)!.values()];
    expect(slots(local)).toEqual(['10.1.0.1 . 80']);
    expect(slots(cluster)).toEqual(['10.1.0.1 . 80', '10.2.0.1 . 80']);
    const [[, rules]] = chainWith(o, 'external-');
    // no clusterCIDR: no pod short-circuit, the node's own traffic only
    expect(rules).toEqual([
      'fib saddr type local jump mark-for-masquerade',
      `fib saddr type local goto ${cluster}`,
      `goto ${local}`,
    ]);
    expect(o.elements.get('no-endpoint-services')!.size).toBe(0);
  });

  it('IPv6 services go to the ip6 maps and DNAT with brackets', () => {
    const o = renderNftObjects(
      nodeState([
        { servicePort: 'ns/v6:p', address: 'fd00::1', port: 53, protocol: 'UDP', endpoints: ['fd01::5:5353'] },
      ]),
    );
    expect(o.elements.get('service-ips6')!.get('fd00::1 . udp . 53')).toMatch(/^goto service-/);
    expect(chainWith(o, 'service-')[0]![1].at(-1)).toMatch(
      /^meta l4proto udp dnat ip6 to numgen random mod 65536 map @endpoints-/,
    );
    expect([...o.sets.values()]).toEqual(['typeof numgen random mod 65536 : ip6 daddr . udp dport; flags interval;']);
    expect([...[...o.elements].find(([n]) => n.startsWith('endpoints-'))![1]]).toEqual([['0-65535', 'fd01::5 . 5353']]);
    expect([...o.elements.get('hairpin6')!.keys()]).toEqual(['fd01::5 . fd01::5']);
    const aff = renderNftObjects(
      nodeState([
        {
          servicePort: 'ns/v6:p',
          address: 'fd00::1',
          port: 53,
          protocol: 'UDP',
          persistenceTimeout: 60,
          endpoints: ['fd01::5:5353'],
        },
      ]),
    );
    expect(chainWith(aff, 'endpoint-')[0]![1].at(-1)).toBe('meta l4proto udp dnat ip6 to [fd01::5]:5353');
  });

  it('renders the whole table deterministically, one table of our own', () => {
    const s = nodeState([{ servicePort: 'ns/a:p', address: '10.96.0.1', port: 80, endpoints: ['10.1.0.1:80'] }]);
    const text = renderNftRuleset(s);
    expect(text).toBe(renderNftRuleset(s));
    expect(text.match(/^table /gm)).toEqual(['table ']);
    expect(text.startsWith('table inet switchboard {')).toBe(true);
    expect(text).toContain('type nat hook prerouting priority dstnat; policy accept;');
  });
});

describe('nftObjectName', () => {
  // Tables made by earlier releases are adopted by name: the hash part must never change.
  it('keeps the names earlier releases gave (sha256 of the key, base64url, -/_ → x, 8 upper-case)', () => {
    expect(nftObjectName('service', 'IPv4|TCP|ns36/svc36:http|cluster', 'ns36/svc36/http/tcp')).toBe(
      'service-13FSULNS-ns36/svc36/http/tcp',
    );
    const key = 'IPv6|UDP|b/dns:udp|local';
    const hash = createHash('sha256').update(key).digest('base64url').replace(/[-_]/g, 'x').slice(0, 8);
    expect(nftObjectName('endpoints', key, 'b dns?')).toBe(`endpoints-${hash.toUpperCase()}-b_dns_`);
  });
});
