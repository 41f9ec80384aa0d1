import type { NatsConnection } from '@nats-io/transport-node';
import type { Server } from 'node:http';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  EventLog,
  fdUsage,
  fdWarning,
  logGrowth,
  logStorage,
  OnlineRetention,
  retentionStatus,
  type LogGrowth,
  type RetentionPolicy,
} from '../../libs/eventlog/index.ts';
import {
  ClusterInformer,
  KUBE_KINDS,
  ListPrefetch,
  ManifestsSource,
  kubeHttpFromConfig,
  loadKubeConfig,
  readClusterIdentity,
  type ClusterIdentity,
} from '../../libs/kube/index.ts';
import type { LabelSelector, ProxyConfig } from '../../libs/model/index.ts';
import type { NodeStatusThresholds } from '../../libs/control/index.ts';
import { watchTokenFile, type TokenFileWatch } from './bearer-auth.ts';
import { checkOpenApi, parseListenAddress } from './listen-address.ts';
import {
  informerSource,
  knownIdentitiesFromLog,
  knownObjectsFromLog,
  manifestsSource,
  withKnownObjects,
  type EventSourceFactory,
} from './event-source.ts';
import { createHttpApi } from './http-api.ts';
import { consoleRoutes } from '../console/console-routes.ts';
import { NatsPlannerBus } from './nats-planner-bus.ts';
import { hostname } from 'node:os';
import {
  atMost,
  checkGroupName,
  defaultSigningKeyFile,
  GroupMembers,
  LeaderLease,
  loadOrCreateSigningKey,
  ServerClock,
  streamLimitRefusal,
  consumerLimitRefusal,
  VERSIONS_STREAM,
} from '../../libs/bus/index.ts';
import { PlannerGroup, STOP_GRACE_MS } from './planner-group.ts';
import { clusterGuard, withoutSupersededResume } from './cluster-guard.ts';
import { createLogReplicator, logStreamName, versionAnchor, type LogReplicator } from '../../libs/eventlog/index.ts';
import {
  namingJetStreamSilence,
  retryTransient,
  watchConnectionRefusals,
  watchCredentialRefusals,
  type BusAuth,
  type CoreNats,
} from '../../libs/bus/index.ts';
import { Planner } from './planner.ts';
import { plannerMetrics } from './planner-metrics.ts';
import type { HeapWatch } from '../cli/heap-headroom.ts';

export interface RunPlannerOptions {
  readonly manifests?: string;
  readonly kubeconfig?: string;
  readonly inCluster?: boolean;
  readonly nats: string;
  readonly db: string;
  /** host:port; port 0 picks a free one. */
  readonly http: string;
  /**
   * The URL followers name in a write's redirect to this planner as leader (--advertise-url): one
   * the operator's ctl can reach, e.g. the pod's name under the headless Service on Kubernetes,
   * where the bare host name (the default for a wildcard --http) resolves nowhere (review5 F5).
   */
  readonly advertiseUrl?: string;
  readonly tokenFile?: string;
  /** Serve the API without tokens on a non-loopback address (refused otherwise). */
  readonly insecureOpenApi?: boolean;
  /** How often the token file's stat is polled for changes (default 1000 ms). */
  readonly tokenFilePollMs?: number;
  /** Where notes about the token file go (default stderr). */
  readonly say?: (line: string) => void;
  /**
   * This process's heap against its limit (the CLI's HeapWatch: one per process, which says its own
   * lines), shown on /status as `memory` and in the heap metrics; absent: null and 0.
   */
  readonly heap?: Pick<HeapWatch, 'reading' | 'warning'>;
  readonly config: ProxyConfig;
  readonly checkpointEvery?: number;
  /**
   * --retain-versions / --retain-age: the log's online retention (libs/eventlog online-retention.ts);
   * absent: the log keeps everything, as before.
   */
  readonly retain?: RetentionPolicy;
  /** How often retention runs (default 60 s; tests shorten it). */
  readonly retainEveryMs?: number;
  /** --versions-keep-checkpoints: checkpoints the versions stream keeps (default 2; 0: all). */
  readonly versionsKeepCheckpoints?: number;
  readonly debounceMs?: number;
  /** When a node is UNKNOWN / STALE (default DEFAULT_NODE_STATUS_THRESHOLDS; tests shorten it). */
  readonly statusThresholds?: NodeStatusThresholds;
  /** Rescan interval for --manifests (fs.watch can miss changes). */
  readonly pollMs?: number;
  /**
   * How often the leader checks its target keys, the versions stream's limits and what the stream
   * lost (NatsPlannerBusOptions.targetCheckMs; default 10 s; tests).
   */
  readonly targetCheckMs?: number;
  /** How often a follower rebuilds its view while the replicated log moves (PlannerGroupOptions.refreshMs; tests). */
  readonly followerRefreshMs?: number;
  /** --max-manifest-bytes: larger manifest files are refused. */
  readonly maxManifestBytes?: number;
  /** NATS credentials (user/password, creds or nkey seed file, TLS files). */
  readonly natsAuth?: BusAuth;
  /** Ed25519 private key (PEM), created when missing; default beside the log. FILE.pub = public key. */
  readonly signingKey?: string;
  /** Told each time a NATS connection attempt fails at start (the planner waits, never exits). */
  readonly onBusWaiting?: (what: string) => void;
  /** Longest wait between NATS connection attempts, at start and at reconnects (default 5 s; tests shorten it). */
  readonly busMaxBackoffMs?: number;
  /**
   * A follower behind the group's log whose copy has not moved for this long shows its node words
   * UNKNOWN "planner view stale" (PlannerGroupOptions.staleAfterMs; default 5 s; tests shorten it).
   */
  readonly followerStaleAfterMs?: number;
  /** Leader lease TTL on NATS (default 15 s): a silent leader is replaced within about this long. */
  readonly leaseTtlMs?: number;
  /** The planner group (default `switchboard`): planners of one group elect one leader. */
  readonly group?: string;
  /** This planner's name in its group (default: the hostname). */
  readonly id?: string;
  /** Copies of every stream and bucket in the NATS cluster (default 1). */
  readonly replicas?: number;
  /** How often the planner checks that --db still names the file it writes (default 2 s). */
  readonly logFileCheckMs?: number;
  /** How often the console's event stream proves it is alive when nothing changed (default 15 s). */
  readonly consoleKeepAliveMs?: number;
  /** --node-selector: the Nodes Switchboard proxies (they run an applier); absent: every Node. */
  readonly nodeSelector?: LabelSelector;
  /**
   * --relist: this process's first Kubernetes source ignores the resourceVersions the log saved,
   * lists every kind afresh and logs every listed object (after an etcd restore, docs/sources.md).
   */
  readonly relist?: boolean;
  /** --adopt-cluster: lead (and record this cluster) even when the group's log belongs to another. */
  readonly adoptCluster?: boolean;
  /** Follow a group log stream made again after this file's rows were written though it holds less: those rows are dropped (probe13 R4). */
  readonly acceptTruncation?: boolean;
  /** How long reading the cluster's identity at start retries no answer, 429 and 5xx (default 30 s). */
  readonly clusterIdentityRetryMs?: number;
  /**
   * Start the first LIST of each kind the log holds no resume point for while NATS answers (the
   * lease, the claim), before this planner knows it leads (default true; libs/kube
   * list-prefetch.ts): pages become events only in a leader's informer; a follower drops them.
   */
  readonly listBeforeLeading?: boolean;
}

export interface RunningPlanner {
  /** The Planner acting now (a follower's read-only view, or the leader's). */
  readonly planner: Planner;
  readonly group: PlannerGroup;
  readonly url: string;
  stop(): Promise<void>;
}

/** Builds the real planner: SQLite log, NATS bus, kube or manifests source, HTTP API. */
export async function runPlanner(o: RunPlannerOptions): Promise<RunningPlanner> {
  const listen = parseListenAddress(o.http);
  checkOpenApi(listen, o);
  const say = o.say ?? ((line: string) => process.stderr.write(`planner: ${line}\n`));
  // Part of the planner's configuration an operator must be able to see afterwards: said at start
  // (and on /status as nodeSelector, on each outside node's row as its reason).
  if (o.nodeSelector?.text)
    say(
      `fleet: Nodes matching --node-selector '${o.nodeSelector.text}' (others are in no rollout wave and no ctl wait)`,
    );
  const tokens: TokenFileWatch | undefined = o.tokenFile
    ? watchTokenFile(o.tokenFile, { intervalMs: o.tokenFilePollMs, say })
    : undefined;
  // Writes only when ready: the API address is bound before the log is opened, so a busy or
  // unusable address stops the planner before it appends, publishes or moves any target.
  let group: PlannerGroup | undefined;
  const current = () => group?.planner();
  /** The line said for a subscription NATS refuses, until a reconnect draws no refusal. */
  let subscriptionRefusal: string | undefined;
  const metrics = plannerMetrics({
    heap: () => o.heap?.reading,
    sourceProblem: () => current()?.sourceProblem(),
    group: () => group?.view(),
    nodes: () => current()?.status(),
  });
  let serving = false;
  let busWaitingFor: string | undefined; // what the last try to reach NATS met, said in /readyz until serving
  // The API's /status, its redirect of writes and the console all show the group from this one view.
  const groupView = () => (group ? { ...group.view(), planners: members?.list() ?? [] } : undefined);
  // Stamps and ages go by the NATS server's clock where this host's differs by more than 30 s (probe12 L1–L3).
  const clock = new ServerClock();
  const server: Server = createHttpApi({
    // Before the planner exists (restoring its log, waiting for NATS): not synced, nothing failing yet.
    planner: lateBound(current, {
      isSynced: false,
      sourceProblem: () => undefined,
      failure: () => undefined,
      failingFor: () => undefined,
    }),
    group: groupView,
    registry: metrics.registry,
    say,
    tokens: tokens && (() => tokens.current()),
    tokensRevoked: tokens && (() => tokens.revoked()),
    loopbackOnly: !tokens && listen.loopback,
    started: () => serving,
    waitingFor: () => busWaitingFor,
    subscriptionRefusal: () => subscriptionRefusal, // /readyz 503 while NATS refuses one (probe19)
    storage: () => {
      const s = log && logStorage(log.file);
      // fileProblem: the file deleted, replaced or unusable (probe8 D1/D2); slowWrites: probe8 S1
      return s && { ...s, growth: growth(), fileProblem: log.fileProblem() ?? null, slowWrites: log.slowWrites() };
    },
    memory: () => {
      const r = o.heap?.reading;
      return r && { ...r, warning: o.heap?.warning ?? null };
    },
    // a planner without a policy still says what its file keeps (a `db compact` shows there)
    retention: () => retention?.status() ?? (log ? retentionStatus(log, null) : undefined),
    clock: {
      now: () => clock.now(),
      status: () => ({
        offsetMs: ((ms) => (ms === undefined ? null : Math.round(ms)))(clock.offsetMs()),
        correctedMs: Math.round(clock.correctionMs()),
        warning: clock.describe() ?? null,
      }),
    },
    // The console's data routes run only once serving (non-public routes answer 503 before).
    routes: consoleRoutes({
      planner: () => current()!,
      log: () => log,
      group: groupView,
      keepAliveMs: o.consoleKeepAliveMs,
    }),
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // "0.0.0.0" is every address of every family, as Go's is (kube-proxy, nats-server): node's
      // is IPv4 only, and the kubelet probes a pod's first IP, IPv6 on an IPv6-first cluster (probe18 D5)
      server.listen(listen.port, listen.host === '0.0.0.0' ? undefined : listen.host, resolve);
    });
  } catch (e) {
    tokens?.close();
    throw new Error(`--http ${o.http}: cannot listen: ${(e as Error).message}`);
  }
  // A Kubernetes source's cluster, read before the log is opened: a planner that cannot tell which
  // cluster it watches must not join a group (cluster-guard.ts). A kubeconfig that cannot be loaded
  // (the CLI refuses it up front) fails the source when this planner leads, as before (review5 F7).
  let kubeConfig: KubeConfig | Error | undefined;
  if (o.manifests === undefined)
    try {
      kubeConfig = await loadKubeConfig({ kubeconfig: o.kubeconfig, inCluster: o.inCluster });
    } catch (e) {
      kubeConfig = e as Error;
    }
  let cluster: ClusterIdentity | undefined;
  try {
    if (kubeConfig && !(kubeConfig instanceof Error))
      cluster = await readCluster(kubeConfig, say, o.clusterIdentityRetryMs);
  } catch (e) {
    server.close();
    tokens?.close();
    throw e;
  }
  let log: EventLog;
  let retention: OnlineRetention | undefined;
  // /status may be polled often: the growth figure (a few thousand rows read) is kept 30 s
  let grown: { at: number; value: LogGrowth } | undefined;
  const growth = (): LogGrowth | undefined => {
    if (!log) return undefined;
    if (!grown || performance.now() - grown.at > 30_000) grown = { at: performance.now(), value: logGrowth(log) };
    return grown.value;
  };
  try {
    log = await EventLog.open({ file: o.db, writer: 'a planner', say, now: () => clock.now() });
    if (log.migrated.length > 0) say(`event log migrated: ${log.migrated.join(', ')}`);
    metrics.attach({ storage: () => logStorage(log.file), retained: () => retentionStatus(log, null) });
  } catch (e) {
    server.close();
    tokens?.close();
    throw e;
  }
  let relistPending = o.relist === true;
  // Listing while NATS answers (issue 15 item 4, thirteenth round): the kinds this planner's first
  // informer would list afresh (no resume point in the log, or --relist) are fetched ahead; only
  // the first leader Planner's informer reads them (one whose claim brought resume points watches
  // instead, and those kinds' pages are dropped); a planner that follows drops them.
  let prefetch: ListPrefetch | undefined;
  if (kubeConfig && !(kubeConfig instanceof Error) && o.listBeforeLeading !== false) {
    const resume = withoutSupersededResume(log.resumeStore(), log);
    const kinds = KUBE_KINDS.filter((k) => relistPending || !resume.load(k));
    if (kinds.length > 0) prefetch = new ListPrefetch(kubeHttpFromConfig(kubeConfig), { kinds });
  }
  const dropPrefetch = () => {
    prefetch?.drop();
    prefetch = undefined;
  };
  let bus: NatsPlannerBus | undefined;
  let lease: LeaderLease | undefined;
  let members: GroupMembers | undefined;
  let replicator: LogReplicator | undefined;
  const groupName = checkGroupName(o.group ?? 'switchboard');
  const id = o.id ?? hostname();
  const { host } = listen;
  const addr = server.address() as { port: number };
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  // What followers name in a redirect: a wildcard listen address is reached by the host's name.
  const api =
    o.advertiseUrl?.replace(/\/+$/, '') ??
    (['0.0.0.0', '::', ''].includes(host) ? `http://${hostname()}:${addr.port}` : url);
  try {
    const signer = loadOrCreateSigningKey(o.signingKey ?? defaultSigningKeyFile(o.db), {
      say,
      logHasVersions: log.latestVersion() !== undefined,
    });
    bus = await startupStep(
      'connecting to NATS and opening the versions stream and targets bucket',
      () =>
        NatsPlannerBus.open({
          url: o.nats,
          auth: o.natsAuth,
          signer,
          group: groupName,
          anchorOf: (v) => versionAnchor(log, v),
          keepCheckpoints: o.versionsKeepCheckpoints ?? 2,
          maxBackoffMs: o.busMaxBackoffMs,
          targetCheckMs: o.targetCheckMs,
          onWaiting: (what) => {
            busWaitingFor = what;
            o.onBusWaiting?.(what);
          },
          onSubscriptionRefusal: (refusal) => {
            subscriptionRefusal = saySubscriptionRefusal(refusal, subscriptionRefusal, say, () => current());
          },
          replicas: o.replicas,
          mayWrite: () =>
            lease?.isLeader() && group?.role() === 'leader' ? undefined : 'this planner does not lead its group',
          // each chunk and delta of a version: the lease alone (a claim appends before the role is leader)
          mayAppend: () => (lease && !lease.isLeader() ? 'this planner no longer holds its lease' : undefined),
          // the group's log holds every row a version or target names before that goes on the bus
          beforeWrite: () => replicator?.flush() ?? Promise.resolve(),
          onTargetRestored: (key, revision) =>
            say(
              `target ${key === 'default' ? 'default (every node)' : `for node ${key.slice('node.'.length)}`} ${revision === 0 ? 'was purged from the targets bucket by someone else' : `was overwritten by someone else (revision ${revision})`}; restored`,
            ),
          onLimitsReset: say,
        }),
      { say },
    );
    const nc = bus.connection();
    sayCredentialRefusals(nc, o.natsAuth?.credsFile, say, () => current());
    sayConnectionRefusals(nc, say, () => current());
    metrics.attach({ streams: { nc: () => nc, names: () => [VERSIONS_STREAM, logStreamName(groupName)] } });
    // A flush that cannot reach the group gives up within half a lease TTL: a leader never blocks
    // longer than it may act (its lease runs out at 3/4 TTL without renewals anyway).
    replicator = await startupStep(
      `opening the group's replicated log (${groupName})`,
      () =>
        createLogReplicator({
          log,
          nc,
          group: groupName,
          replicas: o.replicas ?? 1,
          id,
          logger: say,
          // batches and term markers signed and checked with the group's key (probe10 H11)
          signer,
          // a new stream (NATS lost its store) holding less than this file: refused unless asked (probe13 R4)
          ...(o.acceptTruncation ? { acceptTruncation: true } : {}),
          appendTimeoutMs: Math.floor((o.leaseTtlMs ?? 15_000) / 2),
          // Under a retention policy the file stays small, and snapshots are spaced by the rows it
          // holds: a small floor lets the stream (one to two spacings) follow the policy instead of
          // keeping 50,000 rows or more whatever it keeps (probe9 J3; docs/ha.md).
          ...(o.retain ? { snapshotEveryRows: SNAPSHOT_FLOOR_UNDER_RETENTION } : {}),
        }),
      { say, nc },
    );
    lease = await startupStep(
      `opening the group's leader lease (${groupName})`,
      () =>
        LeaderLease.open({
          nc,
          group: groupName,
          id,
          ttlMs: o.leaseTtlMs,
          replicas: o.replicas,
          api,
          // the record is signed, and only signed records name a leader (probe10 H4)
          signer,
          // the newest term this file's log of this group knows (signed markers): a copy of an older
          // record of this planner's own dead run is not taken back at once after a restart
          knownTerm: ((m) => (m?.stream === logStreamName(groupName) ? m.term : 0))(log.replicationMark()),
          onElected: (term) => group?.elected(term),
          onDeposed: (why) => group?.deposed(why),
          onTrouble: say,
          onLimitsReset: say,
        }),
      { say, nc },
    );
    // Sources start from the objects the log holds (read when the planner makes the source, after it restored).
    const source: EventSourceFactory = o.manifests
      ? (sink, hooks) =>
          manifestsSource(
            (m) =>
              new ManifestsSource({
                dir: o.manifests!,
                ...m,
                known: knownObjectsFromLog(log),
                pollIntervalMs: o.pollMs ?? 2000,
                debounceMs: 20,
                maxManifestBytes: o.maxManifestBytes,
              }),
            sink,
            hooks,
          )
      : (sink) => {
          if (kubeConfig === undefined || kubeConfig instanceof Error) throw kubeConfig;
          // The informer resumes from the resourceVersions the log saved after each appended event.
          // Not those of the cluster the log belonged to before an --adopt-cluster (cluster-guard.ts).
          const resumeStore = withKnownObjects(
            withoutSupersededResume(log.resumeStore(), log),
            knownIdentitiesFromLog(log), // its informer remembers identities only
          );
          // --relist: once per process (a later leadership term resumes as usual).
          const freshList = relistPending;
          relistPending = false;
          if (freshList) say('--relist: listing every kind afresh, not resuming from the log');
          // The first leader's informer reads the pages listed ahead (once: a later term lists anew).
          const http = prefetch?.http();
          prefetch = undefined;
          // The planner keeps the objects in its ClusterState: its informer remembers identities only.
          return informerSource(
            new ClusterInformer({ kubeConfig, http, sink, resumeStore, identityOnly: true, freshList }),
          );
        };
    const b = bus;
    const makePlanner = (role: 'leader' | 'follower') =>
      new Planner({
        log,
        bus: b,
        source,
        initialConfig: o.config,
        checkpointEvery: o.checkpointEvery,
        debounceMs: o.debounceMs,
        statusThresholds: o.statusThresholds,
        nodeSelector: o.nodeSelector,
        hooks: {
          ...metrics.hooks,
          onNote: say,
          // a failure was only in /status, lastError and a counter: `kubectl logs` showed a planner
          // with a mistyped --manifests, or a NATS refusing its publishes, as a healthy one
          onStepFailure: (c) =>
            say(
              c.failing !== undefined
                ? `${c.where} failing: ${c.failing} (retried; /status shows it while it lasts)`
                : `${c.where} works again (it failed for ${(c.failedForMs / 1000).toFixed(1)} s)`,
            ),
        },
        role,
        now: () => clock.now(),
        // an operation is answered once the group's log holds it (review2 R4)
        commit: () => replicator?.flush() ?? Promise.resolve(),
        // gate decisions name the planner and term that took them (probe24 F2)
        decider: () => (lease ? { planner: id, term: lease.term() } : undefined),
      });
    const g = new PlannerGroup({
      group: groupName,
      id,
      bus,
      lease,
      replicator,
      makePlanner,
      say,
      refreshMs: o.followerRefreshMs,
      staleAfterMs: o.followerStaleAfterMs,
      onRoleChange: () => void members?.beat(),
      cluster: cluster && clusterGuard(log, cluster, { group: groupName, id, adopt: o.adoptCluster }),
    });
    group = g;
    await g.start();
    const ttlMs = lease.ttlMs;
    members = await startupStep(
      `opening the group's member list (${groupName})`,
      () =>
        GroupMembers.open({
          nc,
          group: groupName,
          ttlMs,
          replicas: o.replicas,
          self: () => g.member(api),
          clock,
          onLimitsReset: say,
        }),
      { say, nc },
    );
    // the offset to the server's clock is known before this planner can lead (and stamp); a NATS
    // slow to answer delays the start by at most 2 s (the next beat, TTL/4 on, measures it then)
    await atMost(members.beat(), 2000);
    const skew = clock.describe();
    if (skew) say(skew);
    members.start();
    await lease.start();
    await g.settled(); // a lone planner (or one taking its own lease back) is the leader when this returns
    // not leading now: what was listed ahead is never read (a later term lists anew)
    if (g.role() !== 'leader') dropPrefetch();
    serving = true;
    // Online retention (review4 G8): in this process, which holds the file's writer lock, leading or
    // following; never past what the group's log acknowledged (the mark), nor a floor of the planner's.
    if (o.retain) {
      retention = new OnlineRetention({
        log,
        policy: o.retain,
        intervalMs: o.retainEveryMs,
        // ages by the group's time: a clock ahead at start removed versions inside the window (probe12 L3)
        now: () => clock.now(),
        monoNow: () => performance.now(),
        say,
        onRemoved: (table, n) => metrics.rowsCompacted.inc({ table }, n),
        bounds: () => {
          const p = g.planner();
          if (!p?.isSynced) return undefined; // not holding the group's log yet
          return {
            floors: p.retentionFloors(),
            acknowledged: log.replicationMark()?.position ?? null,
            clusterHas: (node) => p.data.publishedData().node(node) !== undefined,
          };
        },
      });
      retention.start();
      say(
        `retention: keeping ${[
          o.retain.versions !== undefined ? `the newest ${o.retain.versions} versions` : '',
          o.retain.ageMs !== undefined ? `every version of the last ${Math.round(o.retain.ageMs / 60_000)} min` : '',
        ]
          .filter(Boolean)
          .join(' and ')} (and what a pin, a node or the group's log still needs)`,
      );
    }
    // A --db deleted or replaced under us: shown (lastError, /readyz) and said once, until it is back.
    // Little disk left (review4 G8): said when it starts and when it ends (/status shows it meanwhile).
    // So are file descriptors near RLIMIT_NOFILE (probe8 F1: EMFILE broke NATS, watches and the log).
    let fileSaid: string | undefined;
    let lowDisk = false;
    let fdsLow = false;
    let leftElections = false;
    const fileCheck = setInterval(() => {
      const low = logStorage(log.file)?.warning;
      if ((low !== undefined) !== lowDisk)
        say(
          (lowDisk = low !== undefined)
            ? `warning: ${low}`
            : 'disk space for the event log is back above the warning threshold',
        );
      const fds = fdUsage();
      const fdLine = fds && fdWarning(fds);
      if ((fdLine !== undefined) !== fdsLow)
        say(
          (fdsLow = fdLine !== undefined)
            ? `warning: ${fdLine}`
            : 'open file descriptors are back below 95 % of the limit',
        );
      const problem = log.fileProblem();
      const p = g.planner();
      if (problem === undefined) {
        fileSaid = undefined;
        p?.noteRecovered('log file');
        return;
      }
      if (fileSaid !== problem) say((fileSaid = problem));
      if (p && p.failure('log file') === undefined) p.noteFailure('log file', problem);
      // An unusable log (probe8 D1/D2) stays so until a restart: a leader hands the group to a
      // replica with a sound file, and this planner never stands again (as a wrong cluster's).
      if (log.unusable !== undefined && !leftElections) {
        leftElections = true;
        void lease?.stepDown(`log file: ${log.unusable}`, Number.POSITIVE_INFINITY);
      }
    }, o.logFileCheckMs ?? 2000);
    fileCheck.unref();
    const s = server;
    const l = lease;
    const m = members;
    const r = replicator;
    return {
      get planner() {
        return g.planner()!;
      },
      group: g,
      url,
      stop: async () => {
        clearInterval(fileCheck);
        dropPrefetch();
        await retention?.stop(); // between two of its steps: what it removed stays removed, consistently
        tokens?.close();
        await new Promise<void>((r) => {
          s.close(() => r());
          s.closeAllConnections();
        });
        // Each step that needs NATS waits for it at most about a second (STOP_GRACE_MS): a
        // planner cut off from NATS still exits on SIGTERM at once; what it committed is in its file.
        const until = performance.now() + STOP_GRACE_MS;
        const left = () => Math.max(0, until - performance.now());
        await g.stop(STOP_GRACE_MS);
        await Promise.all([m.close(left()), l.close(left())]);
        await atMost(
          r.close().catch((e: Error) => say(`replicated log close: ${e.message}`)),
          left(),
        );
        await b.close(left());
        log.close();
      },
    };
  } catch (e) {
    dropPrefetch();
    server.close();
    await group?.stop().catch(() => {});
    await members?.close().catch(() => {});
    await lease?.close().catch(() => {});
    await replicator?.close().catch(() => {});
    await bus?.close().catch(() => {});
    log.close();
    tokens?.close();
    throw e;
  }
}

/** Reads the kube-system Namespace's uid once; every failure names the step. */
async function readCluster(kc: KubeConfig, say: (line: string) => void, retryMs?: number): Promise<ClusterIdentity> {
  const server = kc.getCurrentCluster()!.server;
  const step = `reading the cluster's identity (the kube-system Namespace) from ${server}`;
  try {
    return await readClusterIdentity(kubeHttpFromConfig(kc), {
      server,
      withinMs: retryMs,
      onRetry: (why, attempt) => say(`${step}: ${why} (attempt ${attempt}); retrying`),
    });
  } catch (e) {
    throw new Error(`${step}: ${(e as Error).message}`);
  }
}

/**
 * The fewest rows between two snapshots of the group's log under --retain-*: each snapshot costs
 * what the file holds, spaced at least that far apart anyway; this only keeps a nearly empty log
 * from snapshotting at every flush.
 */
export const SNAPSHOT_FLOOR_UNDER_RETENTION = 1_000;

/** How long a startup step keeps retrying a transient JetStream failure before the planner exits. */
export const STARTUP_RETRY_MS = 30_000;

/**
 * Runs one startup step so that its failure names the step: nats.js reports a JetStream request
 * that got no answer as a bare "timeout", which alone does not tell an operator what to look at.
 * A transient failure (no answer, no responders, "temporarily unavailable": a freshly formed
 * cluster still electing its meta leader, or another planner creating the same stream at the same
 * instant) is retried with backoff for up to `retryMs`, each retry said; every step is an
 * idempotent open-or-create that releases what a failed attempt took. Flag errors (messages that
 * start with the flag) keep their text. With `nc` (the connection the step uses), an unanswered
 * request whose server still answers core NATS says `JetStream not answering on HOST:PORT while
 * core NATS does` (probe8 J2), not a bare "timeout".
 */
export async function startupStep<T>(
  step: string,
  run: () => Promise<T>,
  o: { say?: (line: string) => void; retryMs?: number; nc?: CoreNats } = {},
): Promise<T> {
  const named = o.nc ? (e: unknown) => namingJetStreamSilence(e, o.nc!) : async (e: unknown) => e;
  try {
    return await retryTransient(async () => run().catch(async (e: unknown) => Promise.reject(await named(e))), {
      withinMs: o.retryMs ?? STARTUP_RETRY_MS,
      onRetry: (e, attempt) => o.say?.(`${step}: ${e.message} (attempt ${attempt}); retrying`),
    });
  } catch (e) {
    // the account's stream limit: which limit and what to do, not the server's bare words (P19-4)
    const limit = streamLimitRefusal(e) ?? consumerLimitRefusal(e);
    if (e instanceof Error && !e.message.startsWith('--')) e.message = `${step}: ${limit ?? e.message}`;
    throw e;
  }
}

/**
 * The planner as the API sees it while it is being built: `before` answers until it exists (the
 * API lets only the probes through until then), afterwards every member is the planner's own.
 */
function lateBound<T extends object>(get: () => T | undefined, before: Partial<T>): T {
  return new Proxy({} as T, {
    get: (_t, k) => {
      const target = get();
      if (!target) return (before as Record<PropertyKey, unknown>)[k];
      const v = Reflect.get(target, k) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * NATS refusing the planner's connection while it is away for a limit (the server's or its
 * account's connection limit): said once per cause and kept in lastError until it is back;
 * before, only "disconnected from NATS" (probe19 P19-3).
 */
function sayConnectionRefusals(
  nc: NatsConnection,
  say: (line: string) => void,
  current: () => { noteFailure(where: string, err: unknown): void; noteRecovered(where: string): void } | undefined,
): void {
  let said: string | undefined;
  watchConnectionRefusals(nc, (error) => {
    if (error === undefined) {
      if (said !== undefined) say("NATS takes this planner's connection again");
      said = undefined;
      current()?.noteRecovered('nats connection');
      return;
    }
    const line = `NATS refuses this planner's connection (${error}): it cannot lead or follow; retrying`;
    if (line !== said) say(line);
    said = line;
    current()?.noteFailure('nats connection', line);
  });
}

/**
 * NATS refusing a subscription of the planner's connection (its account's or user's subscription
 * limit): the ACK and heartbeat subscriptions among them left every node UNKNOWN "never heard from"
 * with lastError null (probe19 P19-1). Said on stderr and kept in lastError until a reconnect (the
 * bus makes one, backing off) draws no refusal.
 */
function saySubscriptionRefusal(
  refusal: string | undefined,
  said: string | undefined,
  say: (line: string) => void,
  current: () => { noteFailure(where: string, err: unknown): void; noteRecovered(where: string): void } | undefined,
): string | undefined {
  if (refusal === undefined) {
    if (said !== undefined) say('NATS takes every subscription of this planner again');
    current()?.noteRecovered('nats subscriptions');
    return undefined;
  }
  const line = `NATS refuses a subscription of this planner (${refusal}): it may not hear node reports (ACKs, heartbeats) or its group; the SWITCHBOARD account's or the planner user's subscription limit is too low (docs/operations.md, "NATS limits"); reconnecting to subscribe again`;
  if (line !== said) say(line);
  // again at each refusal (the bus retries, backing off): the planner acting then may be a new one
  current()?.noteFailure('nats subscriptions', line);
  return line;
}

/**
 * NATS refusing the planner's own credential (expired, revoked, a new resolver after the keys
 * were rotated) is said once per cause on stderr and kept in lastError (`nats: NATS refuses this
 * planner's credential (…)`) until the connection is back. Before, the planner said only
 * "disconnected from NATS" and "lease renewal failed: timeout" (probe16 I7); the client now
 * retries such a refusal (connectBus), reading the .creds file again at each try.
 */
function sayCredentialRefusals(
  nc: NatsConnection,
  credsFile: string | undefined,
  say: (line: string) => void,
  current: () => { noteFailure(where: string, err: unknown): void; noteRecovered(where: string): void } | undefined,
): void {
  let said: string | undefined;
  watchCredentialRefusals(nc, (error) => {
    if (error === undefined) {
      say("NATS takes this planner's credential again");
      said = undefined;
      current()?.noteRecovered('nats');
      return;
    }
    const line = `NATS refuses this planner's credential (${error}): it cannot lead or follow; retrying${credsFile ? ` with ${credsFile} as it is at each try` : ''}`;
    if (line !== said) say(line);
    said = line;
    current()?.noteFailure('nats', line);
  });
}
