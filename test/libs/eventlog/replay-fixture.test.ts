import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { replayVersion } from '../../../libs/eventlog/index.ts';
import { drivePlanner, type HistoryStep } from './support/random-history.ts';
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
      const steps = fs.readFileSync(path.join(FIXTURES, name), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as HistoryStep);
      const expected = (JSON.parse(fs.readFileSync(path.join(FIXTURES, name.replace(/\.jsonl$/, '.expected.json')), 'utf8')) as
        { versions: { version: number; hash: string }[] }).versions;
      const log = await openLog(tmp.file(), steppingClock());
      try {
        const recorded = drivePlanner(log, steps);
        expect(recorded).toEqual(expected);
        for (const { version, hash } of expected) expect(replayVersion(log, version).hash, `version ${version}`).toBe(hash);
      } finally {
        log.close();
      }
    });
  }
});
