import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { parseAllDocuments } from 'yaml';
import {
  generateAccountKeys,
  renderInstallSecrets,
  renderResolverConfig,
  serverResolver,
} from '../../libs/nodecreds/index.ts';
import { BIN, freePort } from '../faults/fleet.ts';
import { KubeApiServer } from '../support/kube-api-server/index.ts';
import { writeKubeconfig, type WrittenKubeconfig } from '../support/kubeconfig.ts';
import { startNatsCluster, type NatsClusterHandle } from '../support/nats-cluster.ts';

// The planner and issuer containers of deploy/kubernetes/base run with the args the rendered base
// gives them, word for word except what only a cluster provides: the files come from the Secrets
// `credentials init` makes, mounted at their mount paths under a temp root; `--in-cluster` becomes
// `--kubeconfig` to a fake API server; the NATS URLs name a real 3-server nats-server cluster in
// operator mode with the resolver `credentials init` makes; listen addresses move to loopback.
// The planner must become ready (its `--replicas 3` streams made in that account), the issuer too,
// and an applier pod's sidecar and applier must take node-a's credential and its target.

let nats: NatsClusterHandle | undefined;
let kube: KubeApiServer | undefined;
let kubeconfig: WrittenKubeconfig | undefined;
let root: string | undefined;
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  }
  await nats?.stop();
  await kube?.stop();
  await kubeconfig?.cleanup();
  if (root) rmSync(root, { recursive: true, force: true });
});

it('planner, issuer, credentials sidecar and applier run with the base args: the node gets its credential and its target', async () => {
  const objects = parseAllDocuments(
    execFileSync('kubectl', ['kustomize', 'deploy/kubernetes/base'], { encoding: 'utf8' }),
  ).map((d) => d.toJS());
  const keys = generateAccountKeys();
  const secrets = new Map<string, Record<string, string>>(
    parseAllDocuments(await renderInstallSecrets({ namespace: 'switchboard', keys }))
      .map((d) => d.toJS())
      .map((s) => [s.metadata.name, s.stringData]),
  );
  nats = await startNatsCluster({ config: renderResolverConfig(await serverResolver(keys)), waitReady: false });
  kube = await KubeApiServer.start();
  kube.create('Node', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'node-a', labels: { 'kubernetes.io/os': 'linux' } },
  });
  kubeconfig = await writeKubeconfig({ server: kube.url });
  root = mkdtempSync(path.join(tmpdir(), 'sb-base-args-'));

  const api = await generateKeyPair('RS256');
  const jwks = { keys: [{ ...(await exportJWK(api.publicKey)), kid: 'api-1', alg: 'RS256', use: 'sig' }] };
  const podOf = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name).spec.template.spec;
  const ports = new Map<string, number>();
  /** Runs a container of `pod` with its base args; `files` adds what the kubelet would mount. */
  const runContainer = async (
    pod: any,
    name: string,
    env: Record<string, string>,
    o: { extraArgs?: string[]; files?: Record<string, string>; mode?: string } = {},
  ) => {
    const c = [...(pod.initContainers ?? []), ...pod.containers].find((x: { name: string }) => x.name === name);
    // every mount under the temp root; Secrets written out with the files `credentials init` made
    for (const m of c.volumeMounts as { name: string; mountPath: string }[]) {
      const dir = path.join(root!, m.mountPath);
      mkdirSync(dir, { recursive: true });
      const v = pod.volumes.find((x: { name: string }) => x.name === m.name);
      for (const [f, text] of Object.entries(v?.secret ? secrets.get(v.secret.secretName)! : {}))
        writeFileSync(path.join(dir, f), text, { mode: 0o440 });
    }
    for (const [f, text] of Object.entries(o.files ?? {})) writeFileSync(path.join(root!, f), text, { mode: 0o440 });
    const args: string[] = [];
    for (const a of c.args as string[]) {
      const w = a.replace(/\$\(([A-Z_]+)\)/g, (_, n: string) => env[n] ?? `$(${n})`);
      if (w === '--in-cluster') args.push('--kubeconfig', kubeconfig!.path);
      else if (w.startsWith('nats://')) args.push(nats!.urls);
      else if (/^0\.0\.0\.0:\d+$/.test(w)) {
        const p = await freePort();
        if (args.at(-1) === '--http') ports.set(name, p);
        args.push(`127.0.0.1:${p}`);
      } else if (/^\[[^\]]+\]:\d+$/.test(w)) {
        // the node's addresses from the downward API (HOST_IPS below), on a free port
        const p = await freePort();
        if (args.at(-1) === '--http') ports.set(name, p);
        args.push(w.replace(/:\d+$/, `:${p}`));
      } else if (args.at(-1) === '--mode' && o.mode) args.push(o.mode);
      else if (w.startsWith('/')) args.push(path.join(root!, w));
      else args.push(w); // --advertise-url's http://... is only named, never dialled here
    }
    args.push(...(o.extraArgs ?? []));
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (t: string) => (err = (err + t).slice(-4000)));
    return { child, err: () => err };
  };
  const ready = (name: string) =>
    fetch(`http://127.0.0.1:${ports.get(name)}/readyz`)
      .then((r) => r.status)
      .catch(() => 0);

  const plannerPod = podOf('StatefulSet', 'switchboard-planner');
  const podName = { POD_NAME: 'switchboard-planner-0' };
  const planner = await runContainer(plannerPod, 'planner', podName);
  // the fake API server serves no /openid/v1/jwks: the keys its tokens are signed with, as a file
  const issuer = await runContainer(
    podOf('Deployment', 'switchboard-credential-issuer'),
    'credential-issuer',
    {},
    {
      extraArgs: ['--jwks-file', path.join(root, 'jwks.json')],
      files: { 'jwks.json': JSON.stringify(jwks) },
    },
  );
  await expect.poll(() => ready('planner'), { timeout: 45_000, interval: 500 }).toBe(200);
  expect(planner.child.exitCode, planner.err()).toBeNull();
  await expect.poll(() => ready('credential-issuer'), { timeout: 15_000, interval: 500 }).toBe(200);
  expect(issuer.child.exitCode, issuer.err()).toBeNull();

  // the applier pod of node-a: the sidecar trades its projected token for node-a's credential
  // (the kubelet starts the applier once the sidecar's startup probe passes), then the applier
  // follows its target with it (dry-run: this host's kernel is not the test's to program)
  const applierPod = podOf('DaemonSet', 'switchboard-applier');
  const tokenMount = applierPod.initContainers
    .find((c: { name: string }) => c.name === 'node-credentials')
    .volumeMounts.find((m: { name: string }) => m.name === 'node-token').mountPath;
  mkdirSync(path.join(root, tokenMount), { recursive: true });
  const token = await new SignJWT({
    'kubernetes.io': {
      namespace: 'switchboard',
      serviceaccount: { name: 'switchboard-applier', uid: 'u1' },
      pod: { name: 'switchboard-applier-x1', uid: 'p1' },
      node: { name: 'node-a', uid: 'n1' },
    },
  })
    .setProtectedHeader({ alg: 'RS256', kid: 'api-1' })
    .setIssuer('https://kubernetes.default.svc')
    .setSubject('system:serviceaccount:switchboard:switchboard-applier')
    .setAudience(
      applierPod.volumes.find((v: { name: string }) => v.name === 'node-token').projected.sources[0].serviceAccountToken
        .audience,
    )
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 600)
    .sign(api.privateKey);
  // a dual-stack node's status.hostIPs (loopback here): the sidecar and the applier listen on both
  const node = { NODE_NAME: 'node-a', HOST_IPS: '127.0.0.1,::1' };
  const sidecar = await runContainer(applierPod, 'node-credentials', node, {
    files: { [path.join(tokenMount, 'token')]: token },
  });
  await expect.poll(() => ready('node-credentials'), { timeout: 30_000, interval: 500 }).toBe(200);
  expect(sidecar.child.exitCode, sidecar.err()).toBeNull();
  const applier = await runContainer(applierPod, 'applier', node, { mode: 'dry-run' });
  await expect.poll(() => ready('applier'), { timeout: 30_000, interval: 500 }).toBe(200);
  expect(applier.child.exitCode, applier.err()).toBeNull();
  // on each of the node's addresses, and on no other (probe18 D6: "0.0.0.0" answered on every
  // interface of the host network): 127.0.0.2 is this host's too, but not one of the node's
  for (const c of ['node-credentials', 'applier']) {
    const at = (host: string) =>
      fetch(`http://${host}:${ports.get(c)}/readyz`)
        .then((r) => r.status)
        .catch(() => 0);
    expect(await at('[::1]'), c).toBe(200);
    expect(await at('127.0.0.2'), c).toBe(0);
  }
}, 90_000);
