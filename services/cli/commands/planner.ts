import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { runPlanner } from '../../planner/run-planner.ts';
import type { RetentionPolicy } from '../../../libs/eventlog/index.ts';
import {
  checkAuthFiles,
  checkGroupName,
  checkServerUrls,
  defaultSigningKeyFile,
  readSigningKeyFile,
  ReplicasRefused,
} from '../../../libs/bus/index.ts';
import { readTokenFile } from '../../planner/bearer-auth.ts';
import { creatableFile, inputFile, inputFileAs, parseDuration, serverUrl } from '../flag-values.ts';
import { UsageError } from '../cli-errors.ts';
import { refuseFlags } from '../flag-rules.ts';
import { checkOpenApi, parseListenAddress } from '../../planner/listen-address.ts';
import { loadProxyConfig } from '../load-proxy-config.ts';
import { maxManifestBytesOption, parseMaxManifestBytes } from '../max-manifest-bytes.ts';
import type { SetExit } from './index.ts';
import { untilSignalThenStop } from '../graceful-stop.ts';
import { fullGc } from '../full-gc.ts';
import { HeapWatch } from '../heap-headroom.ts';
import { LabelSelectorError, parseLabelSelector } from '../../../libs/model/index.ts';
import { loadKubeConfig } from '../../../libs/kube/index.ts';

export function registerPlanner(program: Command, setExit: SetExit): void {
  program
    .command('planner')
    .description(
      'watch Kubernetes (or a manifests directory), log every event, publish versioned desired state on NATS',
    )
    .option('--manifests <dir>', 'directory of Service/EndpointSlice/Node manifests (rescanned on change)')
    .option('--kubeconfig <file>', 'kubeconfig of the cluster to watch', inputFile)
    .option('--in-cluster', 'use the pod service account')
    .requiredOption(
      '--nats <url>',
      'NATS server URL(s), comma-separated (members of one cluster; the planner fails over between them)',
    )
    .option(
      '--replicas <n>',
      "copies of every stream and bucket the planner creates in the NATS cluster (at most the cluster's size)",
      '1',
    )
    .option(
      '--group <name>',
      'planner group: planners of one group on one NATS elect one leader; the others follow',
      'switchboard',
    )
    .option('--id <name>', "this planner's name in its group (default: the hostname)")
    .option(
      '--lease-ttl <duration>',
      'leader lease TTL: a leader that stops renewing is replaced within about this long',
      '15s',
    )
    .option(
      '--adopt-cluster',
      "lead even when the group's log belongs to another Kubernetes cluster (a rebuilt one), and record this one",
    )
    .option(
      '--accept-truncation',
      "follow the group's log stream though it was made again (NATS lost its store) and holds less than this file: drop the rows beyond it (recorded in replication_truncations)",
    )
    .requiredOption('--db <file>', 'SQLite event log (created when missing)', creatableFile)
    .option('--http <addr>', 'HTTP API address (host:port)', '127.0.0.1:9440')
    .option(
      '--advertise-url <url>',
      'the URL other planners name when they send a write to this one as leader (default: the --http address, the host name for a wildcard one)',
      serverUrl,
    )
    .option(
      '--token-file <file>',
      'bearer tokens for the HTTP API, one "TOKEN IDENTITY [viewer|operator]" a line (reloaded on change)',
      inputFileAs(readTokenFile),
    )
    .option('--insecure-open-api', 'serve the API without tokens on a non-loopback --http address')
    .option('--config <file>', 'proxy config (YAML/JSON) for the first config revision', inputFile)
    .option(
      '--node-selector <selector>',
      "the Nodes Switchboard proxies (they run an applier), as kubectl -l takes it, e.g. 'kubernetes.io/os=linux'; others are in no rollout wave and no ctl wait (default: every Node)",
    )
    .option(
      '--relist',
      'list every kind afresh at start instead of resuming from the resourceVersions in the log (after an etcd restore; docs/sources.md)',
    )
    .addOption(maxManifestBytesOption())
    .option('--checkpoint-every <k>', 'object-state checkpoint in the log every K events', '10000')
    .option(
      '--retain-versions <n>',
      'online retention: keep the newest N versions rebuildable (their events, checkpoints and ACKs); older rows are removed from the log while the planner runs, never a pinned version or one a fleet node runs (default: keep everything; docs/eventlog.md)',
    )
    .option(
      '--retain-age <duration>',
      'online retention: keep every version current within this long, e.g. 7d (with --retain-versions: whichever keeps more)',
    )
    .option(
      '--versions-keep-checkpoints <n>',
      'checkpoints the versions stream keeps; older versions are purged from NATS (the log keeps them); 0 keeps all',
      '2',
    )
    .option('--nats-user <user>', 'NATS user (the planner role in deploy/nats)')
    .option('--nats-password <password>', 'NATS password (or SWITCHBOARD_NATS_PASSWORD)')
    .option(
      '--nats-creds <file>',
      'NATS .creds file (JWT auth)',
      inputFileAs((f) => checkAuthFiles({ credsFile: f })),
    )
    .option(
      '--nats-nkey-seed <file>',
      "file holding the planner's nkey seed",
      inputFileAs((f) => checkAuthFiles({ nkeySeedFile: f })),
    )
    .option('--tls-ca <file>', 'CA bundle for the NATS server certificate', inputFile)
    .option('--tls-cert <file>', 'client certificate', inputFile)
    .option('--tls-key <file>', 'client key', inputFile)
    .option(
      '--signing-key <file>',
      'Ed25519 private key (PEM) signing what goes on the bus; created when missing, public key written to FILE.pub (default: beside --db)',
    )
    .action(
      async (
        o: {
          manifests?: string;
          kubeconfig?: string;
          inCluster?: boolean;
          nats: string;
          db: string;
          http: string;
          advertiseUrl?: string;
          tokenFile?: string;
          insecureOpenApi?: boolean;
          config?: string;
          nodeSelector?: string;
          relist?: boolean;
          checkpointEvery: string;
          retainVersions?: string;
          retainAge?: string;
          versionsKeepCheckpoints: string;
          maxManifestBytes?: string;
          replicas: string;
          group: string;
          id?: string;
          leaseTtl: string;
          natsUser?: string;
          natsPassword?: string;
          natsCreds?: string;
          natsNkeySeed?: string;
          tlsCa?: string;
          tlsCert?: string;
          tlsKey?: string;
          signingKey?: string;
          adoptCluster?: boolean;
          acceptTruncation?: boolean;
        },
        cmd: Command,
      ) => {
        try {
          checkServerUrls('--nats', o.nats);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        const sources = [o.manifests, o.kubeconfig, o.inCluster].filter(Boolean).length;
        if (sources !== 1)
          throw new UsageError('choose exactly one of --manifests DIR, --kubeconfig FILE, --in-cluster');
        if (o.manifests)
          refuseFlags(cmd, ['--adopt-cluster'], 'planner --manifests', 'a directory has no cluster identity to adopt');
        else
          refuseFlags(
            cmd,
            ['--max-manifest-bytes'],
            `planner ${o.kubeconfig ? '--kubeconfig' : '--in-cluster'}`,
            'it limits the files of a --manifests directory',
          );
        if (o.tokenFile)
          refuseFlags(
            cmd,
            ['--insecure-open-api'],
            'planner --token-file',
            'the API asks for tokens, so it is not open',
          );
        const maxManifestBytes = parseMaxManifestBytes(o.maxManifestBytes);
        let nodeSelector: ReturnType<typeof parseLabelSelector> | undefined;
        try {
          nodeSelector = o.nodeSelector === undefined ? undefined : parseLabelSelector(o.nodeSelector);
        } catch (e) {
          throw e instanceof LabelSelectorError ? new UsageError(`--node-selector: ${e.message}`) : e;
        }
        if (o.manifests)
          refuseFlags(
            cmd,
            ['--relist'],
            'planner --manifests',
            'it is for --kubeconfig/--in-cluster; a manifests directory is read whole at every start',
          );
        const replicas = Number(o.replicas);
        if (!/^\d+$/.test(o.replicas) || !Number.isSafeInteger(replicas) || replicas < 1)
          throw new UsageError(`--replicas ${o.replicas}: expected a whole number of at least 1`);
        try {
          checkGroupName(o.group);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        if (o.id !== undefined && !/^[\x21-\x7e\u00a0-\uffff]{1,128}$/.test(o.id))
          throw new UsageError(`--id ${JSON.stringify(o.id)}: 1-128 printable characters, no spaces`);
        const leaseTtlMs = parseDuration(o.leaseTtl);
        if (leaseTtlMs === undefined || leaseTtlMs < 400)
          throw new UsageError(`--lease-ttl ${o.leaseTtl}: expected a duration of at least 400ms, such as 15s`);
        const k = Number(o.checkpointEvery);
        if (!Number.isInteger(k) || k < 0) throw new UsageError('--checkpoint-every must be a whole number');
        const retain = retentionPolicy(o.retainVersions, o.retainAge);
        const keepCheckpoints = Number(o.versionsKeepCheckpoints);
        if (!/^\d+$/.test(o.versionsKeepCheckpoints) || !Number.isSafeInteger(keepCheckpoints))
          throw new UsageError(
            `--versions-keep-checkpoints ${o.versionsKeepCheckpoints}: expected a whole number (0 keeps every version)`,
          );
        if (keepCheckpoints === 1)
          throw new UsageError(
            '--versions-keep-checkpoints 1: keep at least 2 (a node still loading the previous checkpoint must find it) or 0',
          );
        // Flag values are checked before anything is opened, appended or published.
        try {
          checkOpenApi(parseListenAddress(o.http), o);
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
        // An existing signing key that the planner could not use (created when missing)
        const keyFile = o.signingKey ?? defaultSigningKeyFile(o.db);
        if (existsSync(keyFile)) {
          try {
            readSigningKeyFile(keyFile);
          } catch (e) {
            throw new UsageError(
              `${o.signingKey ? '--signing-key' : 'the signing key beside --db'}: ${(e as Error).message}`,
            );
          }
        }
        // The cluster's credentials too: read only when this planner first leads, a bad file left a
        // planner holding its group's lease without a source (review5 F7).
        if (o.kubeconfig !== undefined || o.inCluster) {
          try {
            await loadKubeConfig({ kubeconfig: o.kubeconfig, inCluster: o.inCluster });
          } catch (e) {
            throw new UsageError(`${o.inCluster ? '--in-cluster' : '--kubeconfig'}: ${(e as Error).message}`);
          }
        }
        // One per process, started before the initial sync: a planner that outgrows its heap dies there,
        // and the line saying so must come before (services/cli/heap-headroom.ts).
        const heap = new HeapWatch({
          say: (line, warning) => process.stderr.write(`planner: ${warning ? 'warning: ' : ''}${line}\n`),
        });
        const running = await runPlanner({
          heap,
          replicas,
          group: o.group,
          id: o.id,
          leaseTtlMs,
          adoptCluster: o.adoptCluster,
          acceptTruncation: o.acceptTruncation,
          manifests: o.manifests,
          kubeconfig: o.kubeconfig,
          inCluster: o.inCluster,
          nats: o.nats,
          db: o.db,
          http: o.http,
          advertiseUrl: o.advertiseUrl,
          tokenFile: o.tokenFile,
          insecureOpenApi: o.insecureOpenApi,
          signingKey: o.signingKey,
          onBusWaiting: (what) => process.stderr.write(`planner: waiting for ${what}\n`),
          config: loadProxyConfig(o.config, {}),
          checkpointEvery: k,
          ...(retain ? { retain } : {}),
          nodeSelector,
          relist: o.relist,
          versionsKeepCheckpoints: keepCheckpoints,
          maxManifestBytes,
          natsAuth: {
            user: o.natsUser,
            password: o.natsPassword ?? process.env.SWITCHBOARD_NATS_PASSWORD,
            credsFile: o.natsCreds,
            nkeySeedFile: o.natsNkeySeed,
            tls:
              o.tlsCa || o.tlsCert || o.tlsKey
                ? { caFile: o.tlsCa, certFile: o.tlsCert, keyFile: o.tlsKey }
                : undefined,
          },
        }).catch((e: unknown) => {
          throw e instanceof ReplicasRefused ? new UsageError(e.message) : e;
        });
        process.stderr.write(`planner: HTTP API on ${running.url}\n`);
        void running.planner.synced.then(() => {
          process.stderr.write(`planner: synced, version ${running.planner.data.latest()?.version ?? 0}\n`);
          fullGc(); // return the initial sync's transient heap to the OS (services/cli/full-gc.ts)
        });
        setExit(await untilSignalThenStop('planner', () => running.stop()));
      },
    );
}

/** --retain-versions / --retain-age: the online retention policy, or undefined (keep everything). */
function retentionPolicy(versions: string | undefined, age: string | undefined): RetentionPolicy | undefined {
  let policy: { versions?: number; ageMs?: number } | undefined;
  if (versions !== undefined) {
    const n = Number(versions);
    if (!/^\d+$/.test(versions) || !Number.isSafeInteger(n) || n < 1)
      throw new UsageError(`--retain-versions ${versions}: expected a whole number of at least 1`);
    policy = { versions: n };
  }
  if (age !== undefined) {
    const ms = parseDuration(age);
    if (ms === undefined || ms < 60_000)
      throw new UsageError(`--retain-age ${age}: expected a duration of at least 1m, such as 7d or 12h`);
    policy = { ...policy, ageMs: ms };
  }
  return policy;
}
