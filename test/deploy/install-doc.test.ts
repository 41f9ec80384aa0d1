import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { registerCommands } from '../../services/cli/commands/index.ts';
import { parseLabelSelector } from '../../libs/model/index.ts';

// The one-off cleanup pod docs/install.md ("Uninstall") tells an operator to run on each node, read
// from the doc as written and checked against the image and the applier DaemonSet it cleans up
// after. probe18 D3: it added NET_ADMIN/NET_RAW but ran as the image's user (uid 10001), and a
// non-root container gets no effective capabilities from `capabilities.add`: cleanup failed with
// `nft ... Operation not permitted (you must be root)` (reproduced with `unshare -n setpriv
// --reuid=10001 switchboard cleanup --mode all`), and the root-owned records stayed.

const doc = readFileSync('docs/install.md', 'utf8');

/** The objects `kubectl kustomize DIR` renders. */
const kustomize = (dir: string): any[] =>
  parseAllDocuments(execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })).map((x) => x.toJS());

/** The objects an overlay (a doc's kustomization.yaml lines) renders over deploy/kubernetes/base. */
function overBase(overlay: string): any[] {
  const dir = mkdtempSync(path.join(tmpdir(), 'sb-overlay-'));
  try {
    writeFileSync(
      path.join(dir, 'kustomization.yaml'),
      `resources: [${JSON.stringify(path.relative(dir, path.resolve('deploy/kubernetes/base')))}]\n${overlay}`,
    );
    return kustomize(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

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
    const objects = kustomize('deploy/kubernetes/base');
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

// probe18 D8: docs/migrate-from-kube-proxy.md's overlay limited the applier DaemonSet to migrated
// nodes by replacing its whole nodeSelector (the base's kubernetes.io/os: linux went) and left the
// planner's --node-selector alone: every node still on kube-proxy stayed in the planner's fleet
// without an applier, so every rollout halted at its wave timeout and `ctl wait` never finished
// for the whole migration (install.md "Which nodes": change both together).
describe('docs/migrate-from-kube-proxy.md: the migration overlay', () => {
  it("keeps the base's nodeSelector, adds the migrated-node label, and gives the planner the same nodes", () => {
    const m = /# overlay kustomization\.yaml\n((?: {6}.*\n|\n)+)/.exec(
      readFileSync('docs/migrate-from-kube-proxy.md', 'utf8'),
    );
    expect(m, 'the overlay block in docs/migrate-from-kube-proxy.md').not.toBeNull();
    const base = kustomize('deploy/kubernetes/base');
    const objects = overBase(m![1]!.replace(/^ {6}/gm, ''));
    const ds = (os: any[]) =>
      os.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'switchboard-applier').spec.template.spec;
    const plannerArgs = (os: any[]) =>
      os
        .find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'switchboard-planner')
        .spec.template.spec.containers.find((c: { name: string }) => c.name === 'planner').args as string[];
    const nodeSelector = ds(objects).nodeSelector as Record<string, string>;
    expect(nodeSelector).toMatchObject(ds(base).nodeSelector); // Linux nodes only, still
    expect(nodeSelector['switchboard.io/proxy']).toBe('switchboard');
    expect(ds(objects).containers[0].args).toContain('--take-over-kube-proxy');
    const args = plannerArgs(objects);
    expect(args.length).toBe(plannerArgs(base).length);
    const fleet = parseLabelSelector(args[args.indexOf('--node-selector') + 1]!);
    expect(fleet.requirements).toEqual(Object.entries(nodeSelector).map(([key, value]) => ({ op: '=', key, value })));
  });
});

// docs/install.md "Memory": the limits it names are the base's, and its overlay raises exactly the
// planner's and the applier's own containers, nothing else.
describe('docs/install.md memory: the base limits it names and its overlay for a larger cluster', () => {
  it("names the base's limits, and its overlay renders with kustomize, raising the planner's and applier's containers alone", () => {
    const doc = readFileSync('docs/install.md', 'utf8');
    const section = /### Memory\n([\s\S]*?)\n## /.exec(doc)![1]!;
    const m = /# overlay kustomization\.yaml: memory for a larger cluster\n((?: {4}.*\n)+)/.exec(section);
    expect(m, 'the overlay block in docs/install.md "Memory"').not.toBeNull();
    const pods = (os: any[]) => ({
      planner: os.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'switchboard-planner').spec.template.spec,
      applier: os.find((o) => o.kind === 'DaemonSet' && o.metadata.name === 'switchboard-applier').spec.template.spec,
    });
    const base = pods(kustomize('deploy/kubernetes/base'));
    const raised = pods(overBase(m![1]!.replace(/^ {4}/gm, '')));
    const own = (spec: any, name: string) => spec.containers.find((c: { name: string }) => c.name === name).resources;
    // the doc's figures start from the base's limits
    expect(section).toContain(
      `planner a ${own(base.planner, 'planner').limits.memory.replace('Gi', ' GiB')} memory limit`,
    );
    expect(section).toContain(`each applier ${own(base.applier, 'applier').limits.memory.replace('Mi', ' MiB')}`);
    expect(own(raised.planner, 'planner').limits.memory).toBe('4Gi');
    expect(own(raised.planner, 'planner').requests.memory).toBe('2Gi');
    expect(own(raised.applier, 'applier').limits.memory).toBe('2Gi');
    expect(own(raised.applier, 'applier').requests.memory).toBe('512Mi');
    // everything else as the base has it: the applier's init and sidecar containers, CPU
    const strip = (spec: any, name: string) => ({
      ...spec,
      containers: spec.containers.map((c: any) => (c.name === name ? { ...c, resources: undefined } : c)),
    });
    expect(strip(raised.planner, 'planner')).toEqual(strip(base.planner, 'planner'));
    expect(strip(raised.applier, 'applier')).toEqual(strip(base.applier, 'applier'));
    expect(own(raised.planner, 'planner').requests.cpu).toBe(own(base.planner, 'planner').requests.cpu);
  });
});
