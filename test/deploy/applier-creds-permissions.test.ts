// review5 F1: on the Kubernetes base the applier (root, but with only NET_ADMIN and NET_RAW) must
// read the node.creds its node-credentials sidecar (another uid) writes, and the sidecar must read
// its projected token. Permissions are the kernel's: this test takes the users, capabilities and
// fsGroup from deploy/kubernetes/base/applier.yaml, lays out the emptyDir as the kubelet does for
// an fsGroup (group-owned, setgid), writes the file with the sidecar's real code as its uid, and
// reads it as the applier's uid with only its capabilities (setpriv) — once with the pod's fsGroup
// (must work) and once without (must fail: what makes the fsGroup necessary).
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { parse } from 'yaml';

const asRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const dir = mkdtempSync(path.join(tmpdir(), 'sb-creds-perm-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Container = { name: string; securityContext?: { runAsUser?: number; capabilities?: { add?: string[] } } };

// setuid/setgid and dropping capabilities need root; without it there is nothing to emulate
it.skipIf(!asRoot || !hasSetpriv)(
  'the applier reads the node.creds the sidecar writes through the pod fsGroup, and only through it',
  () => {
    const ds = parse(readFileSync('deploy/kubernetes/base/applier.yaml', 'utf8')) as {
      spec: {
        template: {
          spec: { securityContext?: { fsGroup?: number }; initContainers: Container[]; containers: Container[] };
        };
      };
    };
    const pod = ds.spec.template.spec;
    const fsGroup = pod.securityContext?.fsGroup;
    expect(fsGroup, 'the applier pod sets an fsGroup').toBeTypeOf('number');
    const sidecar = [...pod.initContainers, ...pod.containers].find((c) => c.name === 'node-credentials')!;
    const applier = pod.containers.find((c) => c.name === 'applier')!;
    const writerUid = sidecar.securityContext!.runAsUser!;
    const readerUid = applier.securityContext!.runAsUser!;
    const readerCaps = applier.securityContext!.capabilities!.add!.map((c) => `+${c.toLowerCase()}`);
    expect(writerUid).not.toBe(readerUid);

    // the emptyDir as the kubelet leaves it for an fsGroup: group-owned and setgid
    const volume = path.join(dir, 'creds');
    execFileSync('mkdir', ['-m', '2777', volume]);
    chownSync(volume, 0, fsGroup!);
    chmodSync(dir, 0o755);
    const out = path.join(volume, 'node.creds');
    const writer = spawnSync(
      'setpriv',
      [
        `--reuid=${writerUid}`,
        `--regid=${writerUid}`,
        `--groups=${fsGroup}`,
        process.execPath,
        '--import',
        'tsx',
        '-e',
        `import('./libs/nodecreds/fetcher.ts').then((m) => m.writeCredsFile(${JSON.stringify(out)}, 'a node credential\\n'))`,
      ],
      { encoding: 'utf8', env: { ...process.env, HOME: dir, TSX_TSCONFIG_PATH: 'tsconfig.json' } },
    );
    expect(writer.stderr).toBe('');
    expect(writer.status).toBe(0);
    expect(statSync(out).uid).toBe(writerUid);
    expect(statSync(out).gid).toBe(fsGroup);

    const read = (groups: string[]) =>
      spawnSync(
        'setpriv',
        [
          `--reuid=${readerUid}`,
          `--regid=${readerUid}`,
          ...groups,
          '--inh-caps=-all',
          '--ambient-caps=-all',
          `--bounding-set=-all,${readerCaps.join(',')}`,
          'cat',
          out,
        ],
        { encoding: 'utf8' },
      );
    const withFsGroup = read([`--groups=${fsGroup}`]);
    expect(withFsGroup.stderr).toBe('');
    expect(withFsGroup.stdout).toBe('a node credential\n');
    const without = read(['--clear-groups']);
    expect(without.status).not.toBe(0);
    expect(without.stderr).toMatch(/Permission denied/);
  },
);
