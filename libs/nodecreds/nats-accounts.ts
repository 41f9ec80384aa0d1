import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  fromPublic,
  fromSeed,
  type KeyPair,
} from '@nats-io/jwt';
import {
  accountWiring,
  nodePermissions,
  observerPermissions,
  plannerPermissions,
  READERS_ACCOUNT,
  type Permissions,
} from '../bus/index.ts';
import { CREDENTIALS_REQUEST_SUBJECT, BOOTSTRAP_INBOX_PREFIX } from './subjects.ts';

/**
 * NATS decentralized (operator/JWT) auth for Switchboard, as nats-server 2.9 supports it with a
 * MEMORY resolver: the server knows only the operator JWT and the account JWTs (preloaded in its
 * config); every user is a JWT signed by its account's signing key and carrying its own
 * permissions. Two accounts, as in the generated config (libs/bus/server-config.ts, accountWiring):
 * the Switchboard account (JetStream; planner, issuer, bootstrap) and the readers account (no
 * JetStream; nodes and observers), joined by exactly the imports nodes and observers use, so a
 * reply subject a node or observer chooses can never reach the JetStream API. A node's user JWT
 * holds exactly nodePermissions(node), so it can ACK only as itself, and a node that joins later
 * needs no server change: something holding the readers account's signing key (the credential
 * issuer) mints its JWT. Minted node JWTs expire (ttl); revoking a node means not renewing it.
 */
export interface AccountKeys {
  readonly operatorSeed: string;
  readonly systemAccountSeed: string;
  /** The Switchboard account (JetStream). */
  readonly accountSeed: string;
  /** Signs the Switchboard account's user JWTs (planner, issuer, bootstrap). */
  readonly signingKeySeed: string;
  /** The readers account (nodes, observers; no JetStream). */
  readonly readersAccountSeed: string;
  /** Signs readers' user JWTs; the only key the credential issuer holds, so it can mint no planner. */
  readonly readersSigningKeySeed: string;
}

export interface ServerResolver {
  readonly operatorJwt: string;
  readonly systemAccount: string;
  readonly accountJwts: Readonly<Record<string, string>>;
}

export const ACCOUNT_NAME = 'switchboard';

export function generateAccountKeys(): AccountKeys {
  const seed = (k: KeyPair) => new TextDecoder().decode(k.getSeed());
  return {
    operatorSeed: seed(createOperator()),
    systemAccountSeed: seed(createAccount()),
    accountSeed: seed(createAccount()),
    signingKeySeed: seed(createAccount()),
    readersAccountSeed: seed(createAccount()),
    readersSigningKeySeed: seed(createAccount()),
  };
}

/** The public key of the Switchboard account (its user JWTs name it as issuer_account). */
export function accountPublicKey(k: Pick<AccountKeys, 'accountSeed'>): string {
  return kp(k.accountSeed).getPublicKey();
}

/** The public key of the readers account (node and observer JWTs name it as issuer_account). */
export function readersAccountPublicKey(k: Pick<AccountKeys, 'readersAccountSeed'>): string {
  return kp(k.readersAccountSeed).getPublicKey();
}

/** NATS account limits as an account JWT carries them (`nsc edit account --conns/--subs/--payload ...`). */
export interface AccountLimits {
  readonly conn?: number;
  readonly subs?: number;
  readonly payload?: number;
  readonly data?: number;
  readonly streams?: number;
  readonly consumer?: number;
  readonly disk_storage?: number;
  readonly mem_storage?: number;
}

/**
 * Operator and account JWTs for the server's resolver: the Switchboard account with JetStream
 * (unlimited) and the readers account without, wired as accountWiring() says (public exports:
 * only accounts this operator signs exist on the server). `limits` replaces some of an account's
 * (none by default): what an operator sets with nsc, for tests of a fleet under such limits. A
 * running server reloads new account JWTs but refuses another operator JWT: keep the first one.
 */
export async function serverResolver(
  k: AccountKeys,
  limits: { readonly switchboard?: AccountLimits; readonly readers?: AccountLimits } = {},
): Promise<ServerResolver> {
  const op = kp(k.operatorSeed);
  const sys = kp(k.systemAccountSeed);
  const acc = kp(k.accountSeed);
  const readers = kp(k.readersAccountSeed);
  const w = accountWiring();
  const operatorJwt = await encodeOperator('switchboard-operator', op, { system_account: sys.getPublicKey() });
  const sysJwt = await encodeAccount('SYS', sys, {}, { signer: op });
  const natsLimits = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const accJwt = await encodeAccount(
    ACCOUNT_NAME,
    acc,
    {
      signing_keys: [kp(k.signingKeySeed).getPublicKey()],
      limits: { ...natsLimits, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1, ...limits.switchboard },
      exports: [
        ...w.services.map((subject) => ({ name: subject, subject, type: 'service' as const })),
        ...w.toReaders.map((subject) => ({ name: subject, subject, type: 'stream' as const })),
      ],
      imports: w.fromReaders.map((subject) => ({
        name: subject,
        subject,
        account: readers.getPublicKey(),
        type: 'stream' as const,
      })),
    },
    { signer: op },
  );
  const readersJwt = await encodeAccount(
    READERS_ACCOUNT,
    readers,
    {
      signing_keys: [kp(k.readersSigningKeySeed).getPublicKey()],
      // no JetStream limits: JetStream stays off in this account
      limits: { ...natsLimits, mem_storage: 0, disk_storage: 0, streams: 0, consumer: 0, ...limits.readers },
      exports: w.fromReaders.map((subject) => ({ name: subject, subject, type: 'stream' as const })),
      imports: [
        ...w.services.map((subject) => ({
          name: subject,
          subject,
          account: acc.getPublicKey(),
          type: 'service' as const,
        })),
        ...w.toReaders.map((subject) => ({
          name: subject,
          subject,
          account: acc.getPublicKey(),
          type: 'stream' as const,
        })),
      ],
    },
    { signer: op },
  );
  return {
    operatorJwt,
    systemAccount: sys.getPublicKey(),
    accountJwts: {
      [sys.getPublicKey()]: sysJwt,
      [acc.getPublicKey()]: accJwt,
      [readers.getPublicKey()]: readersJwt,
    },
  };
}

/** nats-server config text for the resolver (include it from the server config). */
export function renderResolverConfig(r: ServerResolver): string {
  return [
    '# generated by `switchboard credentials init` (libs/nodecreds); public JWTs, no secrets',
    `operator: ${JSON.stringify(r.operatorJwt)}`,
    `system_account: ${JSON.stringify(r.systemAccount)}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    ...Object.entries(r.accountJwts)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([pub, jwt]) => `  ${pub}: ${JSON.stringify(jwt)}`),
    '}',
    '',
  ].join('\n');
}

export type Role = 'planner' | 'observer' | 'issuer' | 'bootstrap';

/**
 * The issuer answers credential requests and replies on the bootstrap inbox. The bootstrap user
 * may only ask: it cannot subscribe to the request subject (so it never sees another node's
 * service-account token) nor publish into the inbox (so it cannot forge a reply); it can see
 * other nodes' replies, which are JWTs bound to keys whose seeds never leave their node.
 */
export function rolePermissions(role: Role): Permissions {
  switch (role) {
    case 'planner':
      return plannerPermissions();
    case 'observer':
      return observerPermissions();
    case 'issuer':
      return {
        publish: { allow: [`${BOOTSTRAP_INBOX_PREFIX}.>`] },
        subscribe: { allow: [CREDENTIALS_REQUEST_SUBJECT] },
      };
    case 'bootstrap':
      return {
        publish: { allow: [CREDENTIALS_REQUEST_SUBJECT] },
        subscribe: { allow: [`${BOOTSTRAP_INBOX_PREFIX}.>`] },
      };
  }
}

type RoleKeys = Pick<AccountKeys, 'accountSeed' | 'signingKeySeed' | 'readersAccountSeed' | 'readersSigningKeySeed'>;

/**
 * A .creds file (JWT + a fresh user seed) for a fixed role; no expiry (rotate by re-running init).
 * Observers are readers (no JetStream API of their own); the other roles are in the Switchboard account.
 */
export async function mintRoleCreds(k: RoleKeys, role: Role): Promise<string> {
  const user = createUser();
  const jwt =
    role === 'observer'
      ? await userJwt(
          readersAccountPublicKey(k),
          k.readersSigningKeySeed,
          role,
          user.getPublicKey(),
          rolePermissions(role),
        )
      : await userJwt(accountPublicKey(k), k.signingKeySeed, role, user.getPublicKey(), rolePermissions(role));
  return new TextDecoder().decode(fmtCreds(jwt, user));
}

/**
 * A node's user JWT for a public key the node made (its seed stays on the node): exactly
 * nodePermissions(node), expiring after ttlSeconds, in the readers account (accountPublicKey and
 * signingKeySeed are the readers account's).
 */
export async function mintNodeJwt(o: {
  accountPublicKey: string;
  signingKeySeed: string;
  node: string;
  userPublicKey: string;
  ttlSeconds: number;
  now?: Date;
}): Promise<string> {
  fromPublic(o.userPublicKey); // throws on anything but a valid key
  if (!o.userPublicKey.startsWith('U')) throw new Error('publicKey is not a NATS user key (U...)');
  const iat = Math.floor((o.now ?? new Date()).getTime() / 1000);
  return encodeUser(o.node, o.userPublicKey, o.accountPublicKey, permissionsClaim(nodePermissions(o.node)), {
    signer: kp(o.signingKeySeed),
    exp: iat + o.ttlSeconds,
  });
}

/** A node .creds file minted in one step (for hosts outside Kubernetes: compose, VMs). */
export async function mintNodeCreds(
  k: Pick<AccountKeys, 'readersAccountSeed' | 'readersSigningKeySeed'>,
  node: string,
  ttlSeconds: number,
): Promise<string> {
  const user = createUser();
  const jwt = await mintNodeJwt({
    accountPublicKey: readersAccountPublicKey(k),
    signingKeySeed: k.readersSigningKeySeed,
    node,
    userPublicKey: user.getPublicKey(),
    ttlSeconds,
  });
  return new TextDecoder().decode(fmtCreds(jwt, user));
}

async function userJwt(
  account: string,
  signingKeySeed: string,
  name: string,
  userPub: string,
  p: Permissions,
): Promise<string> {
  return encodeUser(name, userPub, account, permissionsClaim(p), { signer: kp(signingKeySeed) });
}

function permissionsClaim(p: Permissions) {
  return { pub: { allow: [...p.publish.allow] }, sub: { allow: [...p.subscribe.allow] } };
}

function kp(seed: string): KeyPair {
  return fromSeed(new TextEncoder().encode(seed.trim()));
}
