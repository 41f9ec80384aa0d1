import { readFileSync, writeFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import type { Command } from 'commander';
import type { JSONWebKeySet } from 'jose';
import type { NatsConnection } from '@nats-io/transport-node';
import { listenHttpOn, parseListenAddresses } from '../../applier/http-endpoint.ts';
import { UsageError } from '../cli-errors.ts';
import { inputFile } from '../flag-values.ts';
import { refuseFlags } from '../flag-rules.ts';
import { untilSignalThenStop } from '../graceful-stop.ts';
import type { SetExit } from './index.ts';

/**
 * Per-node NATS credentials (docs/install.md, "Per-node NATS credentials"):
 *   credentials init   make the account keys and print the per-install Kubernetes Secrets
 *   credentials rotate-readers-key   a new signing key for node and observer credentials, all else kept
 *   credentials mint   print one .creds file (a node, or a fixed role) from saved account keys
 *   credentials serve  the issuer: node credentials for appliers that prove their node
 *   credentials fetch  the node side: keep this node's .creds file fresh
 * Heavy modules load inside the actions, so other commands do not pay for them.
 */
/** The text of an Ed25519 public key file (PEM), or a usage error naming the flag and what is wrong. */
function plannerPublicKeyIn(file: string): string {
  const text = readFileSync(file, 'utf8');
  let type: string | undefined;
  try {
    type = createPublicKey(text).asymmetricKeyType;
  } catch (e) {
    throw new UsageError(`--keep-planner-key-pub ${file}: not a public key in PEM (${(e as Error).message})`);
  }
  if (type !== 'ed25519')
    throw new UsageError(`--keep-planner-key-pub ${file}: a ${type} key; the planner signs with Ed25519`);
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** The text of an API token file the planner accepts, or a usage error naming its first bad line. */
async function apiTokensIn(file: string): Promise<string> {
  const { parseTokenFile } = await import('../../planner/bearer-auth.ts');
  const text = readFileSync(file, 'utf8');
  try {
    parseTokenFile(text, file);
  } catch (e) {
    throw new UsageError(`--keep-api-tokens ${(e as Error).message}`);
  }
  return text;
}

export function registerCredentials(program: Command, setExit: SetExit): void {
  const cmd = program
    .command('credentials')
    .description('per-node NATS credentials: init, rotate-readers-key, mint, serve (issuer), fetch (node side)');

  cmd
    .command('init')
    .description('make NATS account keys and print the per-install Secrets for deploy/kubernetes (YAML on stdout)')
    .option('--namespace <ns>', 'namespace of the Secrets', 'switchboard')
    .requiredOption('--keys-out <file>', 'where to save the account keys (keep offline; `credentials mint` needs them)')
    .option(
      '--keep-planner-key-pub <file>',
      "rotating the NATS keys only: the planner's public signing key in force (planner.key.pub); no new signing key Secret",
      inputFile,
    )
    .option(
      '--keep-api-tokens <file>',
      "rotating the NATS keys only: the planner's API token file in force (api-tokens), kept as it is",
      inputFile,
    )
    .action(async (o: { namespace: string; keysOut: string; keepPlannerKeyPub?: string; keepApiTokens?: string }) => {
      const { generateAccountKeys } = await import('../../../libs/nodecreds/index.ts');
      const { renderInstallSecrets } = await import('../../../libs/nodecreds/index.ts');
      // checked before any key is made or written: a wrong file must leave nothing behind
      const keep = {
        plannerKeyPub: o.keepPlannerKeyPub === undefined ? undefined : plannerPublicKeyIn(o.keepPlannerKeyPub),
        apiTokens: o.keepApiTokens === undefined ? undefined : await apiTokensIn(o.keepApiTokens),
      };
      const keys = generateAccountKeys();
      writeNewKeysFile(o.keysOut, keys);
      process.stdout.write(await renderInstallSecrets({ namespace: o.namespace, keys, keep }));
      setExit(0);
    });

  cmd
    .command('rotate-readers-key')
    .description(
      "make the readers account's signing key (the issuer's) anew, all else kept; print the resolver and issuer Secrets (YAML on stdout)",
    )
    .option('--namespace <ns>', 'namespace of the Secrets', 'switchboard')
    .requiredOption('--keys <file>', 'account keys in force, saved by `credentials init`', inputFile)
    .requiredOption('--keys-out <file>', 'where to save the account keys with the new signing key (keep offline)')
    .action(async (o: { namespace: string; keys: string; keysOut: string }) => {
      const { renderReadersKeyRotation, withNewReadersSigningKey } = await import('../../../libs/nodecreds/index.ts');
      const keys = withNewReadersSigningKey(readKeys(o.keys, ALL_KEY_FIELDS));
      // rendered before the keys file is written: nothing is left behind if it fails
      const yaml = await renderReadersKeyRotation({ namespace: o.namespace, keys }).catch((e: Error) => {
        throw new UsageError(`--keys ${o.keys}: ${e.message}`); // a seed that is not one
      });
      writeNewKeysFile(o.keysOut, keys);
      process.stdout.write(yaml);
      setExit(0);
    });

  cmd
    .command('mint')
    .description(
      'print a .creds file from saved account keys: --node NAME (expiring) or --role planner|observer|issuer|bootstrap',
    )
    .requiredOption('--keys <file>', 'account keys saved by `credentials init`', inputFile)
    .option('--node <name>', 'a node credential: may ACK only as this node')
    .option('--role <role>', 'a fixed role: planner, observer, issuer, bootstrap')
    .option('--ttl <seconds>', 'lifetime of a node credential', '86400')
    .action(async (o: { keys: string; node?: string; role?: string; ttl: string }, cmd: Command) => {
      const { mintNodeCreds, mintRoleCreds } = await import('../../../libs/nodecreds/index.ts');
      if (!!o.node === !!o.role) throw new UsageError('give exactly one of --node NAME, --role ROLE');
      if (o.role) refuseFlags(cmd, ['--ttl'], 'credentials mint --role', 'only a node credential expires');
      const ttl = Number(o.ttl);
      if (!Number.isInteger(ttl) || ttl <= 0) throw new UsageError('--ttl must be whole seconds > 0');
      const keys = readKeys(o.keys, MINT_KEY_FIELDS);
      if (o.role && !['planner', 'observer', 'issuer', 'bootstrap'].includes(o.role))
        throw new UsageError(`--role must be planner, observer, issuer or bootstrap, not ${JSON.stringify(o.role)}`);
      process.stdout.write(
        o.node ? await mintNodeCreds(keys, o.node, ttl) : await mintRoleCreds(keys, o.role as 'planner'),
      );
      setExit(0);
    });

  cmd
    .command('serve')
    .description('answer node credential requests on NATS (runs beside each planner)')
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
    .requiredOption('--nats-creds <file>', "the issuer's own .creds (role issuer)", inputFile)
    .requiredOption('--account-signing-key <file>', "the readers account's signing key seed (SA...)", inputFile)
    .requiredOption('--account-public-key <file>', "the readers account's public key (A...)", inputFile)
    .option('--in-cluster', 'check tokens and Nodes with the pod service account')
    .option('--kubeconfig <file>', 'check Nodes through this kubeconfig', inputFile)
    .option(
      '--jwks-file <file>',
      "the API server's service-account keys (JWK set) instead of fetching /openid/v1/jwks",
      inputFile,
    )
    .option('--audience <aud>', "audience of the appliers' projected tokens", 'switchboard-credentials')
    .option('--token-issuer <iss>', 'expected issuer (iss) of the tokens')
    .requiredOption('--service-account <ns:name>', "the appliers' service account")
    .option('--ttl <seconds>', 'lifetime of a node credential', '3600')
    .option('--http <addr>', '/healthz and /readyz address (host:port)')
    .action(
      async (o: {
        nats: string;
        natsCreds: string;
        accountSigningKey: string;
        accountPublicKey: string;
        inCluster?: boolean;
        kubeconfig?: string;
        jwksFile?: string;
        audience: string;
        tokenIssuer?: string;
        serviceAccount: string;
        ttl: string;
        http?: string;
      }) => {
        if (!!o.inCluster === !!o.kubeconfig)
          throw new UsageError('choose exactly one of --in-cluster, --kubeconfig FILE');
        if (!/^[a-z0-9-]+:[a-z0-9-.]+$/.test(o.serviceAccount))
          throw new UsageError(`--service-account must be NAMESPACE:NAME, not ${JSON.stringify(o.serviceAccount)}`);
        const ttl = Number(o.ttl);
        if (!Number.isInteger(ttl) || ttl < 60) throw new UsageError('--ttl must be whole seconds >= 60');
        const { loadKubeConfig } = await import('../../../libs/kube/index.ts');
        const { kubeHttpFromConfig } = await import('../../../libs/kube/index.ts');
        const { kubeJwks, nodeExists, IssuerClock } = await import('../../../libs/nodecreds/index.ts');
        const { serveCredentialRequests } = await import('../../../libs/nodecreds/index.ts');
        const { connectBusWaiting, watchCredentialRefusals } = await import('../../../libs/bus/index.ts');
        const http = kubeHttpFromConfig(await loadKubeConfig({ inCluster: o.inCluster, kubeconfig: o.kubeconfig }));
        const log = (l: string) => process.stderr.write(`${l}\n`);
        // stamp credentials by the API server's clock when this host's is off (probe12 L13)
        const clock = new IssuerClock(log);
        const fileJwks = o.jwksFile ? (JSON.parse(readFileSync(o.jwksFile, 'utf8')) as JSONWebKeySet) : undefined;
        // Health first, then NATS, waited for (probe18 D2): at install NATS comes up after the
        // planner pods start, and an issuer that exited crash-looped, keeping its pod (the
        // planner's) out of the planner Service for the kubelet's backoff. Alive while waiting,
        // ready once connected.
        // Refused by NATS (its Secret not updated after the keys were rotated, a revoked account),
        // the issuer answers no node: not ready, with the reason (before, probe16: 200, as the
        // client retries a refusal for ever and so never closes). Still alive: a restart reads
        // the same file, which each retry already reads again (docs/install.md "Probes").
        let nc: NatsConnection | undefined;
        let sub: { unsubscribe(): void } | undefined;
        let refused: string | undefined;
        let waitingFor = '';
        const abort = new AbortController();
        const sayWaiting = waitingLine('credential issuer', log);
        const server = o.http
          ? await healthServer(
              o.http,
              () => !nc?.isClosed(),
              () =>
                natsNotReady(
                  nc,
                  waitingFor,
                  refused,
                  (why) =>
                    `NATS refuses the issuer's credential (${why}); retrying with ${o.natsCreds} as it is at each try`,
                ),
            )
          : undefined;
        // after the health server: an API server that does not answer takes up to its 10 s timeout here
        await clock
          .learn(http)
          .catch((e: Error) => log(`credential issuer: cannot read the API server's clock yet: ${e.message}`));
        const stopped = untilSignalThenStop('credential issuer', async () => {
          abort.abort();
          sub?.unsubscribe();
          server?.close();
          await nc?.close();
        });
        nc = await connectBusWaiting({
          servers: o.nats.split(','),
          name: 'credential-issuer',
          auth: { credsFile: o.natsCreds },
          signal: abort.signal,
          onWaiting: (what, attempt) => {
            waitingFor = what;
            sayWaiting(what, attempt);
          },
        }).catch((e: Error) => {
          if (abort.signal.aborted) return undefined;
          throw e;
        });
        if (nc) {
          // said, not only retried: refused, the issuer answers no node (probe16)
          watchCredentialRefusals(nc, (why) => {
            refused = why;
            log(
              why === undefined
                ? "credential issuer: NATS takes the issuer's credential again"
                : `credential issuer: NATS refuses the issuer's credential (${why}); retrying with ${o.natsCreds} as it is at each try`,
            );
          });
          sub = serveCredentialRequests(nc, {
            // read at every request (probe16 I3): re-applied Secrets (a rotated readers signing key)
            // take effect in the mounted files; read once, the issuer minted with the old key, which
            // the NATS servers no longer accept, until its pod was deleted (planners are OnDelete)
            get accountPublicKey() {
              return readFileSync(o.accountPublicKey, 'utf8').trim();
            },
            get signingKeySeed() {
              return readFileSync(o.accountSigningKey, 'utf8').trim();
            },
            policy: { audience: o.audience, serviceAccount: o.serviceAccount, issuer: o.tokenIssuer },
            jwks: fileJwks ? async () => fileJwks : kubeJwks(http),
            nodeExists: (n) => nodeExists(http, n, clock),
            ttlSeconds: ttl,
            now: () => clock.now(),
            log,
          });
          await nc.flush();
          log(`credential issuer: answering on NATS${o.http ? `, health on ${o.http}` : ''}`);
        }
        setExit(await stopped);
      },
    );

  cmd
    .command('fetch')
    .description("keep this node's NATS credential fresh (runs beside the applier)")
    .requiredOption('--node <name>', "this node's name")
    .requiredOption('--nats <url>', 'NATS server URL(s), comma-separated')
    .requiredOption('--bootstrap-creds <file>', '.creds that may only ask the issuer', inputFile)
    .requiredOption('--token-file <file>', "this pod's projected service-account token", inputFile)
    .requiredOption('--out <file>', "where to write this node's .creds")
    .option('--once', 'fetch once and exit')
    .option(
      '--http <addr>',
      '/healthz and /readyz address (host:port, or [ip,ip]:port); /readyz is 200 once a credential is written',
    )
    .action(
      async (
        o: {
          node: string;
          nats: string;
          bootstrapCreds: string;
          tokenFile: string;
          out: string;
          once?: boolean;
          http?: string;
        },
        cmd: Command,
      ) => {
        if (o.once)
          refuseFlags(cmd, ['--http'], 'credentials fetch --once', 'it serves health while the fetcher keeps running');
        const { BOOTSTRAP_INBOX_PREFIX } = await import('../../../libs/nodecreds/index.ts');
        const { fetchNodeCredential, keepNodeCredentialFresh } = await import('../../../libs/nodecreds/index.ts');
        const { connectBus, connectBusWaiting, isCredentialRefusal, watchCredentialRefusals } = await import(
          '../../../libs/bus/index.ts'
        );
        const log = (l: string) => process.stderr.write(`${l}\n`);
        const bus = {
          servers: o.nats.split(','),
          name: `credentials-${o.node}`,
          auth: { credsFile: o.bootstrapCreds },
          extra: { inboxPrefix: BOOTSTRAP_INBOX_PREFIX },
        };
        // Refused by NATS (the applier Secret's bootstrap.creds not updated after the keys were
        // rotated, a revoked account), the sidecar renews nothing: /readyz says so, as the issuer's
        // and the planner's do (before: 200 while a credential written earlier was still fresh).
        let refused: string | undefined;
        const refusedLine = (why: string) =>
          `NATS refuses the bootstrap credential (${why}); retrying with ${o.bootstrapCreds} as it is at each try`;
        const sayRefusals = (nc: NatsConnection) =>
          watchCredentialRefusals(nc, (why) => {
            refused = why;
            log(why === undefined ? 'NATS takes the bootstrap credential again' : refusedLine(why));
          });
        if (o.once) {
          const nc = await connectBus(bus);
          sayRefusals(nc);
          try {
            const { expiresAt } = await fetchNodeCredential({
              nc,
              node: o.node,
              tokenFile: o.tokenFile,
              out: o.out,
              log,
            });
            process.stdout.write(
              `node credential for ${o.node} written to ${o.out}, expires ${new Date(expiresAt * 1000).toISOString()}\n`,
            );
            setExit(0);
          } finally {
            await nc.close();
          }
          return;
        }
        // Health first, then NATS, waited for (probe18 D2): the sidecar exited when NATS did not
        // answer yet (a fresh install, a new node before DNS works) and crash-looped, its applier
        // not started for the kubelet's backoff. Alive while waiting; ready once a credential is
        // written (the startup probe).
        let nc: NatsConnection | undefined;
        let keeper: { stop(): void; fresh(): boolean } | undefined;
        const abort = new AbortController();
        let waitingFor = '';
        const sayWaiting = waitingLine('credentials fetch', log);
        const server = o.http
          ? await healthServer(
              o.http,
              () => !nc?.isClosed(),
              () =>
                natsNotReady(nc, waitingFor, refused, refusedLine) ??
                (keeper?.fresh() ? undefined : 'no fresh node credential written yet'),
            )
          : undefined;
        const stopped = untilSignalThenStop('credentials fetch', async () => {
          abort.abort();
          keeper?.stop();
          server?.close();
          await nc?.close();
        });
        nc = await connectBusWaiting({
          ...bus,
          signal: abort.signal,
          onWaiting: (what, attempt) => {
            waitingFor = what;
            sayWaiting(what, attempt);
          },
        }).catch((e: Error) => {
          if (abort.signal.aborted) return undefined;
          throw e;
        });
        if (nc) {
          sayRefusals(nc);
          keeper = keepNodeCredentialFresh({
            nc,
            node: o.node,
            tokenFile: o.tokenFile,
            out: o.out,
            log,
            // after NATS restarts (a new resolver, an outage longer than the credential): renew at
            // once if it refuses the credential written last (probe16 I6)
            isRefused: (credsFile) =>
              connectBus({
                servers: o.nats.split(','),
                name: `credentials-check-${o.node}`,
                node: o.node,
                auth: { credsFile },
                extra: { reconnect: false, maxReconnectAttempts: 0 },
              }).then(
                (c) => c.close().then(() => false),
                // one rule with the bus's ('User Authentication Expired', 'Authorization Violation', …)
                (e: Error) => isCredentialRefusal(e.message),
              ),
          });
        }
        setExit(await stopped);
      },
    );
}

/**
 * Why an issuer or fetcher is not ready on NATS's side, for its /readyz: still waiting for its first
 * connection (and why), the connection closed, or its credential refused (`refusedLine` says which
 * file it retries with); undefined when none of these.
 */
function natsNotReady(
  nc: NatsConnection | undefined,
  waitingFor: string,
  refused: string | undefined,
  refusedLine: (why: string) => string,
): string | undefined {
  if (nc === undefined) return `waiting for NATS${waitingFor ? `: ${waitingFor}` : ''}`;
  if (nc.isClosed()) return 'NATS connection closed';
  return refused === undefined ? undefined : refusedLine(refused);
}

/** The line a waiting issuer or fetcher writes: the first try, a change of reason, and every 20th try. */
function waitingLine(who: string, log: (l: string) => void): (what: string, attempt: number) => void {
  let last = '';
  return (what, attempt) => {
    if (what !== last || attempt % 20 === 0) log(`${who}: waiting for NATS: ${what} (attempt ${attempt}; retrying)`);
    last = what;
  };
}

/** Writes account keys to a file that must not exist yet (owner-only), or a usage error naming --keys-out. */
function writeNewKeysFile(file: string, keys: object): void {
  try {
    writeFileSync(file, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw new UsageError(
      `--keys-out ${file}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' ? 'exists (refusing to replace account keys)' : (e as Error).message}`,
    );
  }
}

/** What minting needs of the keys file. */
const MINT_KEY_FIELDS = ['accountSeed', 'signingKeySeed', 'readersAccountSeed', 'readersSigningKeySeed'] as const;
/** Everything `credentials init` saves: a resolver (operator and account JWTs) needs it all. */
const ALL_KEY_FIELDS = ['operatorSeed', 'systemAccountSeed', ...MINT_KEY_FIELDS] as const;

/** The named seeds of a keys file saved by `credentials init`, or a usage error naming what is missing. */
function readKeys<F extends string>(file: string, fields: readonly F[]): Record<F, string> {
  try {
    const k = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const missing: string[] = fields.filter((f) => typeof k[f] !== 'string');
    if (missing.length > 0)
      throw new Error(
        `missing ${missing.join('/')}${missing.includes('readersAccountSeed') && missing.length < fields.length ? ' (keys made before nodes and observers got their own account: run `credentials init` again and apply its Secrets)' : ''}`,
      );
    return Object.fromEntries(fields.map((f) => [f, k[f] as string])) as Record<F, string>;
  } catch (e) {
    throw new UsageError(`--keys ${file}: ${(e as Error).message}`);
  }
}

/** /healthz: 200 while alive(); /readyz: 200 unless notReady() gives a reason (then 503 with it). */
async function healthServer(
  addr: string,
  alive: () => boolean,
  notReady: () => string | undefined,
): Promise<{ close(): void }> {
  const { hosts, port } = parseListenAddresses(addr);
  const listener = await listenHttpOn(
    (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const reason = path === '/readyz' ? notReady() : undefined;
      const ok = path === '/healthz' ? alive() : path === '/readyz' ? reason === undefined : undefined;
      if (ok === undefined) {
        res.writeHead(404).end('not found\n');
        return;
      }
      res
        .writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify(reason === undefined ? { ok } : { ok, reason }) + '\n');
    },
    port,
    // "0.0.0.0": every address of every family, as for the planner and applier (probe18 D5);
    // `[IP,IP]:PORT`: the node's addresses (status.hostIPs), not every interface (probe18 D6)
    hosts,
  );
  return { close: () => void listener.close() };
}
