import { Option, type Command } from 'commander';
import { startApplierService } from '../../applier/applier-service.ts';
import { tuneV8ForApplier } from '../../applier/v8-tiering.ts';
import {
  checkAuthFiles,
  checkServerUrls,
  credsNodeMismatch,
  nodeToken,
  readVerifierFile,
} from '../../../libs/bus/index.ts';
import { existsSync } from 'node:fs';
import { UsageError } from '../cli-errors.ts';
import { refuseModeFlags } from '../flag-rules.ts';
import { ipvsRateEstimation, ipvsRateEstimationOption } from '../ipvs-rate-estimation.ts';
import { parseListenAddress, parseListenAddressList } from '../../planner/listen-address.ts';
import type { SetExit } from './index.ts';
import { untilSignalThenStop } from '../graceful-stop.ts';
import { inputFile, inputFileAs, parseDuration } from '../flag-values.ts';
import { DEFAULT_PROBE_SETTINGS } from '../../../libs/applier/index.ts';
import { DEFAULT_HEALTHZ_BIND_ADDRESS } from '../../applier/proxier-health.ts';

interface ApplierFlags {
  node: string;
  nats: string;
  mode: 'ipvs' | 'nftables' | 'auto' | 'dry-run';
  http?: string;
  takeOverKubeProxy?: boolean;
  user?: string;
  password?: string;
  creds?: string;
  nkeySeed?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  stateDir?: string;
  heartbeat: string;
  nftNotifications: 'on' | 'off';
  ipvsRateEstimation: 'on' | 'off' | 'keep';
  resyncInterval: string;
  leftoverCheckInterval: string;
  plannerKey?: string;
  probeSample: string;
  probeRate: string;
  probeTimeout: string;
  probeInterval: string;
  testVerdictFile?: string;
  healthzBindAddress?: string;
  healthzTimeout: string;
  healthCheckNodePorts?: 'on' | 'off';
}

/** A whole number from `min` to `max`, or a usage error naming the flag. */
function wholeFlag(flag: string, text: string, min: number, max: number, unit = ''): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} must be a whole number${unit} from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

export function registerApplier(program: Command, setExit: SetExit): void {
  program
    .command('applier')
    .description("follow this node's target on NATS: fetch, verify, render, program the kernel, ACK")
    .requiredOption('--node <name>', "this node's name")
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
    .addOption(
      new Option('--mode <mode>', 'dataplane').choices(['ipvs', 'nftables', 'auto', 'dry-run']).makeOptionMandatory(),
    )
    .option(
      '--http <addr>',
      '/healthz, /readyz, /livez and /metrics address (host:port, or [ip,ip]:port for several: a dual-stack node)',
    )
    .option(
      '--healthz-bind-address <addr>',
      `kube-proxy's proxier health server (/healthz, /livez) that load balancers probe; "" or off: none (default ${DEFAULT_HEALTHZ_BIND_ADDRESS}; dry-run: off)`,
    )
    .option(
      '--healthz-timeout <duration>',
      'a target or repair not programmed after this long makes /healthz, /livez and every health check node port answer 503',
      '60s',
    )
    .addOption(
      new Option(
        '--health-check-node-ports <on|off>',
        "answer load balancers on ETP=Local Services' spec.healthCheckNodePort (default on; dry-run: off)",
      ).choices(['on', 'off']),
    )
    .option('--user <user>', 'NATS user')
    .option('--password <password>', 'NATS password (or SWITCHBOARD_NATS_PASSWORD)')
    .option(
      '--creds <file>',
      'NATS .creds file (JWT auth)',
      inputFileAs((f) => checkAuthFiles({ credsFile: f })),
    )
    .option(
      '--nkey-seed <file>',
      "file holding this node's nkey seed",
      inputFileAs((f) => checkAuthFiles({ nkeySeedFile: f })),
    )
    .option('--tls-ca <file>', 'CA bundle for the NATS server certificate', inputFile)
    .option('--tls-cert <file>', 'client certificate', inputFile)
    .option('--tls-key <file>', 'client key', inputFile)
    .option('--state-dir <dir>', 'where applied state and ownership records live (default /var/lib/switchboard)')
    .option('--heartbeat <ms>', 'heartbeat period', '5000')
    .option(
      '--resync-interval <duration>',
      're-read what this node programmed and repair drift this often (e.g. 60s, 5m; 0 = never)',
      '60s',
    )
    .option(
      '--leftover-check-interval <duration>',
      "look for kube-proxy's leftovers at most this often (a resync in between reuses the last finding)",
      '10s',
    )
    .addOption(
      new Option(
        '--nft-notifications <on|off>',
        "nftables mode: follow nf_tables' change notifications so a resync reads back only what changed (a ~50 MB listener child); off: whole reads",
      )
        .choices(['on', 'off'])
        .default('on'),
    )
    .addOption(ipvsRateEstimationOption())
    .option(
      '--take-over-kube-proxy',
      "after the first verified apply, remove kube-proxy's state (nftables mode: its ip/ip6 kube-proxy tables); stop kube-proxy first",
    )
    .option(
      '--probe-sample <n>',
      'virtual servers the data-path probe connects to per round (0: no probe, the node reports unprobed)',
      String(DEFAULT_PROBE_SETTINGS.sample),
    )
    .option(
      '--probe-rate <n>',
      'most probe connections per second (direct endpoint checks included)',
      String(DEFAULT_PROBE_SETTINGS.ratePerSec),
    )
    .option(
      '--probe-timeout <ms>',
      'a probe connection not established within this many ms fails',
      String(DEFAULT_PROBE_SETTINGS.timeoutMs),
    )
    .option(
      '--probe-interval <ms>',
      're-probe what is programmed this often, reported in heartbeats (0: only after applies)',
      String(DEFAULT_PROBE_SETTINGS.intervalMs),
    )
    .addOption(
      new Option(
        '--test-verdict-file <file>',
        "TEST-ONLY: report the verdict this file holds (healthy|unhealthy|unprobed REASON) instead of the probe's",
      ).hideHelp(),
    )
    .option(
      '--planner-key <file>',
      "the planner's public key (PEM, the planner writes it to SIGNING-KEY.pub): drop anything it did not sign; several PEM blocks in the file are all trusted (rotating the key)",
    )
    .action(async (o: ApplierFlags, cmd: Command) => {
      // first: the flags apply to code V8 compiles from now on (see v8-tiering.ts)
      tuneV8ForApplier();
      refuseModeFlags(cmd, `applier --mode ${o.mode}`, o.mode, ['--nft-notifications'], ['--ipvs-rate-estimation']);
      const password = o.password ?? process.env.SWITCHBOARD_NATS_PASSWORD;
      const schemes = [o.user !== undefined, !!o.creds, !!o.nkeySeed].filter(Boolean).length;
      if (schemes > 1) throw new UsageError('use one of --user/--password, --creds, --nkey-seed');
      if (o.user !== undefined && password === undefined)
        throw new UsageError('--user needs --password (or SWITCHBOARD_NATS_PASSWORD)');
      if (o.user === undefined && o.password !== undefined) throw new UsageError('--password needs --user');
      const probe = {
        sample: wholeFlag('--probe-sample', o.probeSample, 0, 100),
        ratePerSec: wholeFlag('--probe-rate', o.probeRate, 1, 10_000, ' per second'),
        timeoutMs: wholeFlag('--probe-timeout', o.probeTimeout, 1, 60_000, ' of ms'),
        intervalMs: wholeFlag('--probe-interval', o.probeInterval, 0, 86_400_000, ' of ms'),
      };
      const resyncIntervalMs = o.resyncInterval.trim() === '0' ? 0 : parseDuration(o.resyncInterval);
      if (resyncIntervalMs === undefined || (resyncIntervalMs > 0 && resyncIntervalMs < 1000))
        throw new UsageError(
          `--resync-interval must be a duration of at least 1s (e.g. 60s, 5m) or 0, got "${o.resyncInterval}"`,
        );
      const leftoverCheckIntervalMs = parseDuration(o.leftoverCheckInterval);
      if (leftoverCheckIntervalMs === undefined || leftoverCheckIntervalMs < 1000)
        throw new UsageError(
          `--leftover-check-interval must be a duration of at least 1s (e.g. 10s, 1m), got "${o.leftoverCheckInterval}"`,
        );
      // The planner calls a node silent for 30 s UNKNOWN (DEFAULT_NODE_STATUS_THRESHOLDS): a
      // longer period would make a healthy node flap to UNKNOWN between heartbeats.
      const heartbeatMs = wholeFlag('--heartbeat', o.heartbeat, 100, 15_000, ' of ms');
      // Checked here, not at the first NATS subject built from it: there it sat in the connect
      // retry loop as if NATS were unreachable, and the applier waited forever.
      try {
        nodeToken(o.node);
      } catch (e) {
        throw new UsageError(`--node: ${(e as Error).message}`);
      }
      // A node credential may report as one node only: another node's (a renamed host, a copied
      // file) was refused every read and said only "Permissions Violation" (probe16 I5).
      const mismatch = o.creds ? credsNodeMismatch(o.creds, o.node) : undefined;
      if (mismatch) throw new UsageError(`--creds ${o.creds}: ${mismatch}`);
      // dry-run programs nothing: answering load balancers would draw traffic to a node on its say
      // so (and kube-proxy, which it shadows, holds these ports)
      const dryRun = o.mode === 'dry-run';
      const healthzBind = o.healthzBindAddress ?? (dryRun ? '' : DEFAULT_HEALTHZ_BIND_ADDRESS);
      const healthzTimeoutMs = parseDuration(o.healthzTimeout);
      if (healthzTimeoutMs === undefined || healthzTimeoutMs < 1000)
        throw new UsageError(
          `--healthz-timeout must be a duration of at least 1s (e.g. 60s), got "${o.healthzTimeout}"`,
        );
      let servers: string[];
      try {
        if (o.http !== undefined) parseListenAddressList(o.http); // before connecting: NATS may keep it waiting
        if (healthzBind !== '' && healthzBind !== 'off') parseListenAddress(healthzBind, '--healthz-bind-address');
        servers = checkServerUrls('--nats', o.nats);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      let verifier;
      try {
        // A missing key file is waited for (the planner writes it at its first start); a key that
        // is present but malformed is a usage error.
        verifier = o.plannerKey && existsSync(o.plannerKey) ? readVerifierFile(o.plannerKey) : undefined;
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const tls =
        o.tlsCa || o.tlsCert || o.tlsKey ? { caFile: o.tlsCa, certFile: o.tlsCert, keyFile: o.tlsKey } : undefined;
      const svc = await startApplierService({
        node: o.node,
        nats: servers,
        verifier,
        plannerKeyFile: verifier ? undefined : o.plannerKey,
        mode: o.mode,
        http: o.http,
        stateDir: o.stateDir,
        heartbeatMs,
        takeOverKubeProxy: o.takeOverKubeProxy,
        nftChangeNotifications: o.nftNotifications === 'on',
        ipvsRateEstimation: ipvsRateEstimation(o.ipvsRateEstimation),
        resyncIntervalMs,
        leftoverCheckIntervalMs,
        probe,
        testVerdictFile: o.testVerdictFile,
        healthzBindAddress: healthzBind === 'off' ? '' : healthzBind,
        healthzTimeoutMs,
        healthCheckNodePorts: (o.healthCheckNodePorts ?? (dryRun ? 'off' : 'on')) === 'on' ? {} : undefined,
        auth: { user: o.user, password, credsFile: o.creds, nkeySeedFile: o.nkeySeed, tls },
      });
      // stop() keeps the kernel state (fail-static); it must not hang on an unreachable NATS.
      setExit(await untilSignalThenStop('applier', () => svc.stop()));
    });
}
