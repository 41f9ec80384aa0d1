import type { JetStreamManager, StreamConfig, StreamInfo } from '@nats-io/jetstream';

// A leaf on purpose (only the NATS client), like jetstream-transient.ts: libs/eventlog may use it.

/** The limits a Switchboard stream is made with; anything else on it was given by someone else. */
export interface OwnLimits {
  /** max_age in nanoseconds (0: none). */
  readonly maxAge: number;
  /** max_msgs_per_subject (-1 or 0: none; a KV bucket's history). */
  readonly perSubject?: number;
}

/**
 * Takes off limits someone gave one of Switchboard's streams (`nats stream edit`, a config tool;
 * probe17 N1): max_bytes, max_msgs, max_msg_size, another max_msgs_per_subject or max_age. The
 * planner trims its streams itself; a limit of JetStream's own drops what nodes or replicas still
 * need (discard old: the versions stream dropped every version as it was stored while the planner
 * said all was well) or refuses what comes next (discard new). Returns what was taken off, in
 * words (undefined: nothing was there), after the update.
 */
export async function liftStreamLimits(
  jsm: JetStreamManager,
  stream: string,
  own: OwnLimits,
  info?: StreamInfo,
): Promise<string | undefined> {
  const c = (info ?? (await jsm.streams.info(stream))).config;
  const set = (n: number | undefined) => n !== undefined && n > 0;
  const perSubject = own.perSubject !== undefined && own.perSubject > 0 ? own.perSubject : -1;
  const found = [
    set(c.max_bytes) ? `max_bytes ${c.max_bytes}` : '',
    set(c.max_msgs) ? `max_msgs ${c.max_msgs}` : '',
    (set(c.max_msgs_per_subject) ? c.max_msgs_per_subject : -1) !== perSubject
      ? `max_msgs_per_subject ${c.max_msgs_per_subject}`
      : '',
    set(c.max_msg_size) ? `max_msg_size ${c.max_msg_size}` : '',
    (c.max_age ?? 0) !== own.maxAge ? `max_age ${Math.round((c.max_age ?? 0) / 1e9)} s` : '',
  ].filter(Boolean);
  if (found.length === 0) return undefined;
  const lifted: StreamConfig = {
    ...c,
    max_bytes: -1,
    max_msgs: -1,
    max_msgs_per_subject: perSubject,
    max_msg_size: -1,
    max_age: own.maxAge,
  };
  await jsm.streams.update(stream, lifted);
  return `${found.join(', ')}, discard ${c.discard}`;
}

/** What limits of JetStream's own do to each kind of Switchboard store, and its name in the line. */
const STORES = {
  versions: {
    name: 'stream',
    loss: 'they drop versions nodes still need or refuse new ones',
    hint: 'the planner trims the stream itself: --versions-keep-checkpoints; ',
  },
  bucket: { name: 'bucket', loss: 'they drop entries the planners and nodes still read', hint: '' },
  log: { name: 'log stream', loss: "they drop or refuse the group's log", hint: '' },
  snapshots: {
    name: 'snapshot store',
    loss: "they drop chunks of the group's log snapshots or refuse new ones",
    hint: 'the leader keeps the two newest itself; ',
  },
} as const;

/**
 * The one line said when liftStreamLimits took limits off a store (`lifted`: what it returned):
 * the versions stream, a KV bucket (targets, lease, members), the group's log stream or its
 * snapshot object store (probe17 N1).
 */
export function limitsTakenOffLine(store: keyof typeof STORES, name: string, lifted: string): string {
  const s = STORES[store];
  return `${s.name} ${name} had limits of its own (${lifted}): ${s.loss}; taken off (${s.hint}bound JetStream's disk with max_file_store)`;
}
