// probe10 H5/H6: Service fields the API server refuses, caught where Switchboard reads manifests.
// `switchboard plan` over a manifests directory (the same readers and renderer as the planner):
// the offending Service is rejected with one line naming it and the field; the others stay.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODES, service, slice } from '../../support/plan-fixture.ts';
import { sbIn } from './cli-support.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sb-plan-validation-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(path.join(dir, 'nodes.yaml'), NODES);
writeFileSync(
  path.join(dir, 'web.yaml'),
  service('web', 'clusterIP: 10.96.0.1\n  externalIPs: [198.51.100.7]\n  ports: [{name: http, port: 80}]') +
    slice('web', '[{name: http, port: 8080}]', ['{addresses: [10.244.1.2], nodeName: node-a}']),
);

describe('switchboard plan refuses what the API server refuses in a Service', () => {
  it('an externalIP the node itself answers on (127.0.0.1, 0.0.0.0, broadcast) rejects the Service (H5)', async () => {
    writeFileSync(
      path.join(dir, 'extip.yaml'),
      service(
        'extip-bad',
        'clusterIP: 10.96.9.9\n  externalIPs: ["198.51.100.8", "127.0.0.1", "0.0.0.0", "255.255.255.255"]\n  ports: [{name: http, port: 80}]',
      ),
    );
    const r = await sbIn(['plan', '--manifests', dir, '--node', 'node-a', '--format', 'ipvsadm']);
    expect(r.code).toBe(0);
    for (const bad of ['127.0.0.1', '0.0.0.0', '255.255.255.255', '10.96.9.9'])
      expect(r.stdout).not.toContain(`${bad}:80`);
    expect(r.stdout).toContain('-A -t 198.51.100.7:80'); // the other Service's externalIP stays
    expect(r.stderr).toMatch(
      /^rejected Service default\/extip-bad \(extip\.yaml\): spec\.externalIPs\[1\] 127\.0\.0\.1 is loopback$/m,
    );
  });

  it('a NodePort another Service holds, and a Service with two ports of one port/protocol, are said (H6)', async () => {
    writeFileSync(
      path.join(dir, 'h6.yaml'),
      service('np', 'type: NodePort\n  clusterIP: 10.96.0.30\n  ports: [{name: http, port: 80, nodePort: 31000}]') +
        service('np2', 'type: NodePort\n  clusterIP: 10.96.0.31\n  ports: [{name: http, port: 80, nodePort: 31000}]') +
        service('dupport', 'clusterIP: 10.96.0.32\n  ports: [{name: a, port: 80}, {name: b, port: 80, protocol: TCP}]'),
    );
    const r = await sbIn(['plan', '--manifests', dir, '--node', 'node-a', '--format', 'ipvsadm']);
    expect(r.code).toBe(0);
    // the service-port order the renderer keeps ("default/np2:http" < "default/np:http": '2' < ':')
    expect(r.stderr).toMatch(
      /^rejected Service default\/np \(VIP claims\): node-port claim on TCP\/:31000 \(port http\) lost to default\/np2:http$/m,
    );
    expect(r.stderr).toMatch(
      /^rejected Service default\/dupport \(h6\.yaml\): spec\.ports\[1\] duplicates port 80\/TCP of spec\.ports\[0\]$/m,
    );
    expect(r.stdout).not.toContain('10.96.0.32:80');
  });
});
