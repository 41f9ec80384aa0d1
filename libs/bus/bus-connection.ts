import { connect, type ConnectionOptions, type NatsConnection, type Server } from '@nats-io/transport-node';
import { fileAuthenticator } from './bus-auth-files.ts';
import { askServerRefusal } from './server-refusal.ts';
import { nodeInboxPrefix } from './subjects.ts';

export interface BusAuth {
  readonly user?: string;
  readonly password?: string;
  /** A .creds file (JWT + nkey seed; operator-mode servers). */
  readonly credsFile?: string;
  /** A file holding an nkey seed (SU...); matches an `nkey:` user in the generated config. */
  readonly nkeySeedFile?: string;
  readonly tls?: { readonly caFile?: string; readonly certFile?: string; readonly keyFile?: string };
}

/** Longest wait before trying a server again while disconnected (the backoff's cap). */
export const RECONNECT_CAP_MS = 5000;

/**
 * The client PINGs its server this often and drops it (reconnecting to another of the list) once
 * MAX_PINGS_OUT PINGs are unanswered at the next: a frozen server (SIGSTOP, a hung host, a link
 * that drops everything without a reset) keeps the socket open and tells the client nothing, so
 * the PINGs are the only way to notice it. The client's defaults (every 2 min, 2 out) left a
 * planner or applier attached to it for 4-6 minutes; now it leaves within 4-6 s. A PING costs the
 * server a few bytes: N clients send N/2 a second.
 */
export const PING_INTERVAL_MS = 2000;
export const MAX_PINGS_OUT = 2;
/**
 * How long one connection attempt (TCP, INFO, CONNECT, the first PONG) may take. A frozen server's
 * kernel still accepts the TCP connection, so an attempt on it waits this long before the next
 * server is tried (the client's default is 20 s).
 */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * Connects to NATS for a role. Nodes get their own inbox prefix (the server only lets a node
 * subscribe below it). Every role reconnects forever over the whole server list (`--nats
 * URL,URL,URL`, plus the cluster's other members learnt from INFO): each server is retried after a
 * capped exponential backoff (250 ms doubling to `maxBackoffMs`, default RECONNECT_CAP_MS, reset once reconnected), so a
 * component outlives any number of server restarts and moves to a live server when one dies, or
 * stops answering (PING_INTERVAL_MS).
 */
export async function connectBus(o: ConnectBusOptions): Promise<NatsConnection> {
  const a = o.auth ?? {};
  const authenticator = fileAuthenticator(a, o.onAuthFileProblem);
  let tries = 0;
  const opts: ConnectionOptions = {
    servers: o.servers,
    name: o.name,
    maxReconnectAttempts: -1,
    pingInterval: PING_INTERVAL_MS,
    maxPingOut: MAX_PINGS_OUT,
    timeout: CONNECT_TIMEOUT_MS,
    reconnectToServer: leastRecentlyTried,
    reconnectDelayHandler: () => Math.min(o.maxBackoffMs ?? RECONNECT_CAP_MS, 250 * 2 ** Math.min(tries++, 5)),
    // The client's default gives up for good after two authentication errors in a row: a node
    // credential that expired once (the issuer or NATS away for half its lifetime) closed the
    // applier's connection, and the renewed .creds file was never read again (probe16 I1). A
    // refused credential is retried like an unreachable server: the file is read at every try.
    ignoreAuthErrorAbort: true,
    ...(o.node ? { inboxPrefix: nodeInboxPrefix(o.node) } : {}),
    ...(a.user !== undefined ? { user: a.user, pass: a.password ?? '' } : {}),
    ...(authenticator ? { authenticator } : {}),
    ...(a.tls ? { tls: { caFile: a.tls.caFile, certFile: a.tls.certFile, keyFile: a.tls.keyFile } } : {}),
    ...o.extra,
  };
  try {
    const nc = await connect(opts);
    void (async () => {
      for await (const s of nc.status()) if (s.type === 'reconnect') tries = 0;
    })().catch(() => undefined);
    // attached before anything subscribes: the first subscriptions are the ones a limit refuses
    if (o.onSubscriptionRefusal) watchSubscriptionRefusals(nc, o.onSubscriptionRefusal, o.subscriptionRetry);
    return nc;
  } catch (e) {
    const why = describe(e);
    // a refusal for a limit reads as a timeout: ask the server what it said (probe19 P19-3)
    if (/timeout/i.test(why)) {
      for (const url of urls(o.servers)) {
        const refusal = await askServerRefusal({ url, name: o.name, user: a.user, pass: a.password, authenticator });
        if (refusal !== undefined)
          throw new Error(`NATS at ${serversText(url)}: the server refuses this connection: ${refusal}`);
      }
    }
    throw new Error(`NATS at ${serversText(o.servers)}: ${why}`);
  }
}

/**
 * The next server to dial: the one tried longest ago (never tried first). The client's own pick
 * after its first connection is the server it was on: a client that dropped a frozen server dialed
 * it again first and waited out CONNECT_TIMEOUT_MS there (11 s to leave it, measured).
 */
function leastRecentlyTried(pool: readonly Server[]): Server | null {
  return pool.reduce<Server | null>((a, s) => (a === null || s.lastConnect < a.lastConnect ? s : a), null);
}

export interface ConnectBusOptions {
  readonly servers: string | string[];
  readonly name: string;
  readonly node?: string;
  readonly auth?: BusAuth;
  readonly extra?: Partial<ConnectionOptions>;
  /**
   * Called at every (re)connect with what is wrong with the .creds file (unreadable, not a .creds
   * file: the one read before is used), or undefined when it was read and parsed.
   */
  readonly onAuthFileProblem?: (problem: string | undefined) => void;
  /** Told when NATS refuses a subscription of this connection, and when it no longer does (watchSubscriptionRefusals). */
  readonly onSubscriptionRefusal?: (refusal: string | undefined) => void;
  /** The backoff of the reconnects after a refused subscription (default SUBSCRIPTION_RETRY_MS to SUBSCRIPTION_RETRY_CAP_MS). */
  readonly subscriptionRetry?: SubscriptionRetry;
  /**
   * Longest wait before trying a server again (default RECONNECT_CAP_MS): the backoff's cap, for
   * reconnects and for connectBusWaiting's first connection alike. Tests shorten it.
   */
  readonly maxBackoffMs?: number;
}

export interface SubscriptionRetry {
  readonly retryMs?: number;
  readonly retryCapMs?: number;
}

/**
 * Waits `ms`, or until `signal` aborts: true when the whole wait ran, false when it was cut short.
 * The abort listener goes with the wait: one left per wait (a process retrying every 5 s for as
 * long as NATS or a file is missing) piled up on the process's long-lived signal and made Node say
 * "MaxListenersExceededWarning: Possible EventTarget memory leak detected" after 11 (probe21 P21-3).
 */
export function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Connects, waiting for as long as it takes: each failed attempt is reported (`onWaiting`, with
 * the URL and the reason) and retried after a capped exponential backoff (250 ms doubling to
 * `maxBackoffMs`, default 5 s). Gives up only when `signal` aborts. Credentials that the server
 * refuses are retried too: an operator may be fixing the server config.
 */
export async function connectBusWaiting(
  o: ConnectBusOptions & {
    onWaiting?: (what: string, attempt: number, retryInMs: number) => void;
    signal?: AbortSignal;
  },
): Promise<NatsConnection> {
  let delay = Math.min(250, o.maxBackoffMs ?? RECONNECT_CAP_MS);
  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) throw new Error('stopped while waiting for NATS');
    try {
      return await connectBus(o);
    } catch (e) {
      o.onWaiting?.((e as Error).message, attempt, delay);
      await sleepUnlessAborted(delay, o.signal);
      delay = Math.min(delay * 2, o.maxBackoffMs ?? RECONNECT_CAP_MS);
    }
  }
}

/**
 * Checks server URLs as given on the command line; the message names the flag. A URL without
 * a scheme is refused (the client would guess), as is anything but nats/tls/ws/wss.
 */
export function checkServerUrls(flag: string, value: string): string[] {
  const list = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error(`${flag}: no server URL given`);
  for (const u of list) {
    const m = /^([a-z]+):\/\/[^/\s]+\/?$/i.exec(u);
    if (!m) throw new Error(`${flag} ${u}: expected a server URL with a scheme, e.g. nats://HOST:4222`);
    if (!['nats', 'tls', 'ws', 'wss'].includes(m[1]!.toLowerCase()))
      throw new Error(`${flag} ${u}: unknown scheme ${m[1]} (nats, tls, ws, wss)`);
  }
  return list;
}

function urls(s: string | string[]): string[] {
  return Array.isArray(s) ? s : [s];
}

/**
 * Server URLs as text for errors, logs and health answers: a password or token in a URL
 * (`nats://user:secret@host`) is a node's credential, and health endpoints answer without one.
 */
export function serversText(s: string | string[]): string {
  return urls(s)
    .map((u) => u.replace(/^([a-z]+:\/\/)[^@/\s]*@/i, '$1***@'))
    .join(',');
}

function describe(e: unknown): string {
  const err = e as { message?: string; code?: string; cause?: { message?: string; code?: string } };
  const m = err.message ?? String(e);
  if (/ECONNREFUSED|CONNECTION_REFUSED/i.test(m + (err.code ?? ''))) return 'connection refused';
  return err.cause?.message ? `${m} (${err.cause.message})` : m;
}

/**
 * Calls `onChange` with the server's words each time it refuses this connection's credential
 * (`Authorization Violation`, `User Authentication Expired`: expired, revoked, another operator's)
 * and with undefined when the connection is back after one. The client retries such a refusal
 * (ignoreAuthErrorAbort), reading a .creds file again at each try; this is how a process says why
 * it is away, where before it said only that it was disconnected (probe16 I7).
 */
export function watchCredentialRefusals(nc: NatsConnection, onChange: (refusal: string | undefined) => void): void {
  let refused = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'reconnect') {
        if (refused) onChange(undefined);
        refused = false;
        continue;
      }
      const error = s.type === 'error' ? (s as { error?: Error }).error?.message : undefined;
      if (error === undefined || !isCredentialRefusal(error)) continue;
      refused = true;
      onChange(error);
    }
  })().catch(() => undefined);
}

/** Whether a server error refuses the credential (rather than a permission or the connection). */
export function isCredentialRefusal(error: string): boolean {
  return /authenticat|authoriz/i.test(error);
}

/** Whether a server error refuses a subscription (the account's or user's subscription limit) and keeps the connection. */
export function isSubscriptionRefusal(error: string): boolean {
  return /maximum subscriptions exceeded/i.test(error);
}

/** First wait before a connection whose subscription NATS refused reconnects to subscribe again; doubles to the cap. */
export const SUBSCRIPTION_RETRY_MS = 2000;
export const SUBSCRIPTION_RETRY_CAP_MS = 60_000;

/**
 * nats-server answers a subscription past the account's or user's limit (`limits.subs` of an
 * account or user JWT) with `-ERR 'maximum subscriptions exceeded'` and keeps the connection: the
 * client keeps the subscription on its side and nothing ever arrives on it. An applier whose
 * target notices or reply inbox were refused stayed on its old target and said "on target"; a
 * planner whose ACK and heartbeat subscriptions were refused showed every node UNKNOWN; neither
 * said why (probe19 P19-1). This calls `onChange` with the server's words each time that happens
 * (once per subscription refused, again after each retry while it lasts), makes
 * the client reconnect (it then sends every subscription again) after a backoff
 * (SUBSCRIPTION_RETRY_MS doubling to SUBSCRIPTION_RETRY_CAP_MS) for as long as the server refuses
 * one (a reconnect for any reason, e.g. the reload that lifts the limit, stands for the retry
 * pending then), and calls `onChange(undefined)` once a reconnect drew no refusal: a limit lifted
 * without a disconnect is taken up within a minute, no restart.
 */
export function watchSubscriptionRefusals(
  nc: NatsConnection,
  onChange: (refusal: string | undefined) => void,
  o: SubscriptionRetry = {},
): void {
  const first = o.retryMs ?? SUBSCRIPTION_RETRY_MS;
  let delay = first;
  let refused: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  /** Counts refusals: a reconnect is clean when none came between it and the answer to a PING sent after it. */
  let seen = 0;
  const resubscribeLater = () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (!nc.isClosed()) nc.reconnect().catch(() => undefined);
    }, delay);
    timer.unref?.();
    delay = Math.min(delay * 2, o.retryCapMs ?? SUBSCRIPTION_RETRY_CAP_MS);
  };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'error') {
        const error = (s as { error?: Error }).error?.message;
        if (error === undefined || !isSubscriptionRefusal(error)) continue;
        seen++;
        refused = error;
        onChange(error);
        resubscribeLater();
      } else if (s.type === 'reconnect' && refused !== undefined) {
        // this reconnect sent every subscription again, which is what the pending retry was for: a
        // refusal of it schedules the next; one left pending dropped the connection of every node
        // once more, up to a minute after a reconnect had found the limit lifted
        if (timer) clearTimeout(timer);
        timer = undefined;
        const at = seen;
        // the client sent its subscriptions before saying it reconnected: the server answers them
        // (and any refusal) before the PONG of this flush
        void nc
          .flush()
          .then(() => new Promise((res) => setTimeout(res, 100)))
          .then(() => {
            if (seen !== at || refused === undefined) return;
            refused = undefined;
            delay = first;
            onChange(undefined);
          })
          .catch(() => undefined);
      }
    }
    if (timer) clearTimeout(timer);
  })().catch(() => undefined);
}

/**
 * Calls `onChange` with the server's words each time it refuses this connection while it is away
 * for anything but the credential (watchCredentialRefusals) or a subscription: a limit
 * (`maximum connections exceeded`, `maximum account active connections exceeded`), and with
 * undefined when the connection is back after one. Before, a process only said it was
 * disconnected (probe19 P19-3).
 */
export function watchConnectionRefusals(nc: NatsConnection, onChange: (refusal: string | undefined) => void): void {
  let down = false;
  let refused = false;
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') down = true;
      else if (s.type === 'reconnect') {
        down = false;
        if (refused) onChange(undefined);
        refused = false;
      } else if (s.type === 'error' && down) {
        const error = (s as { error?: Error }).error?.message;
        if (error === undefined || isCredentialRefusal(error) || isSubscriptionRefusal(error)) continue;
        if (/permissions violation/i.test(error)) continue;
        refused = true;
        onChange(error);
      }
    }
  })().catch(() => undefined);
}
