import { readFileSync } from 'node:fs';
import { connect, credsAuthenticator, nkeyAuthenticator, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
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

/**
 * Connects to NATS for a role. Nodes get their own inbox prefix (the server only lets a node
 * subscribe below it) and reconnect forever: an applier outlives any number of server restarts.
 */
export async function connectBus(o: { servers: string | string[]; name: string; node?: string; auth?: BusAuth; extra?: Partial<ConnectionOptions> }): Promise<NatsConnection> {
  const a = o.auth ?? {};
  const opts: ConnectionOptions = {
    servers: o.servers,
    name: o.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(o.node ? { inboxPrefix: nodeInboxPrefix(o.node) } : {}),
    ...(a.user !== undefined ? { user: a.user, pass: a.password ?? '' } : {}),
    ...(a.credsFile ? { authenticator: credsAuthenticator(readFileSync(a.credsFile)) } : {}),
    ...(a.nkeySeedFile ? { authenticator: nkeyAuthenticator(new TextEncoder().encode(readFileSync(a.nkeySeedFile, 'utf8').trim())) } : {}),
    ...(a.tls ? { tls: { caFile: a.tls.caFile, certFile: a.tls.certFile, keyFile: a.tls.keyFile } } : {}),
    ...o.extra,
  };
  return connect(opts);
}
