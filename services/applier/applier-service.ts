import type { NatsConnection } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import {
  ApplierSession,
  DataplaneProbe,
  DEFAULT_PROBE_SETTINGS,
  noProbe,
  withInjectedVerdict,
  type HealthProbe,
  type ProbeSettings,
  type SessionEvent,
  verdictSaysDataplaneDown,
} from '../../libs/applier/index.ts';
import {
  connectBusWaiting,
  credsFileExpiry,
  isCredentialRefusal,
  isSubscriptionRefusal,
  serversText,
  sleepUnlessAborted,
  type BusAuth,
  type SubscriptionRetry,
  readVerifierFile,
  type Verifier,
} from '../../libs/bus/index.ts';
import { createDataplane, DEFAULT_STATE_DIR, type DataplaneChoice } from '../../libs/dataplane/index.ts';
import type { Dataplane } from '../../libs/dataplane/index.ts';
import {
  refuseUnfitNode,
  withForwardDropCheck,
  withKubeProxyLeftoverCheck,
  withKubeProxyTakeOver,
} from '../../libs/dataplane/index.ts';
import { ApplierMetrics } from './applier-metrics.ts';
import { AppliedStateFile } from './applied-state-file.ts';
import { GcAfterBigApply, type GcAfterBigApplyOptions } from './gc-after-big-apply.ts';
import { renderContext } from '../../libs/planner/index.ts';
import { unknownFieldsText } from '../../libs/control/index.ts';
import type { ContentShapes } from '../../libs/model/index.ts';
import { startHttpEndpoint } from './http-endpoint.ts';
import { takeNodeFilesLock, takeNodeLock, type NodeLock } from './node-lock.ts';
import { healthCheckListenAddresses, healthCheckPorts, HealthCheckNodePorts } from './health-check-node-ports.ts';
import { DEFAULT_HEALTHZ_TIMEOUT_MS, isOnTarget, ProxierHealth, serveProxierHealth } from './proxier-health.ts';
import { NodeWarnings, type NodeWarningHooks } from './node-warnings.ts';
import { HeapWatch, type HeapWatchOptions } from '../cli/heap-headroom.ts';
import { withFixedModeCheck } from './fixed-mode-check.ts';

/** How often an applier re-reads its kernel state and repairs drift (`--resync-interval`). */
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000;

/**
 * Subscriptions an applier's connection holds: the notices of its two target keys and the reply
 * inbox every read (direct get) answers into. An account or user subscription limit below this
 * refuses one (docs/operations.md, "NATS limits").
 */
export const APPLIER_SUBSCRIPTIONS = 3;

export interface ApplierServiceOptions {
  readonly node: string;
  readonly nats: string | string[];
  readonly mode: DataplaneChoice;
  /** nftables mode: follow nf_tables' change notifications (default true; createDataplane). */
  readonly nftChangeNotifications?: boolean;
  /** ipvs mode: IPVS rate estimators on/off (net.ipv4.vs.run_estimation); undefined: the kernel's setting (createDataplane). */
  readonly ipvsRateEstimation?: boolean;
  readonly http?: string;
  readonly auth?: BusAuth;
  readonly stateDir?: string;
  readonly heartbeatMs?: number;
  readonly logger?: Logger;
  /**
   * Tests and benches pass their own dataplane, or a function that makes one given the hooks the
   * node's warnings come from (node-warnings.ts), as createDataplane is given them.
   */
  readonly dataplane?: Dataplane | ((hooks: NodeWarningHooks) => Dataplane);
  /** The planner's public key (--planner-key); without it nothing on the bus is authenticated. */
  /**
   * Where the planner's public key will appear, when `verifier` is not given yet: an applier started
   * before the planner ever ran waits for the file (readyz says so) instead of exiting.
   */
  readonly plannerKeyFile?: string;
  readonly verifier?: Verifier;
  /** Longest wait between connection attempts while NATS is unreachable, at start and at reconnects (default 5 s). */
  readonly maxBackoffMs?: number;
  /** After the first verified apply, remove kube-proxy's state (libs/dataplane/kube-proxy-takeover.ts). */
  readonly takeOverKubeProxy?: boolean;
  /**
   * Name kube-proxy's leftovers at the first apply and each resync (kube-proxy-leftover-check.ts).
   * Default: on for a dataplane made here, off for one passed in (`dataplane`).
   */
  readonly checkKubeProxyLeftovers?: boolean;
  /** Look for kube-proxy's leftovers at most this often (LeftoverCheckOptions.minCheckIntervalMs; default 10 s). */
  readonly leftoverCheckIntervalMs?: number;
  /** Data-path probe settings (--probe-*); missing parts take DEFAULT_PROBE_SETTINGS. */
  readonly probe?: Partial<ProbeSettings>;
  /** Periodic drift check and repair (Dataplane.resync; ms, 0 = never). Default 60 s. */
  readonly resyncIntervalMs?: number;
  /** TEST-ONLY (--test-verdict-file): a file whose `healthy|unhealthy|unprobed REASON` replaces the probe's verdict. */
  readonly testVerdictFile?: string;
  /** The full GC after a big apply (gc-after-big-apply.ts); tests pass their own heap and collector. */
  readonly gcAfterBigApply?: GcAfterBigApplyOptions;
  /** The heap statistics HeapWatch reads (services/cli/heap-headroom.ts); tests pass their own. */
  readonly heapStats?: HeapWatchOptions['stats'];
  /**
   * kube-proxy's proxier health server (`--healthz-bind-address`, /healthz + /livez, proxier-health.ts);
   * undefined or '': none. The CLI defaults it to 0.0.0.0:10256 outside dry-run.
   */
  readonly healthzBindAddress?: string;
  /** A change not programmed after this long makes the node unhealthy there (ms; default 60 s, kube-proxy's). */
  readonly healthzTimeoutMs?: number;
  /**
   * Serve ETP=Local Services' health check node ports (health-check-node-ports.ts); `host`
   * undefined: every node address. Undefined: not served (the CLI turns it on outside dry-run).
   */
  readonly healthCheckNodePorts?: { readonly host?: string; readonly retryMs?: number };
  /** Backoff of the reconnects after NATS refused a subscription (tests shorten it; libs/bus watchSubscriptionRefusals). */
  readonly subscriptionRetry?: SubscriptionRetry;
  /** How long a read of a target key waits for its answer (ApplierSessionOptions.targetReadTimeoutMs); tests lengthen it. */
  readonly targetReadTimeoutMs?: number;
  /** The entry fields this applier knows (ApplierSessionOptions.knownFields); tests stand for an older release with fewer. */
  readonly knownFields?: ContentShapes;
}

export interface ApplierService {
  /** The session once connected (undefined while waiting for NATS). */
  session(): ApplierSession | undefined;
  readonly dataplane: Dataplane;
  /** Resolves once connected to NATS and following targets. */
  readonly connected: Promise<NatsConnection>;
  readonly httpPort: number | undefined;
  /** Where kube-proxy's /healthz and /livez answer (undefined: off, or not bound yet). */
  proxierHealthPort(): number | undefined;
  /** What the applier waits for before it can be ready (undefined when it has a target). */
  waitingFor(): string | undefined;
  /** The NATS connection once made (undefined while waiting for the first connect). */
  connection(): NatsConnection | undefined;
  /** Graceful stop: session, HTTP, NATS, dataplane handles. The kernel state stays programmed. */
  stop(): Promise<void>;
}

/** The locks this applier holds while it runs (node-lock.ts), or none. */
async function takeApplierLock(o: ApplierServiceOptions, stateDir: string): Promise<NodeLock | undefined> {
  if (o.dataplane) return undefined; // a dataplane the caller made (tests): the caller's to guard
  // A dry-run applier programs nothing; one given a state directory writes the node's applied
  // record there (as `persisted` in startLocked) and ACKs as the node: the node's lock alone.
  if (o.mode === 'dry-run')
    return o.stateDir ? { ...takeNodeFilesLock(stateDir, o.node, 'applier (dry-run)'), notes: [] } : undefined;
  return takeNodeLock(stateDir, o.node, 'applier');
}

/**
 * The long-running applier: bus session + rendering + dataplane, with /healthz, /readyz and
 * /metrics. Wiring only; the protocol lives in libs/applier. It starts in any order: HTTP comes
 * up first, then it waits for NATS (capped backoff, forever), then for a targets bucket and a
 * target (polling); /readyz and the log say what it waits for, and it never exits for that.
 */
export async function startApplierService(o: ApplierServiceOptions): Promise<ApplierService> {
  const stateDir = o.stateDir ?? DEFAULT_STATE_DIR;
  // One process programs this node (node-lock.ts): a second applier stops here, before the kernel.
  const nodeLock = await takeApplierLock(o, stateDir);
  // A start that fails (a busy --http port, an unfit node, a bad address) holds nothing after it:
  // what it opened is closed, newest first, and the lock released.
  const undo: (() => unknown)[] = [];
  try {
    return await startLocked(o, stateDir, nodeLock, undo);
  } catch (e) {
    for (const close of undo.reverse())
      await Promise.resolve()
        .then(close)
        .catch(() => undefined);
    nodeLock?.release();
    throw e;
  }
}

async function startLocked(
  o: ApplierServiceOptions,
  stateDir: string,
  nodeLock: NodeLock | undefined,
  undo: (() => unknown)[],
): Promise<ApplierService> {
  const log = o.logger ?? pino({ name: 'switchboard-applier', base: { node: o.node } });
  for (const note of nodeLock?.notes ?? []) log.warn({ note }, 'network namespace claim');
  const metrics = new ApplierMetrics();
  const proxierHealth = new ProxierHealth(o.healthzTimeoutMs ?? DEFAULT_HEALTHZ_TIMEOUT_MS);
  let session: ApplierSession | undefined;
  // what the node warns of goes out at once, not at the next beat (node-warnings.ts)
  const warnings = new NodeWarnings(() => session?.heartbeat());
  const hooks = warnings.hooks();
  const given = typeof o.dataplane === 'function' ? o.dataplane(hooks) : o.dataplane;
  const created =
    given ??
    (await createDataplane({
      mode: o.mode,
      node: o.node,
      stateDir,
      registry: metrics.registry,
      nftChangeNotifications: o.nftChangeNotifications,
      ipvsRateEstimation: o.ipvsRateEstimation,
      preflight: (mode) => refuseUnfitNode(mode),
      log: (m) => log.info(m),
      onModeDrain: hooks.onModeDrain,
      // our table (or a base chain) deleted: every service fails until repaired, so resync now
      onDrift: (why) => {
        log.warn({ why }, 'kernel drift signalled: resync now');
        proxierHealth.dataplaneFault('drift', why); // /healthz 503 until the resync repairs it
        session?.driftSignalled(why);
      },
      onListenerState: (down) => {
        if (down) log.warn({ why: down }, 'nftables change-notification listener down');
        else log.info('nftables change-notification listener running');
        hooks.onListenerState(down);
      },
      // a lost listener restarted: what changed meanwhile is unknown, so resync (a whole read) now
      onResyncWanted: (why) => session?.driftSignalled(why),
    }));
  const takenOver = o.takeOverKubeProxy ? withKubeProxyTakeOver(created, { log: (m) => log.info(m) }) : created;
  // a fixed --mode ignores the config's mode: say so when the config asks for the other one (probe24 F1)
  const modeChecked =
    o.mode === 'ipvs' || o.mode === 'nftables'
      ? withFixedModeCheck(takenOver, o.mode, (text) => {
          if (text && !warnings.list().includes(text)) log.warn({ fixedMode: o.mode }, text);
          warnings.set('fixed-mode', text);
        })
      : takenOver;
  // kube-proxy's leftovers (any mode) are named at the first apply and every resync; those that
  // compete make the resync, so the node's report, unhealthy (kube-proxy-leftover-check.ts)
  const dataplane =
    given || o.checkKubeProxyLeftovers === false
      ? modeChecked
      : withForwardDropCheck(
          withKubeProxyLeftoverCheck(modeChecked, {
            takeOver: !!o.takeOverKubeProxy,
            minCheckIntervalMs: o.leftoverCheckIntervalMs,
            log: (m) => log.warn({ kubeProxyLeftovers: true }, m),
          }),
          // another table's forward drop policy: a warning in the log (forward-drop-check.ts)
          { log: (m) => log.warn({ forwardDrop: true }, m), onReport: hooks.onForwardDrop },
        );
  undo.push(() => dataplane.close());
  const probeSettings: ProbeSettings = { ...DEFAULT_PROBE_SETTINGS, ...o.probe };
  let probe: HealthProbe =
    dataplane.mode === 'dry-run'
      ? noProbe('dry-run: no dataplane to probe')
      : probeSettings.sample === 0
        ? noProbe('probe turned off (--probe-sample 0)')
        : new DataplaneProbe(probeSettings);
  if (o.testVerdictFile) {
    log.warn(
      { file: o.testVerdictFile },
      'TEST-ONLY --test-verdict-file: this node reports the verdict that file holds, not what its probe finds',
    );
    probe = withInjectedVerdict(probe, o.testVerdictFile);
  }
  const persisted = o.mode === 'dry-run' && !o.stateDir ? undefined : new AppliedStateFile(stateDir, o.node);
  const before = persisted?.read();
  // Not trusted: the kernel may have lost it (a reboot, ipvsadm -C, the table deleted while the
  // applier was down). The first apply of this process reads the kernel back in full and writes
  // only what differs (nothing, over an unchanged kernel) before it ACKs.
  if (before)
    log.info({ lastAcked: before }, 'last ACKed before this start: the first apply checks the kernel against it');
  // what the last process followed, per target key: an older (replayed) signed target is refused (probe10 H1)
  const followedBefore = before?.followed;
  if (!o.verifier && !o.plannerKeyFile)
    log.warn(
      'no --planner-key: targets and versions on the bus are NOT authenticated (anyone who can publish there can move this node)',
    );
  const servers = Array.isArray(o.nats) ? o.nats : [o.nats];
  let waiting: string | undefined = `NATS at ${serversText(servers)}`;
  let nc: NatsConnection | undefined;
  /**
   * Whether the connection is up now: from the first connect to a disconnect, and again from the
   * reconnect. A reconnecting connection is not closed, so `!nc.isClosed()` said `connected: true`
   * on /healthz through a whole partition while the gauge said 0 (probe14 P4).
   */
  let busUp = false;
  /** When the connection dropped (for the reconnect line), undefined while it is up. */
  let downSince: number | undefined;
  /**
   * Why NATS refuses this node's credential (expired, revoked, another operator's), from the
   * server's error, until the connection is back; undefined otherwise. The client retries with the
   * .creds file read again at each try (probe16 I1: it gave up for good, /healthz and /readyz said
   * fine and the log blamed PINGs).
   */
  let refusedBy: string | undefined;
  /**
   * Why NATS refuses a subscription of this node's connection (the READERS account's or the
   * user's subscription limit), until a reconnect draws no refusal (the bus reconnects, backing
   * off). A refused target-notice or reply-inbox subscription left the node on its old target with
   * /readyz 200 "on target" and nothing said (probe19 P19-1).
   */
  let subscriptionRefused: string | undefined;
  /** What the server said while this node was away (not a credential refusal), until it is back. */
  let droppedBy: string | undefined;
  /** What is wrong with the .creds file at the last try (the one read before is used), if anything. */
  let credsFileProblem: string | undefined;
  let refusalLogged: string | undefined;
  const refusal = (): string | undefined => (busUp ? undefined : refusalText());
  const refusalText = (): string | undefined => {
    if (refusedBy === undefined) return undefined;
    const file = o.auth?.credsFile;
    const exp = file ? credsFileExpiry(file) : undefined;
    return [
      `NATS refuses this node's credential (${refusedBy}); keeping what is programmed, taking no new target`,
      ...(file
        ? [
            exp !== undefined
              ? `the credential in ${file} expires at ${new Date(exp * 1000).toISOString()} (is its renewal, the credentials sidecar and the issuer, working?)`
              : `retrying with ${file} as it is renewed`,
          ]
        : []),
      ...(credsFileProblem ? [credsFileProblem] : []),
    ].join('; ');
  };
  /** Why the client closed the connection (it never dials again), once it has. */
  let closedWhy: string | undefined;
  /** Why the bus session could not start (the applier follows nothing until restarted). */
  let startFailed: string | undefined;
  const abort = new AbortController();
  const gcAfterApply = new GcAfterBigApply({
    ...o.gcAfterBigApply,
    onCollected: (c) => {
      log.info(
        { heapMB: [c.beforeBytes, c.afterBytes].map((b) => Math.round(b / 2 ** 20)), ms: Math.round(c.ms) },
        'full GC after a big apply',
      );
      o.gcAfterBigApply?.onCollected?.(c);
    },
    onFailed: (e) => log.warn({ err: e.message }, 'full GC after a big apply failed; not tried again'),
  });

  undo.push(() => gcAfterApply.stop());
  // The heap after V8's full collections against its limit: near it, said in the log and as a node
  // warning (ctl status, the console), before V8 stops the applier (heap-headroom.ts).
  const heap = new HeapWatch({
    stats: o.heapStats,
    say: (line, warning) => {
      if (warning) log.warn(line);
      else log.info(line);
      warnings.set('heap', warning ? line : undefined);
    },
  });
  undo.push(() => heap.stop());
  metrics.heapFrom(() => heap.reading);
  const healthChecks = o.healthCheckNodePorts
    ? new HealthCheckNodePorts({
        host: o.healthCheckNodePorts.host,
        retryMs: o.healthCheckNodePorts.retryMs,
        proxierHealthy: () => {
          const v = proxierHealth.verdict();
          return v.healthy && v.dataplaneOk;
        },
        log,
      })
    : undefined;
  undo.push(() => healthChecks?.close());
  /**
   * Until this process's first apply verified (and before its session exists: NATS not reached
   * yet): what the node last ACKed before this start, from --state-dir, marked not verified.
   * `applied` alone was absent then and the heartbeat said version 0: read as "runs nothing".
   */
  const restartedWords = (s: ReturnType<ApplierSession['status']> | undefined) => {
    const b = s ? s.lastAckedBeforeStart : before;
    return b ? { lastAckedBeforeStart: { version: b.version, configRevision: b.configRevision, verified: false } } : {};
  };
  const onTarget = () => {
    const s = session?.status();
    return isOnTarget(s?.applied, s?.target);
  };
  /** What the node now runs: the ports it answers load balancers on and where, and whether its Node still takes traffic. */
  const servePortsOf = (e: SessionEvent & { type: 'ack' }) => {
    const facts = e.data.node(o.node);
    proxierHealth.nodeEligible(
      facts !== undefined && facts.beingRemoved === undefined,
      !facts
        ? `Node ${o.node} is not in the cluster data this node runs (deleted)`
        : `Node ${o.node} is being removed (${facts.beingRemoved === 'deletionTimestamp' ? 'it has a deletionTimestamp' : `taint ${facts.beingRemoved}`})`,
    );
    if (!healthChecks) return;
    const where = healthCheckListenAddresses(e.config, renderContext(e.data, o.node, e.config).nodePortIPs);
    void healthChecks.sync(healthCheckPorts(e.data.services(), o.node), where).then(() => {
      const st = healthChecks.status();
      metrics.healthCheckNodePorts(st.serving.length, st.failed.length);
    });
  };

  const onEvent = (e: SessionEvent) => {
    metrics.observe(e);
    switch (e.type) {
      case 'target':
        log.info({ target: e.target }, 'target');
        if (!isOnTarget(session?.status().applied, e.target))
          proxierHealth.queued(`target version ${e.target.version} (config revision ${e.target.configRevision})`);
        break;
      case 'ack':
        log.info(
          {
            version: e.ack.version,
            configRevision: e.ack.configRevision,
            path: e.path,
            bytes: e.bytes,
            ...(e.patched > 0 ? { patched: e.patched } : {}),
            skipped: e.skipped,
            kernelWrites: e.ack.kernelWrites,
            timings: e.ack.timings,
            verdict: e.ack.health?.verdict,
            verdictReason: e.ack.health?.reason,
          },
          'applied',
        );
        try {
          persisted?.write({
            version: e.ack.version,
            configRevision: e.ack.configRevision,
            dataHash: e.ack.dataHash,
            nodeStateHash: e.ack.nodeStateHash,
            followed: e.followed,
          });
        } catch (err) {
          log.warn({ err: (err as Error).message }, 'could not persist applied state');
        }
        proxierHealth.updated();
        proxierHealth.dataplaneRepaired('drift'); // a verified apply: our state is in the kernel
        // the target moved on during the apply: that change is pending from now
        if (session && !onTarget()) proxierHealth.queued('a newer target');
        servePortsOf(e);
        // the ACK is out (published above); a load's heap is collected now, not beside the next changes
        void gcAfterApply.afterApply();
        break;
      case 'verdict':
        if (verdictSaysDataplaneDown(e.verdict)) proxierHealth.dataplaneFault('probe', e.verdict.reason);
        else proxierHealth.dataplaneRepaired('probe');
        if (e.verdict.verdict === 'unhealthy')
          log.warn({ reason: e.verdict.reason, probe: e.verdict.probe }, 'health verdict: unhealthy');
        break;
      case 'unknown-fields':
        // applied and ACKed without them: a newer planner's fields this release does not read (probe15 U7)
        log.warn(
          { version: e.version, unknownTargetFields: e.fields },
          `version ${e.version} carries target fields this applier does not know (${unknownFieldsText(e.fields)}): applied without them; an applier of an older release than the planner, upgrade it`,
        );
        break;
      case 'nack':
        log.warn({ version: e.nack.version, error: e.nack.error, lastGoodVersion: e.nack.lastGoodVersion }, 'NACK');
        break;
      case 'error':
        log.warn({ error: e.error }, 'bus error');
        break;
      case 'rejected':
        if (e.kind === 'old-target')
          log.warn({ where: e.where, reason: e.reason }, 'refused a target older than this node followed before');
        else
          log.warn({ kind: e.kind, where: e.where, reason: e.reason }, "dropped a message that is not the planner's");
        break;
      case 'connection':
        // The client reports every PING it sends ('ping', every 2 s: 43 200 lines a day per node,
        // probe14 P5); a lost connection is a warning, its return says how long it lasted.
        if (e.status === 'error' && e.error !== undefined && isCredentialRefusal(e.error)) {
          refusedBy = e.error;
          const why = refusalText();
          if (why !== undefined && why !== refusalLogged) log.warn({ status: e.status, error: e.error }, why);
          refusalLogged = why;
        } else if (
          e.status === 'error' &&
          e.error !== undefined &&
          !busUp &&
          !isSubscriptionRefusal(e.error) &&
          !/permissions violation/i.test(e.error)
        ) {
          // the server's words while this node is away: a limit refusing it (maximum connections
          // exceeded, the account's), which only the server log named (probe19 P19-3)
          if (e.error !== droppedBy)
            log.warn(
              { status: e.status, error: e.error },
              `NATS refuses this node's connection (${e.error}): keeping what is programmed, retrying`,
            );
          droppedBy = e.error;
        } else if (e.status === 'disconnect') {
          busUp = false;
          downSince = Date.now();
          log.warn({ status: e.status }, 'nats connection lost: keeping what is programmed, reconnecting');
        } else if (e.status === 'reconnect') {
          busUp = true;
          refusedBy = refusalLogged = droppedBy = undefined;
          const downMs = downSince === undefined ? undefined : Date.now() - downSince;
          downSince = undefined;
          log.warn({ status: e.status, downMs }, 'nats connection back');
        } else if (e.status === 'staleConnection') {
          // the client reports a refused credential's drop as a stale connection: the refusal said it
          if (refusedBy === undefined)
            log.warn({ status: e.status }, 'nats server stopped answering PINGs: dropping the connection');
        } else if (e.status !== 'ping' && e.status !== 'reconnecting')
          log.info({ status: e.status }, 'nats connection');
        break;
      case 'resync':
        // kube-proxy's periodic sync: a clean one is an update, a failed one leaves a change pending
        if (e.error || !e.verified) proxierHealth.queued('a repair of the kernel state (resync)');
        else {
          proxierHealth.dataplaneRepaired('drift');
          if (onTarget()) proxierHealth.updated();
        }
        if (e.error) log.warn({ error: e.error }, 'resync failed');
        else if (e.kernelWrites > (e.scheduledWrites ?? 0) || !e.verified)
          log.warn(
            { trigger: e.trigger, kernelWrites: e.kernelWrites, verified: e.verified, notes: e.notes },
            'resync repaired drift',
          );
        else if (e.kernelWrites > 0)
          log.info({ trigger: e.trigger, kernelWrites: e.kernelWrites, notes: e.notes }, 'resync ended drains');
        break;
      case 'resync-yielded':
        log.info(
          { trigger: e.trigger, afterMs: Math.round(e.afterMs) },
          'resync gave way to an apply; it runs again after it',
        );
        break;
    }
  };

  const waitingFor = (): string | undefined => (session ? session.status().waitingFor : waiting);
  /**
   * What keeps this process from ever following its target again, short of a restart: the client
   * closed the NATS connection for good (it never dials again, e.g. after refused credentials), or
   * the bus session failed to start. /livez answers 503 then, so the kubelet restarts the applier
   * (fail-static: the kernel state stays); everything else (NATS away, a failing apply) is not
   * fixed by a restart and keeps /livez 200.
   */
  const wedged = (): string | undefined => {
    if (abort.signal.aborted) return undefined;
    if (startFailed !== undefined) return `the bus session did not start: ${startFailed}`;
    if (nc?.isClosed())
      return `the NATS connection is closed for good (${closedWhy ?? 'closed'}); the client never dials again`;
    return undefined;
  };
  /** Why this node is not following its target now (undefined while connected). */
  const offBus = (): string | undefined => {
    const w = wedged();
    if (w) return w;
    if (nc && !busUp)
      return `NATS connection lost${downSince === undefined ? '' : ` ${Math.round((Date.now() - downSince) / 1000)} s ago`}, reconnecting (keeping what is programmed)${droppedBy ? `; the server refuses it: ${droppedBy}` : ''}`;
    return undefined;
  };
  const http = o.http
    ? await startHttpEndpoint({
        address: o.http,
        registry: metrics.registry,
        health: () => {
          const s = session?.status();
          const refused = refusal();
          return {
            // a refused credential is this node's own fault (an outage of NATS is not): the pod
            // leaves Ready (readinessProbe) and the reason is here
            healthy:
              (!s || s.lastError === '') &&
              refused === undefined &&
              subscriptionRefused === undefined &&
              session?.notReporting() === undefined,
            node: o.node,
            mode: dataplane.mode,
            connected: busUp && !!nc && !nc.isClosed(),
            ...(refused !== undefined ? { connectionError: refused } : {}),
            ...(subscriptionRefused !== undefined ? { subscriptionError: subscriptionRefused } : {}),
            ...(session?.notReporting() !== undefined ? { reportError: session.notReporting() } : {}),
            applied: s?.applied,
            ...restartedWords(s),
            target: s?.target,
            lastError: s?.lastError ?? '',
            waitingFor: waitingFor(),
            verdict: s?.health ?? null,
            // target fields this release does not know (no failure: `ctl status` warns of them)
            unknownTargetFields: s?.unknownTargetFields ?? null,
            proxier: proxierHealth.verdict(),
            ...(healthChecks ? { healthCheckNodePorts: healthChecks.status() } : {}),
          };
        },
        live: () => {
          const why = wedged();
          return why === undefined ? { live: true, node: o.node } : { live: false, node: o.node, reason: why };
        },
        ready: () => {
          const s = session?.status();
          const w = waitingFor();
          const refused = refusal();
          const onTarget = isOnTarget(s?.applied, s?.target) && refused === undefined;
          // the planner's targets dropped (signed with a key this node does not trust, older than
          // one followed before): the target held is the last one taken, not the planner's, and
          // "on target" of it said 200 while the node followed nothing (probe16 I8)
          const dropping = w ? undefined : s?.dropping;
          // off the bus (connection lost, closed for good, session never started): not following
          // its target, whatever it ran last (probe18 D1)
          const off = w ? undefined : offBus();
          // its ACKs and heartbeats not sent: the planner cannot know it is on target (probe19 P19-2)
          const unsent = off ? undefined : session?.notReporting();
          // a refused subscription first: it is why a wait for the targets bucket gets no answer
          const reason = subscriptionRefused
            ? subscriptionRefused
            : w
              ? `waiting for ${w}`
              : refused !== undefined
                ? refused
                : off
                  ? `not following its target: ${off}`
                  : unsent !== undefined
                    ? `not reporting to the planner: ${unsent}`
                    : dropping !== undefined
                      ? dropping
                      : !onTarget
                        ? s?.lastError
                          ? `not on target: ${s.lastError}`
                          : 'applying the target'
                        : 'on target';
          const b = restartedWords(s).lastAckedBeforeStart;
          const restarted = b
            ? ` (restarted: last ACKed version ${b.version} config ${b.configRevision} before this start, not yet verified)`
            : '';
          return {
            ready:
              onTarget &&
              !w &&
              dropping === undefined &&
              !off &&
              subscriptionRefused === undefined &&
              unsent === undefined,
            node: o.node,
            reason: reason + restarted,
            waitingFor: w,
            applied: s?.applied,
            target: s?.target,
          };
        },
      })
    : undefined;
  undo.push(() => http?.close());
  if (http) log.info({ port: http.port }, 'http listening');
  const proxierServer = o.healthzBindAddress
    ? serveProxierHealth({
        address: o.healthzBindAddress,
        health: proxierHealth,
        onListening: (port) => log.info({ port }, 'proxier health (/healthz, /livez) listening'),
        onListenError: (error) => log.warn({ error }, 'proxier health server not listening; retrying in 5s'),
      })
    : undefined;
  undo.push(() => proxierServer?.close());
  await proxierServer?.started;

  let lastLogged = '';
  const connected = (async () => {
    const conn = await connectBusWaiting({
      servers,
      name: `switchboard-applier-${o.node}`,
      node: o.node,
      auth: o.auth,
      signal: abort.signal,
      maxBackoffMs: o.maxBackoffMs,
      onAuthFileProblem: (problem) => {
        if (problem !== undefined && problem !== credsFileProblem) log.warn({ credsFile: o.auth?.credsFile }, problem);
        credsFileProblem = problem;
      },
      ...(o.subscriptionRetry ? { subscriptionRetry: o.subscriptionRetry } : {}),
      onSubscriptionRefusal: (refusal) => {
        const before = subscriptionRefused;
        subscriptionRefused =
          refusal === undefined
            ? undefined
            : `NATS refuses a subscription of this node (${refusal}): target notices or the replies its reads use are lost, so it may keep an old target; the READERS account's or this node's user subscription limit is too low (an applier holds ${APPLIER_SUBSCRIPTIONS}); reconnecting to subscribe again`;
        if (subscriptionRefused === before) return;
        if (subscriptionRefused) log.warn(subscriptionRefused);
        else log.info('NATS takes every subscription of this node again');
        session?.setBusProblem(subscriptionRefused);
      },
      onWaiting: (what, attempt, retryInMs) => {
        waiting = what;
        metrics.observe({ type: 'connection', status: 'disconnect' });
        if (what !== lastLogged || attempt % 20 === 0)
          log.warn({ waitingFor: what, attempt, retryInMs }, 'waiting for NATS');
        lastLogged = what;
      },
    });
    nc = conn;
    busUp = true;
    void conn.closed().then((err) => {
      closedWhy = err ? err.message : 'closed';
    });
    metrics.observe({ type: 'connection', status: 'reconnect' });
    log.info({ server: conn.getServer(), mode: dataplane.mode }, 'connected to NATS');
    const verifier = o.verifier ?? (o.plannerKeyFile ? await waitForPlannerKey(o.plannerKeyFile) : undefined);
    // which keys a node trusts is what an operator checks during a key rotation (several: a bundle)
    if (verifier?.fingerprints) log.info({ plannerKeys: verifier.fingerprints }, 'trusting planner keys');
    waiting = 'targets bucket';
    const started = await ApplierSession.start({
      nc: conn,
      node: o.node,
      dataplane,
      heartbeatMs: o.heartbeatMs ?? 5000,
      onEvent,
      verifier,
      probe,
      probeIntervalMs: probeSettings.intervalMs,
      resyncIntervalMs: o.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS,
      warnings: () => warnings.list(),
      followedBefore,
      lastAckedBefore: before,
      knownFields: o.knownFields,
      ...(o.targetReadTimeoutMs !== undefined ? { targetReadTimeoutMs: o.targetReadTimeoutMs } : {}),
    });
    // a refusal of the session's first subscriptions arrives while it starts
    if (subscriptionRefused !== undefined) started.setBusProblem(subscriptionRefused);
    session = started;
    const w = session.status().waitingFor;
    if (w) log.warn({ waitingFor: w }, 'waiting for the planner');
    return conn;
  })();
  // The key file is written by the planner at its first start; until then (or while it is unreadable)
  // wait with capped backoff, like for NATS, and say so on /readyz.
  async function waitForPlannerKey(file: string): Promise<Verifier> {
    for (let attempt = 0, delay = 250; ; attempt++, delay = Math.min(delay * 2, 5000)) {
      try {
        return readVerifierFile(file);
      } catch (e) {
        waiting = `planner key ${file} (${(e as Error).message})`;
        if (attempt % 20 === 0) log.warn({ waitingFor: waiting }, 'waiting for the planner key');
      }
      // one abort listener per wait, removed with it (probe21 P21-3: one was left per retry)
      if (!(await sleepUnlessAborted(delay, abort.signal))) throw new Error('stopped');
    }
  }
  connected.catch((e) => {
    if (abort.signal.aborted) return;
    startFailed = (e as Error).message;
    log.error({ err: startFailed }, 'applier could not start its bus session; /livez answers 503 (restart it)');
  });

  return {
    session: () => session,
    dataplane,
    connected,
    httpPort: http?.port,
    proxierHealthPort: () => proxierServer?.port(),
    waitingFor,
    connection: () => nc,
    async stop() {
      abort.abort();
      gcAfterApply.stop();
      await connected.catch(() => undefined);
      await session?.stop();
      await http?.close();
      await proxierServer?.close();
      await healthChecks?.close();
      // A drain with NATS away waits for a server that is not there (~10 s of a pod's grace
      // period): there is nothing to flush then, so the connection is only closed.
      if (nc) await (busUp ? nc.drain() : nc.close()).catch(() => nc!.close());
      await dataplane.close(); // closes handles only; never cleanup(): fail-static
      nodeLock?.release();
      log.info('stopped; programmed state left in place');
    },
  };
}
