import {
  ACK_WILDCARD,
  DELTA_WILDCARD,
  targetNoticeSubject,
  HEARTBEAT_WILDCARD,
  ackSubject,
  heartbeatSubject,
  kvSubject,
  nodeInboxPrefix,
  nodeTargetKey,
  DEFAULT_TARGET_KEY,
  TARGETS_STREAM,
  VERSIONS_STREAM,
} from './subjects.ts';

/** A principal: user/password (password may be a bcrypt hash, as nats-server accepts) or an nkey. */
export type Credential = { readonly user: string; readonly password: string } | { readonly nkey: string };

export interface ServerConfigInput {
  readonly planner: Credential;
  readonly nodes: readonly ({ readonly name: string } & Credential)[];
  /** Optional read-only principal for `ctl`-style observers. */
  readonly observer?: Credential;
  readonly maxPayload?: number;
}

export interface Permissions {
  readonly publish: { readonly allow: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[] };
}

/**
 * Exactly what an applier needs, and nothing that lets it see or move another node:
 *  - publish its own ACK/NACKs and heartbeats;
 *  - read versions: direct get on SB_VERSIONS (by subject, or the first message on a subject
 *    after a sequence, to skip foreign messages); no consumers, nothing to write;
 *  - read its own target and the default: direct get of those two KV keys and of config.*;
 *  - no consumer of any kind: a consumer's deliver subject is not checked against the creator's
 *    publish permissions (nats-server 2.9), so a node allowed to create one could make the server
 *    deliver into any subject, the versions stream's included;
 *  - subscribe to the live notices of its two target keys (sb.target.default, which carries
 *    each version's delta, and sb.target.node.<token>), and to sb.v.delta.* (the same content it
 *    may read from the stream; current appliers no longer follow it, earlier releases did);
 *  - receive replies only on its own inbox prefix (_INBOX_<token>.>), which it must use as the
 *    client's inboxPrefix, so it cannot subscribe to another node's replies.
 * Everything else, including $KV.sb_targets.> (writing targets), is denied by omission.
 */
export function nodePermissions(node: string): Permissions {
  const kvKeys = [DEFAULT_TARGET_KEY, nodeTargetKey(node)];
  const api = '$JS.API';
  return {
    publish: {
      allow: [
        ackSubject(node),
        heartbeatSubject(node),
        `${api}.DIRECT.GET.${VERSIONS_STREAM}`,
        `${api}.DIRECT.GET.${VERSIONS_STREAM}.sb.v.>`,
        ...kvKeys.map((k) => `${api}.DIRECT.GET.${TARGETS_STREAM}.${kvSubject(k)}`),
        `${api}.DIRECT.GET.${TARGETS_STREAM}.${kvSubject('config.*')}`,
      ],
    },
    subscribe: { allow: [`${nodeInboxPrefix(node)}.>`, DELTA_WILDCARD, ...kvKeys.map(targetNoticeSubject)] },
  };
}

export function plannerPermissions(): Permissions {
  return { publish: { allow: ['>'] }, subscribe: { allow: ['>'] } };
}

/** Observers (ctl, dashboards): watch acks and heartbeats, read streams, write nothing. */
export function observerPermissions(): Permissions {
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        '$JS.API.STREAM.INFO.*',
        `$JS.API.DIRECT.GET.${VERSIONS_STREAM}`,
        `$JS.API.DIRECT.GET.${VERSIONS_STREAM}.>`,
        `$JS.API.DIRECT.GET.${TARGETS_STREAM}.>`,
      ],
    },
    subscribe: { allow: [ACK_WILDCARD, HEARTBEAT_WILDCARD, '_INBOX.>'] },
  };
}

/**
 * The accounts principals live in. Only the Switchboard account has JetStream; nodes and observers
 * live in a reader account that imports exactly what they use. Why: nats-server checks publish
 * permissions on a message's subject, never on its reply subject, and JetStream answers every API
 * request on the requester's reply subject from inside the requester's account. A node allowed one
 * direct get in the JetStream account could name `$JS.API.STREAM.PURGE.SB_VERSIONS` as the reply
 * and the server itself would purge the stream. Through a service import the request reaches the
 * Switchboard account with a mapped reply (`_R_.…`) whose answer goes back to the reader account,
 * which has no JetStream and subscribes to nothing of the planner's: a reply subject a reader
 * chooses can only reach subscribers of its own account.
 */
export const SWITCHBOARD_ACCOUNT = 'SWITCHBOARD';
export const READERS_ACCOUNT = 'READERS';

export interface AccountWiring {
  /** Services the Switchboard account exports (reader requests answered by JetStream). */
  readonly services: readonly string[];
  /** Streams the Switchboard account exports to readers (notices). */
  readonly toReaders: readonly string[];
  /** Streams the reader account exports to the Switchboard account (reports). */
  readonly fromReaders: readonly string[];
}

/**
 * Every subject that crosses between the two accounts; the user permissions inside each account
 * narrow them further per principal (a node imports all KV direct gets, its user may ask for two keys).
 */
export function accountWiring(): AccountWiring {
  const api = '$JS.API';
  return {
    services: [
      `${api}.INFO`,
      `${api}.STREAM.INFO.*`,
      `${api}.DIRECT.GET.${VERSIONS_STREAM}`,
      `${api}.DIRECT.GET.${VERSIONS_STREAM}.>`,
      `${api}.DIRECT.GET.${TARGETS_STREAM}.>`,
    ],
    toReaders: [DELTA_WILDCARD, targetNoticeSubject('>')],
    fromReaders: [ACK_WILDCARD, HEARTBEAT_WILDCARD],
  };
}

/**
 * nats-server configuration text (an `accounts` block plus limits) for a node list; append it to
 * deploy/nats/server.conf.template or include it. Every server of a cluster must get the same text.
 * Output is deterministic for a given input.
 */
export function renderServerAuthConfig(i: ServerConfigInput): string {
  const readers: string[] = [];
  if (i.observer) readers.push(userEntry(i.observer, observerPermissions()));
  const seen = new Set<string>();
  for (const n of [...i.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (seen.has(n.name)) throw new Error(`duplicate node ${n.name}`);
    seen.add(n.name);
    readers.push(userEntry(n, nodePermissions(n.name)));
  }
  const w = accountWiring();
  const SB = SWITCHBOARD_ACCOUNT;
  const R = READERS_ACCOUNT;
  const lines = [
    '# generated by libs/bus/server-config.ts (renderServerAuthConfig); do not edit by hand',
    '# Nodes and observers live in READERS, which has no JetStream: a reply subject they choose',
    '# can never reach the JetStream API (docs/security.md, "NATS accounts").',
    ...(i.maxPayload ? [`max_payload: ${i.maxPayload}`] : []),
    'accounts {',
    `  ${SB} {`,
    '    jetstream: enabled',
    '    users = [',
    `      ${userEntry(i.planner, plannerPermissions())}`,
    '    ]',
    '    exports = [',
    ...w.services.map((s) => `      { service: ${q(s)} }`),
    ...w.toReaders.map((s) => `      { stream: ${q(s)} }`),
    '    ]',
    '    imports = [',
    ...w.fromReaders.map((s) => `      { stream: { account: ${R}, subject: ${q(s)} } }`),
    '    ]',
    '  }',
    `  ${R} {`,
    '    users = [',
    ...readers.map((u) => `      ${u}`),
    '    ]',
    '    exports = [',
    ...w.fromReaders.map((s) => `      { stream: ${q(s)} }`),
    '    ]',
    '    imports = [',
    ...w.services.map((s) => `      { service: { account: ${SB}, subject: ${q(s)} } }`),
    ...w.toReaders.map((s) => `      { stream: { account: ${SB}, subject: ${q(s)} } }`),
    '    ]',
    '  }',
    '}',
    '',
  ];
  return lines.join('\n');
}
function userEntry(c: Credential, p: Permissions): string {
  const who = 'nkey' in c ? `nkey: ${q(c.nkey)}` : `user: ${q(c.user)}, password: ${q(c.password)}`;
  const list = (xs: readonly string[]) => `[${xs.map(q).join(', ')}]`;
  return `{ ${who}, permissions: { publish: { allow: ${list(p.publish.allow)} }, subscribe: { allow: ${list(p.subscribe.allow)} } } }`;
}

function q(s: string): string {
  return JSON.stringify(s);
}
