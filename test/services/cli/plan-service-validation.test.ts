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
});
