import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { registerCommands } from '../../services/cli/commands/index.ts';

// The one-off cleanup pod docs/install.md ("Uninstall") tells an operator to run on each node, read
// from the doc as written and checked against the image and the applier DaemonSet it cleans up
// after. probe18 D3: it added NET_ADMIN/NET_RAW but ran as the image's user (uid 10001), and a
// non-root container gets no effective capabilities from `capabilities.add`: cleanup failed with
// `nft ... Operation not permitted (you must be root)` (reproduced with `unshare -n setpriv
// --reuid=10001 switchboard cleanup --mode all`), and the root-owned records stayed.

const doc = readFileSync('docs/install.md', 'utf8');

function cleanupPod(): { args: string[]; image: string; pod: any } {
  const m = /kubectl -n switchboard run cleanup-NODE [^\n]*--image=(\S+) \\\n\s*--overrides='([^']+)'/.exec(doc);
  if (!m)
    throw new Error('docs/install.md has no `kubectl -n switchboard run cleanup-NODE ... --overrides=...` command');
  const pod = JSON.parse(m[2]!.replace(/\n\s*/g, ''));
  return { image: m[1]!, pod, args: pod.spec.containers[0].args };
}

describe('docs/install.md uninstall: the cleanup pod', () => {
  it('is a valid Pod whose container runs as root with the applier capabilities (the image user is not root)', async () => {
    const { pod } = cleanupPod();
    const { Pod } = await import('kubernetes-models/v1');
    expect(() =>
      new Pod({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'cleanup-node' }, ...pod }).validate(),
    ).not.toThrow();
    const user = /^USER (\d+)/m.exec(readFileSync('Dockerfile', 'utf8'))?.[1];
    expect(user, 'the image runs as a non-root user').not.toBe('0');
    const c = pod.spec.containers[0];
    // capabilities.add is effective only for root in the container (no ambient capabilities)
    expect(c.securityContext.runAsUser).toBe(0);
    expect(c.securityContext.capabilities.add).toEqual(['NET_ADMIN', 'NET_RAW']);
    expect(pod.spec.hostNetwork).toBe(true);
  });

  it("names the base's image, the applier's state dir and xtables lock, and a command and options that exist", async () => {
    const { image, pod, args } = cleanupPod();
    const objects = parseAllDocuments(
      execFileSync('kubectl', ['kustomize', 'deploy/kubernetes/base'], { encoding: 'utf8' }),
    ).map((d) => d.toJS());
    const ds = objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'switchboard-applier');
    const applier = ds.spec.template.spec.containers.find((c: { name: string }) => c.name === 'applier');
    expect(image).toBe(applier.image);
    expect(pod.spec.containers[0].image).toBe(applier.image);
    const hostPathOf = (spec: any, c: any, mountPath: string) => {
      const m = c.volumeMounts.find((x: { mountPath: string }) => x.mountPath === mountPath);
      return spec.volumes.find((v: { name: string }) => v.name === m.name).hostPath.path;
    };
    const stateDir = args[args.indexOf('--state-dir') + 1]!;
    expect(stateDir).toBe(applier.args[applier.args.indexOf('--state-dir') + 1]);
    expect(hostPathOf(pod.spec, pod.spec.containers[0], stateDir)).toBe(
      hostPathOf(ds.spec.template.spec, applier, stateDir),
    );
    expect(hostPathOf(pod.spec, pod.spec.containers[0], '/run/xtables.lock')).toBe('/run/xtables.lock');
    const program = new Command();
    await registerCommands(program, () => undefined);
    const cleanup = program.commands.find((c) => c.name() === args[0]);
    expect(cleanup).toBeDefined();
    for (const w of args.filter((x) => x.startsWith('--')))
      expect(
        cleanup!.options.map((o) => o.long),
        w,
      ).toContain(w);
    const mode = cleanup!.options.find((o) => o.long === '--mode')!;
    expect(mode.argChoices).toContain(args[args.indexOf('--mode') + 1]);
  });
});
