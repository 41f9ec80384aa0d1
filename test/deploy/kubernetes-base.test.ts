import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { registerCommands } from '../../services/cli/commands/index.ts';
import { generateAccountKeys } from '../../libs/nodecreds/index.ts';
import { renderInstallSecrets } from '../../libs/nodecreds/index.ts';
import { parseLabelSelector } from '../../libs/model/index.ts';

// Renders deploy/kubernetes/base with `kubectl kustomize` (as an operator would), validates every
// object against the Kubernetes OpenAPI schemas bundled in kubernetes-models (offline; types,
// required fields, enums), and asserts the security-relevant fields by path. The validator, like
// a non-strict API server, tolerates unknown fields, so every field this test relies on is read
// at its exact path: a misspelt field fails the assertion that reads it.

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string }; [k: string]: any };
type Container = {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: any[];
  securityContext?: any;
  resources?: any;
  volumeMounts?: any[];
  livenessProbe?: any;
  readinessProbe?: any;
  startupProbe?: any;
  restartPolicy?: string;
};

let objects: Obj[] = [];
const find = (kind: string, name: string): Obj => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in the rendered base`);
  return o;
};

beforeAll(() => {
  const text = execFileSync('kubectl', ['kustomize', 'deploy/kubernetes/base'], { encoding: 'utf8' });
  objects = parseAllDocuments(text).map((d) => d.toJS() as Obj);
});

/** The kubernetes-models module for an apiVersion: "v1" -> kubernetes-models/v1, "apps/v1" -> kubernetes-models/apps/v1. */
async function modelFor(o: Obj): Promise<new (x: unknown) => { validate(): void }> {
  const mod = (await import(`kubernetes-models/${o.apiVersion}`)) as Record<
    string,
    new (
      x: unknown,
    ) => { validate(): void }
  >;
  const cls = mod[o.kind];
  if (!cls) throw new Error(`kubernetes-models has no ${o.apiVersion} ${o.kind}`);
  return cls;
}

describe('deploy/kubernetes base', () => {
  it('renders, and every object is valid against the Kubernetes OpenAPI schema', async () => {
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ClusterRoleBinding',
      'ConfigMap',
      'DaemonSet',
      'Deployment',
      'Namespace',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'PodDisruptionBudget',
      'PodDisruptionBudget',
      'ResourceQuota',
      'Service',
      'Service',
      'Service',
      'ServiceAccount',
      'ServiceAccount',
      'ServiceAccount',
      'ServiceAccount',
      'StatefulSet',
      'StatefulSet',
    ]);
    for (const o of objects) {
      const Model = await modelFor(o);
      expect(() => new Model(o).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
      if (o.kind !== 'Namespace' && o.kind !== 'ClusterRole' && o.kind !== 'ClusterRoleBinding')
        expect(o.metadata.namespace, o.metadata.name).toBe('switchboard');
    }
  });

  // probe18: the monitoring port 8222 was open to every pod (/connz names every applier's connection).
  it("NATS's NetworkPolicy: clients on 4222 from anywhere, routes from NATS pods only, monitoring from no pod", () => {
    const np = find('NetworkPolicy', 'switchboard-nats-routes');
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    const rules = (np.spec.ingress as { from?: unknown[]; ports: { port: number }[] }[]).map((r) => ({
      from: r.from ?? 'anywhere',
      ports: r.ports.map((p) => p.port),
    }));
    expect(rules).toEqual([
      { from: 'anywhere', ports: [4222] },
      { from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'switchboard-nats' } } }], ports: [6222] },
    ]);
    // the probes the kubelet sends (from the pod's node, always let in) are what reach 8222
    const nats = find('StatefulSet', 'switchboard-nats').spec.template.spec.containers[0];
    expect([nats.readinessProbe?.httpGet?.port, nats.livenessProbe?.httpGet?.port]).toEqual(['monitor', 'monitor']);
  });

  it('the validator rejects a broken object (so the check above can fail)', async () => {
    const ds = structuredClone(find('DaemonSet', 'switchboard-applier'));
    ds.spec.template.spec.hostNetwork = 'yes';
    delete ds.spec.template.spec.containers[0].name;
    const Model = await modelFor(ds);
    expect(() => new Model(ds).validate()).toThrow(/hostNetwork must be boolean|must have required property 'name'/);
  });

  // probe18 D4: clusters that limit the system-* priority classes (ResourceQuota admission
  // limitedResources; GKE does) refuse such pods in a namespace without a quota naming the class:
  // the applier DaemonSet made no pod at all ("insufficient quota to match these scopes").
  it('every system-* priority class a pod asks for is admitted by a ResourceQuota of the namespace', () => {
    const quotas = objects.filter((o) => o.kind === 'ResourceQuota');
    const asked = objects
      .filter((o) => o.spec?.template?.spec?.priorityClassName?.startsWith('system-'))
      .map((o) => [o.metadata.name, o.spec.template.spec.priorityClassName as string] as const);
    expect(asked).toEqual([['switchboard-applier', 'system-node-critical']]);
    const nodes = 5000; // the largest cluster Kubernetes supports
    for (const [name, cls] of asked) {
      const q = quotas.find((x) =>
        (x.spec.scopeSelector?.matchExpressions ?? []).some(
          (m: { scopeName: string; operator: string; values: string[] }) =>
            m.scopeName === 'PriorityClass' && m.operator === 'In' && m.values.includes(cls),
        ),
      );
      expect(q, `${name}: a ResourceQuota scoped to PriorityClass ${cls}`).toBeDefined();
      expect(q!.metadata.namespace).toBe('switchboard');
      expect(Object.keys(q!.spec.hard)).toEqual(['pods']); // counts pods only: caps no cpu or memory
      expect(Number(q!.spec.hard.pods), name).toBeGreaterThanOrEqual(nodes);
    }
  });

  it('pods with a volume and an fsGroup chown it only when its root is not theirs yet (a large JetStream store is not re-chowned at every start: probe18 D9)', () => {
    const withFsGroup = objects.filter(
      (o) =>
        o.spec?.template?.spec?.securityContext?.fsGroup !== undefined &&
        (o.spec.volumeClaimTemplates ?? []).length > 0,
    );
    expect(withFsGroup.map((o) => o.metadata.name).sort()).toEqual(['switchboard-nats', 'switchboard-planner']);
    for (const o of withFsGroup)
      expect(o.spec.template.spec.securityContext.fsGroupChangePolicy, o.metadata.name).toBe('OnRootMismatch');
  });

  it('ships no key material: every Secret is made per install', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
  });

  it('RBAC: the planner may get/list/watch services, endpointslices and nodes, get the kube-system Namespace (the cluster identity), and nothing else; the issuer may get nodes', () => {
    const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    expect(roles.map((r) => r.metadata.name).sort()).toEqual(['switchboard-credential-issuer', 'switchboard-planner']);
    const grantsOf = (name: string) => {
      const grants = new Set<string>();
      for (const r of roles.find((x) => x.metadata.name === name)!.rules as {
        apiGroups: string[];
        resources: string[];
        verbs: string[];
        resourceNames?: string[];
        nonResourceURLs?: string[];
      }[]) {
        expect(r.nonResourceURLs).toBeUndefined();
        for (const g of r.apiGroups)
          for (const res of r.resources)
            for (const v of r.verbs)
              for (const name of r.resourceNames ?? ['*']) grants.add(`${g}/${res}/${name}:${v}`);
      }
      return [...grants].sort();
    };
    const want = [
      ...['/services/*', '/nodes/*', 'discovery.k8s.io/endpointslices/*'].flatMap((r) =>
        ['get', 'list', 'watch'].map((v) => `${r}:${v}`),
      ),
      '/namespaces/kube-system:get',
    ];
    expect(grantsOf('switchboard-planner')).toEqual(want.sort());
    // a node credential only for a Node that exists; the token keys (/openid/v1/jwks) need no role of ours
    expect(grantsOf('switchboard-credential-issuer')).toEqual(['/nodes/*:get']);
    const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding');
    expect(bindings.map((b) => [b.roleRef.name, b.subjects]).sort()).toEqual([
      [
        'switchboard-credential-issuer',
        [{ kind: 'ServiceAccount', name: 'switchboard-credential-issuer', namespace: 'switchboard' }],
      ],
      ['switchboard-planner', [{ kind: 'ServiceAccount', name: 'switchboard-planner', namespace: 'switchboard' }]],
    ]);
  });

  it('planner: 2+ replicas, a log volume claim per replica, probes, resources, signing key and NATS creds from Secrets', () => {
    const sts = find('StatefulSet', 'switchboard-planner');
    const pod = sts.spec.template.spec;
    expect(sts.spec.replicas).toBeGreaterThanOrEqual(2);
    // followers first, the leader last: the operator picks the order (docs/install.md "Upgrade")
    expect(sts.spec.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(pod.serviceAccountName).toBe('switchboard-planner');
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    const planner = container(pod, 'planner');
    const db = flag(planner, '--db');
    const logMount = mountHolding(planner, db);
    expect(sts.spec.volumeClaimTemplates.map((t: Obj) => t.metadata.name)).toContain(logMount.name);
    expect(planner.readinessProbe.httpGet.path).toBe('/readyz');
    // liveness must not fail on a NATS outage (/healthz does, by design): a restart cannot fix it
    expect(planner.livenessProbe.httpGet.path).toBe('/livez');
    expect(planner.startupProbe.httpGet.path).toBe('/livez');
    // --replicas: copies of every stream and bucket, one per NATS server (docs/ha.md)
    expect(flag(planner, '--replicas')).toBe(String(find('StatefulSet', 'switchboard-nats').spec.replicas));
    expect(flag(planner, '--id')).toBe('$(POD_NAME)');
    expect(envFrom(planner, 'POD_NAME')).toBe('metadata.name');
    for (const f of ['--signing-key', '--nats-creds', '--token-file'])
      expect(volume(pod, mountHolding(planner, flag(planner, f)).name).secret, f).toBeDefined();
    for (const c of pod.containers as Container[]) {
      expectHardened(c);
      expect(c.resources.requests.cpu, c.name).toBeDefined();
      expect(c.resources.requests.memory, c.name).toBeDefined();
      expect(c.resources.limits.memory, c.name).toBeDefined();
    }
    // the issuer is not in the planner's pod (probe18 D7: its readiness took the planner out of its Service)
    expect((pod.containers as Container[]).map((c) => c.name)).toEqual(['planner']);
    expect((pod.volumes as { secret?: { secretName: string } }[]).map((v) => v.secret?.secretName)).not.toContain(
      'switchboard-credential-issuer',
    );
  });

  it('credential issuer: its own Deployment, service account and PodDisruptionBudget; the account signing key only there', () => {
    const dep = find('Deployment', 'switchboard-credential-issuer');
    const pod = dep.spec.template.spec;
    expect(dep.spec.replicas).toBeGreaterThanOrEqual(2);
    expect(pod.serviceAccountName).toBe('switchboard-credential-issuer');
    // the Secret's 0400 files are readable by uid 10001 only through the fsGroup (kubelet adds group read)
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 10001, fsGroup: 10001 });
    const issuer = container(pod, 'credential-issuer');
    expectHardened(issuer);
    expect(issuer.readinessProbe.httpGet.path).toBe('/readyz');
    expect(issuer.livenessProbe.httpGet.path).toBe('/healthz');
    expect(volume(pod, mountHolding(issuer, flag(issuer, '--account-signing-key')).name).secret.secretName).toBe(
      'switchboard-credential-issuer',
    );
    expect(flag(issuer, '--service-account')).toBe('switchboard:switchboard-applier');
    const pdb = objects.find(
      (o) => o.kind === 'PodDisruptionBudget' && o.metadata.name === 'switchboard-credential-issuer',
    );
    expect(pdb?.spec).toEqual({
      maxUnavailable: 1,
      selector: { matchLabels: dep.spec.selector.matchLabels },
    });
    // no other workload mounts the account signing key's Secret
    for (const o of objects.filter((x) => ['StatefulSet', 'DaemonSet'].includes(x.kind)))
      expect(
        (o.spec.template.spec.volumes as { secret?: { secretName: string } }[]).map((v) => v.secret?.secretName),
        o.metadata.name,
      ).not.toContain('switchboard-credential-issuer');
  });

  it('applier: host network, NET_ADMIN+NET_RAW only, node name from the downward API, critical, tolerates everything', () => {
    const ds = find('DaemonSet', 'switchboard-applier');
    const pod = ds.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    // Linux nodes only (probe4 K8), and the planner's fleet is the same Nodes: a node the
    // DaemonSet skips runs no applier and must be in no rollout wave
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    const planner = container(find('StatefulSet', 'switchboard-planner').spec.template.spec, 'planner');
    const fleet = parseLabelSelector(flag(planner, '--node-selector'));
    expect(fleet.requirements).toEqual(
      Object.entries(pod.nodeSelector).map(([key, value]) => ({ op: '=', key, value })),
    );
    expect(ds.spec.updateStrategy.type).toBe('RollingUpdate');
    expect(ds.spec.updateStrategy.rollingUpdate.maxUnavailable).toBeDefined();
    // No surge: a surged pod's applier would find its node's lock held by the old one and exit,
    // never becoming available, and a surging rollout waits for it before it stops the old pod.
    expect(ds.spec.updateStrategy.rollingUpdate.maxSurge ?? 0).toBe(0);
    expect(pod.automountServiceAccountToken).toBe(false);
    const a = container(pod, 'applier');
    expect(a.securityContext.privileged).toBe(false);
    expect(a.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(a.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
    expect(flag(a, '--node')).toBe('$(NODE_NAME)');
    expect(envFrom(a, 'NODE_NAME')).toBe('spec.nodeName');
    const mods = a.volumeMounts!.find((m) => m.mountPath === '/lib/modules');
    expect(mods?.readOnly).toBe(true);
    expect(volume(pod, mods!.name).hostPath.path).toBe('/lib/modules');
    const lock = a.volumeMounts!.find((m) => m.mountPath === '/run/xtables.lock');
    expect(volume(pod, lock!.name).hostPath).toEqual({ path: '/run/xtables.lock', type: 'FileOrCreate' });
    expect(volume(pod, mountHolding(a, flag(a, '--planner-key')).name).secret).toBeDefined();
    // ready = on target and following it; live = can still follow without a restart (test/deploy/applier-probes.test.ts)
    expect(a.readinessProbe.httpGet.path).toBe('/readyz');
    expect(a.livenessProbe.httpGet.path).toBe('/livez');
    expect(a.resources.requests.memory).toBeDefined();
    expect(a.resources.limits.memory).toBeDefined();
    // the only privileged step is the sysctl init container, which runs a fixed script and exits
    const privileged = [...pod.initContainers, ...pod.containers]
      .filter((c: Container) => c.securityContext?.privileged === true)
      .map((c: Container) => c.name);
    expect(privileged).toEqual(['node-sysctls']);
    // the image's user is 10001: root is asked for explicitly where the kernel needs it
    expect(container(pod, 'node-sysctls', true).securityContext.runAsUser).toBe(0);
    expect(a.securityContext.runAsUser).toBe(0);
    expect(container(pod, 'node-sysctls', true).restartPolicy).toBeUndefined();
    const creds = container(pod, 'node-credentials', true);
    expectHardened(creds);
    expect(flag(creds, '--node')).toBe('$(NODE_NAME)');
    expect(envFrom(creds, 'NODE_NAME')).toBe('spec.nodeName');
    // the token it proves its node with is bound to the issuer's audience, not the API server's
    const tokenVol = volume(pod, mountHolding(creds, flag(creds, '--token-file')).name);
    expect(tokenVol.projected.sources[0].serviceAccountToken.audience).toBe('switchboard-credentials');
    // the applier reads the credential the sidecar writes
    expect(mountHolding(a, flag(a, '--creds')).name).toBe(mountHolding(creds, flag(creds, '--out')).name);
    for (const c of JSON.stringify(pod).match(/SYS_[A-Z_]+/g) ?? []) throw new Error(`unexpected capability ${c}`);
  });

  // probe18 D6: with hostNetwork, "0.0.0.0" put the applier's /healthz and /metrics and the
  // sidecar's health on every address of the node, public interfaces included. They listen on the
  // node's own addresses from the downward API (status.hostIPs: both families on a dual-stack
  // node), where the kubelet probes a hostNetwork pod (its pod IP, the node's first address, with
  // no probe `host` set). test/deploy/base-args-run.test.ts runs them with such a list.
  it("applier and credentials sidecar listen on the node's addresses from the downward API, where the kubelet probes them", () => {
    const pod = find('DaemonSet', 'switchboard-applier').spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    for (const c of [container(pod, 'applier'), container(pod, 'node-credentials', true)]) {
      const m = /^\[\$\(([A-Z_]+)\)\]:(\d+)$/.exec(flag(c, '--http'));
      expect(m, `${c.name} --http ${flag(c, '--http')}`).not.toBeNull();
      expect(envFrom(c, m![1]!), c.name).toBe('status.hostIPs');
      const probes = [c.startupProbe, c.readinessProbe, c.livenessProbe].filter(Boolean);
      expect(probes.length, c.name).toBeGreaterThan(0);
      for (const p of probes) {
        expect(p.httpGet.port, c.name).toBe(Number(m![2]));
        expect(p.httpGet.host, c.name).toBeUndefined(); // the pod IP: the node's first address
      }
    }
  });

  it('nats: 3 JetStream servers behind a headless Service, routes to each of them, operator auth', () => {
    const sts = find('StatefulSet', 'switchboard-nats');
    expect(sts.spec.replicas).toBe(3);
    const svc = find('Service', sts.spec.serviceName);
    expect(svc.spec.clusterIP).toBe('None');
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('switchboard-nats-config-'))!;
    const conf = cm.data['nats.conf'] as string;
    expect(conf).toMatch(/jetstream \{[^}]*store_dir: \/data/);
    const routes = [...conf.matchAll(/"nats:\/\/([^"]+):6222"/g)].map((m) => m[1]);
    expect(routes).toEqual([0, 1, 2].map((i) => `${sts.metadata.name}-${i}.${svc.metadata.name}.switchboard.svc`));
    expect(conf).toContain('include ./auth/resolver.conf');
    expect(conf).not.toMatch(/authorization\s*\{/); // no shared passwords: per-user JWTs only
    const pod = sts.spec.template.spec;
    const nats = container(pod, 'nats');
    expect(nats.volumeMounts!.find((m) => m.mountPath === '/data')!.name).toBe(
      sts.spec.volumeClaimTemplates[0].metadata.name,
    );
    expect(volume(pod, nats.volumeMounts!.find((m) => m.mountPath === '/etc/nats/auth')!.name).secret.secretName).toBe(
      'switchboard-nats-resolver',
    );
    expectHardened(nats);
    // every client points at the three servers by their headless names (no ClusterIP in the way)
    for (const o of objects.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(x.kind))) {
      for (const c of [
        ...(o.spec.template.spec.initContainers ?? []),
        ...o.spec.template.spec.containers,
      ] as Container[]) {
        if (!c.args?.includes('--nats')) continue;
        expect(flag(c, '--nats').split(','), `${o.metadata.name}/${c.name}`).toEqual(
          routes.map((r) => `nats://${r}:4222`),
        );
      }
    }
  });

  it('`credentials init` makes every Secret the base mounts, with every file its flags name', async () => {
    const secrets = parseAllDocuments(
      await renderInstallSecrets({ namespace: 'switchboard', keys: generateAccountKeys() }),
    ).map((d) => d.toJS() as Obj);
    for (const s of secrets) {
      const Model = await modelFor(s);
      expect(() => new Model(s).validate(), s.metadata.name).not.toThrow();
    }
    const byName = new Map(secrets.map((s) => [s.metadata.name, s.stringData as Record<string, string>]));
    let files = 0;
    for (const o of objects.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(x.kind))) {
      const pod = o.spec.template.spec;
      for (const c of [...(pod.initContainers ?? []), ...pod.containers] as Container[]) {
        for (const m of c.volumeMounts ?? []) {
          const v = (pod.volumes as { name: string; secret?: { secretName: string } }[]).find((x) => x.name === m.name); // claim templates are not in volumes
          if (!v?.secret) continue;
          const data = byName.get(v.secret.secretName);
          expect(data, `${c.name}: Secret ${v.secret.secretName}`).toBeDefined();
          // every flag value that points into this mount names a key of the Secret
          for (const a of (c.args ?? []).filter((x) => x.startsWith(m.mountPath + '/'))) {
            expect(Object.keys(data!), `${c.name}: ${a}`).toContain(a.slice(m.mountPath.length + 1));
            files++;
          }
        }
      }
    }
    expect(files).toBe(8); // planner 3, issuer 3, node-credentials 1, applier 1
    expect(byName.get('switchboard-planner')!['api-tokens']).toMatch(/^\S+ admin operator\n$/);
    expect(byName.get('switchboard-applier')!['planner.key.pub']).toBe(
      byName.get('switchboard-signing-key')!['planner.key.pub'],
    );
  });

  it('nats-server 2.9 accepts the NATS config with the resolver `credentials init` makes (nats-server -t)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sb-k8s-nats-'));
    try {
      const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('switchboard-nats-config-'))!;
      const secrets = parseAllDocuments(
        await renderInstallSecrets({ namespace: 'switchboard', keys: generateAccountKeys() }),
      ).map((d) => d.toJS() as Obj);
      mkdirSync(path.join(dir, 'auth'));
      writeFileSync(path.join(dir, 'nats.conf'), cm.data['nats.conf']);
      writeFileSync(
        path.join(dir, 'auth', 'resolver.conf'),
        secrets.find((s) => s.metadata.name === 'switchboard-nats-resolver')!.stringData['resolver.conf'],
      );
      const out = execFileSync(process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server', ['-t', '-c', 'nats.conf'], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, POD_NAME: 'switchboard-nats-0' },
        stdio: 'pipe',
      });
      expect(out + '').toBeDefined();
      // and a broken include is reported, so the check above can fail
      writeFileSync(path.join(dir, 'auth', 'resolver.conf'), 'operator: "not-a-jwt"\n');
      expect(() =>
        execFileSync(process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server', ['-t', '-c', 'nats.conf'], {
          cwd: dir,
          env: { ...process.env, POD_NAME: 'x' },
          stdio: 'pipe',
        }),
      ).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs only CLI commands and options that exist', async () => {
    const program = new Command();
    await registerCommands(program, () => undefined);
    let checked = 0;
    for (const o of objects.filter((x) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(x.kind))) {
      for (const c of [
        ...(o.spec.template.spec.initContainers ?? []),
        ...o.spec.template.spec.containers,
      ] as Container[]) {
        if (c.image !== 'switchboard:0.1.0' || c.command) continue;
        const words = [...c.args!];
        let cmd: Command | undefined = program;
        while (cmd && words.length && !words[0]!.startsWith('--')) {
          const w = words.shift();
          cmd = cmd.commands.find((s) => s.name() === w);
        }
        expect(cmd, `${o.metadata.name}/${c.name}: ${c.args!.join(' ')}`).toBeDefined();
        const known = new Set(cmd!.options.map((x) => x.long));
        for (const w of words.filter((x) => x.startsWith('--')))
          expect(known.has(w), `${o.metadata.name}/${c.name}: ${cmd!.name()} ${w}`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBe(4); // planner, credential-issuer, node-credentials, applier
  });
});

function container(pod: any, name: string, init = false): Container {
  const c = (init ? pod.initContainers : pod.containers).find((x: Container) => x.name === name);
  if (!c) throw new Error(`no container ${name}`);
  return c;
}
function flag(c: Container, f: string): string {
  const i = c.args!.indexOf(f);
  if (i < 0) throw new Error(`${c.name} has no ${f}`);
  return c.args![i + 1]!;
}
function envFrom(c: Container, name: string): string | undefined {
  return c.env?.find((e) => e.name === name)?.valueFrom?.fieldRef?.fieldPath;
}
function mountHolding(c: Container, file: string): { name: string; mountPath: string; readOnly?: boolean } {
  const m = c
    .volumeMounts!.filter((x) => file.startsWith(x.mountPath + '/'))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!m) throw new Error(`${c.name}: nothing mounted holds ${file}`);
  return m;
}
function volume(pod: any, name: string): any {
  const v = pod.volumes.find((x: { name: string }) => x.name === name);
  if (!v) throw new Error(`no volume ${name}`);
  return v;
}
function expectHardened(c: Container): void {
  expect(c.securityContext.allowPrivilegeEscalation, c.name).toBe(false);
  expect(c.securityContext.readOnlyRootFilesystem, c.name).toBe(true);
  expect(c.securityContext.capabilities.drop, c.name).toEqual(['ALL']);
  expect(c.securityContext.capabilities.add, c.name).toBeUndefined();
}
