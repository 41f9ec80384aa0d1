import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replayVersion } from '../../../libs/eventlog/index.ts';
import { driveDataAxis, type HistoryStep } from './support/random-history.ts';
import { openLog, steppingClock, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const FIXTURES = path.join(import.meta.dirname, '../../fixtures/eventlog');

/**
 * Temporal-style replay fixtures: checked-in histories with the version hashes recorded when they
 * were made (bench/eventlog/make-replay-fixture.ts). A change to reading, folding, building or
 * hashing that alters any old outcome fails here. Never regenerate a fixture to make this pass.
 */
describe('replay fixtures', () => {
  const names = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.jsonl'));
  it('has at least one fixture', () => expect(names.length).toBeGreaterThan(0));
  for (const name of names) {
    it(`${name}: recorded and replayed hashes equal the fixture's, for every version`, async () => {
      const steps = fs
        .readFileSync(path.join(FIXTURES, name), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as HistoryStep);
      const expected = (
        JSON.parse(fs.readFileSync(path.join(FIXTURES, name.replace(/\.jsonl$/, '.expected.json')), 'utf8')) as {
          versions: { version: number; hash: string }[];
        }
      ).versions;
      const log = await openLog(tmp.file(), steppingClock());
      try {
        const recorded = driveDataAxis(log, steps);
        // The fixture was recorded by a driver that also made a version for a pin or unpin that
        // changed no content; the planner's data axis makes none (versions never repeat content
        // back to back). So: the same hashes in the same order, less those repeats.
        const contentChanges = expected
          .filter((v, i) => i === 0 || v.hash !== expected[i - 1]!.hash)
          .map((v) => v.hash);
        expect(recorded.map((v) => v.hash)).toEqual(contentChanges);
        for (const { version, hash } of recorded)
          expect(replayVersion(log, version).hash, `version ${version}`).toBe(hash);
      } finally {
        log.close();
      }
    });
  }
});
