import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { compactLog, nodeAt, replayVersion, verifyLog } from '../../../libs/eventlog/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
import { openLog, tempDir } from './support/temp-log.ts';

/*
 * An event log written by an older release (0f3dc3b, see the fixture's header), opened by this one
 * (probe15 U1, U4). The fixture is that release's file as SQL text: whole-object events (before
 * the K3 projection) holding fields the kube-proxy parity readings read since (an ingress ipMode
 * Proxy, a service-proxy-name label, hints.forNodes, the autoscaler's taint), and checkpoints of
 * objects as that release parsed them (no hintNodes, no beingRemoved). Before the fixes, opening it
 * migrated fine and then the planner exited on its first restore (`Cannot read properties of
 * undefined (reading 'length')` from an old checkpoint; without checkpoints `rebuilt content of
 * version 3 has hash …, the log recorded …`), `replay` failed or said match: false, and
 * `db verify --deep` called the log broken.
 */

const FIXTURE = path.resolve(import.meta.dirname, '../../fixtures/eventlog/release-0f3dc3b.sql');
const RECORDED: Record<number, string> = {
  1: 'be82316496b04919c92dad64d289de4314149aa1275e002be44d6f55a900f6ae',
  2: '5a43f380a845755d',
  3: 'b97e0852dd5d28e8ed90b3ff9d5d778760f8167d2f1f69a9a348b8d55f1d12d1',
};

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/**
 * The older release's file, as it left it (schema 0004, not yet migrated). `checkpoints: false`:
 * without its checkpoints, as that release left a log shorter than its default --checkpoint-every
 * (10 000 events); checkpoints are a cache of the fold, no chain covers them.
 */
function olderReleaseLog(opts: { checkpoints?: boolean } = {}): string {
  const file = tmp.file();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('application_id = 1398227524');
  db.exec(fs.readFileSync(FIXTURE, 'utf8'));
  if (opts.checkpoints === false) db.exec('DELETE FROM checkpoint_pieces; DELETE FROM checkpoints');
  db.close();
  return file;
}

describe('a log written by release 0f3dc3b, opened by this release', () => {
  it('replays every version to the hash that release recorded, from its checkpoints and from the events alone', async () => {
    const log = await openLog(olderReleaseLog()); // migrates 0005 on
    try {
      expect(log.latestVersion()?.version).toBe(3);
      for (const v of [1, 2, 3]) {
        for (const ignoreCheckpoints of [false, true]) {
          const r = replayVersion(log, v, { ignoreCheckpoints });
          expect({ v, ignoreCheckpoints, hash: r.hash }).toEqual({ v, ignoreCheckpoints, hash: r.version.hash });
          expect(r.hash.startsWith(RECORDED[v]!)).toBe(true);
        }
      }
      // version 1 and 3 start from that release's checkpoints; version 2 folds an event after one
      expect(replayVersion(log, 2).checkpointSeq).toBe(11);
      expect(replayVersion(log, 2).eventsApplied).toBe(1);
    } finally {
      log.close();
    }
  });

  it('db verify --deep finds nothing wrong', async () => {
    const log = await openLog(olderReleaseLog());
    try {
      expect(verifyLog(log, { deep: true }).problems).toEqual([]);
    } finally {
      log.close();
    }
  });

  it('a planner restores from it: the published content is version 3 as recorded, the live state read with this release', async () => {
    const log = await openLog(olderReleaseLog());
    try {
      const axis = DataAxis.restore(log);
      expect(axis.latest()?.version).toBe(3);
      expect(axis.publishedHash()).toBe(RECORDED[3]);
      // This release reads the same events otherwise (the Proxy-mode ingress, the other proxy's
      // Service, the node hints, the taint): its first version after the upgrade changes content.
      expect(axis.live.hash()).not.toBe(RECORDED[3]);
    } finally {
      log.close();
    }
  });

  it("audit node: an ACK of a version the older release made is flagged so (its appliers' rendering may differ), a new version's is not", async () => {
    const log = await openLog(olderReleaseLog());
    try {
      log.recordConfigRevision({ config: { mode: 'ipvs' } as never, reason: 'initial' });
      const ack = (version: number) =>
        log.recordAck({
          type: 'ACK',
          node: 'node-a',
          version,
          configRevision: 2,
          dataHash: log.version(version)!.hash,
          nodeStateHash: 'f'.repeat(64), // an older applier's rendering
          mode: 'ipvs',
          kernelWrites: 0,
          timings: { fetchMs: 0, renderMs: 0, applyMs: 0 },
          at: new Date().toISOString(),
        });
      ack(3);
      expect(nodeAt(log, 'node-a')).toMatchObject({
        nodeStateVerified: false,
        madeByOlderRelease: { readingRevision: 1 },
      });
      const axis = DataAxis.restore(log);
      const v = axis.sync(); // this release's first version: its readings, and why its content changed
      expect(v?.record.version).toBe(4);
      expect(v?.record.reason).toContain('reading revision 4 (was 1)');
      expect(v?.record.reason).toContain(
        'and the readings the release that wrote this log lacked (probe6 P4, P5, P14; a Node on its way out)',
      );
      ack(4);
      const r = nodeAt(log, 'node-a');
      expect(r.ack?.version).toBe(4);
      expect(r.nodeStateVerified).toBe(false);
      expect(r.madeByOlderRelease).toBeUndefined();
    } finally {
      log.close();
    }
  });

  it('db compact right after the upgrade (no version of this release yet) keeps every retained version rebuildable', async () => {
    // probe15 U8: the checkpoint written at the cut was this release's fold of that release's
    // events; versions 2 and 3 then rebuilt to other hashes, and the planner refused to start.
    const log = await openLog(olderReleaseLog({ checkpoints: false }));
    try {
      expect(verifyLog(log, { deep: true }).problems).toEqual([]);
      compactLog(log, 2);
      for (const v of [2, 3]) expect(replayVersion(log, v).hash).toBe(log.version(v)!.hash);
      expect(verifyLog(log, { deep: true }).problems).toEqual([]);
      expect(DataAxis.restore(log).publishedHash()).toBe(RECORDED[3]);
    } finally {
      log.close();
    }
  });
});
