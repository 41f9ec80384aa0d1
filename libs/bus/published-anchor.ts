import { jetstreamManager, JetStreamApiError } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { directGet } from './direct-get.ts';
import type { Verifier } from './planner-signature.ts';
import { H, parseVersionSubject, VERSIONS_STREAM } from './subjects.ts';
import { VersionReader } from './version-reader.ts';

export type PublishedAnchor =
  | { readonly anchored: true; readonly version: number; readonly anchor: string; readonly skipped: number }
  | { readonly anchored: false; readonly reason: string; readonly skipped: number };

/**
 * The witness of the event log's tail outside the file: the newest genuine published delta that
 * carries an anchor (see libs/eventlog/version-anchor.ts). Walks back from the versions stream's
 * end over foreign messages (and, with the planner's key, over anything it did not sign); at most
 * `maxScan` messages (default 10 000).
 */
export async function newestPublishedAnchor(
  nc: NatsConnection,
  o: { verifier?: Verifier; stream?: string; maxScan?: number } = {},
): Promise<PublishedAnchor> {
  const stream = o.stream ?? VERSIONS_STREAM;
  const jsm = await jetstreamManager(nc);
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch (e) {
    if (e instanceof JetStreamApiError && e.code === 10059)
      return { anchored: false, reason: `stream ${stream} does not exist`, skipped: 0 };
    throw e;
  }
  const reader = new VersionReader(nc, { stream, verifier: o.verifier });
  let skipped = 0;
  const stop = Math.max(info.state.first_seq, info.state.last_seq - (o.maxScan ?? 10_000) + 1);
  for (let seq = info.state.last_seq; seq >= stop && seq > 0; seq--) {
    const m = await directGet(nc, stream, { seq }, 5000);
    if (!m.ok) {
      if (m.missing) continue;
      throw new Error(m.error);
    }
    const parsed = parseVersionSubject(m.subject);
    if (!parsed || parsed.form !== 'delta' || reader.genuine(m, parsed.version) !== undefined) {
      skipped++;
      continue;
    }
    const anchor = m.header(H.anchor);
    if (anchor) return { anchored: true, version: parsed.version, anchor, skipped };
    return {
      anchored: false,
      reason: `the newest published version (${parsed.version}) carries no anchor (published before anchors existed)`,
      skipped,
    };
  }
  return { anchored: false, reason: `no published version in stream ${stream}`, skipped };
}
