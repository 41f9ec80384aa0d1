import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { contentSource, rebuildAtSeq, replayVersion } from '../../../libs/eventlog/index.ts';
import { DataAxis } from '../../../libs/versioning/index.ts';
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
      const log = await openLog(tmp.file(), steppingClock());
      try {
        // The fixtures were recorded by planners that read with reading revision 1.
        const recorded = driveDataAxis(log, steps, { axis: DataAxis.restore(log, { readingRevision: 1 }) });
        expect(recorded.map((v) => v.hash)).toEqual(contentHashes(name));
        for (const { version, hash } of recorded)
          expect(replayVersion(log, version).hash, `version ${version}`).toBe(hash);
      } finally {
        log.close();
      }
    });

    it(`${name}: with the fields an apiserver adds: the planner logs projections, and an old log of whole objects folds to the same versions`, async () => {
      const steps = fs
        .readFileSync(path.join(FIXTURES, name), 'utf8')
        .trim()
        .split('\n')
        .map((l) => withApiServerFields(JSON.parse(l) as HistoryStep));
      const log = await openLog(tmp.file(), steppingClock());
      const old = await openLog(tmp.file(), steppingClock()); // as a planner before K3 wrote it
      try {
        const recorded = driveDataAxis(log, steps, { axis: DataAxis.restore(log, { readingRevision: 1 }) });
        for (const step of steps) if ('batch' in step) old.appendEvents(step.batch);
        expect(old.lastSeq()).toBe(log.lastSeq());
        // the same versions as the fixture's whole objects made (the first test replays these from the log)
        expect(recorded.map((v) => v.hash)).toEqual(contentHashes(name));
        for (const { version, hash } of recorded) {
          const at = contentSource(log, version).seqTo;
          expect(rebuildAtSeq(old, at, { readingRevision: 1 }).hash, `old log, version ${version}`).toBe(hash);
        }
        const bytes = (l: typeof log) => l.events().reduce((n, e) => n + JSON.stringify(e.object).length, 0);
        expect(bytes(log)).toBeLessThan(bytes(old) / 3);
      } finally {
        log.close();
        old.close();
      }
    });
  }
});

/**
 * The fixture's version hashes as the data axis makes them. The fixture was recorded by a driver
 * that also made a version for a pin or unpin that changed no content; the planner's data axis
 * makes none (versions never repeat content back to back). So: the same hashes in the same order,
 * less those repeats.
 */
function contentHashes(name: string): string[] {
  const expected = (
    JSON.parse(fs.readFileSync(path.join(FIXTURES, name.replace(/\.jsonl$/, '.expected.json')), 'utf8')) as {
      versions: { version: number; hash: string }[];
    }
  ).versions;
  return expected.filter((v, i) => i === 0 || v.hash !== expected[i - 1]!.hash).map((v) => v.hash);
}

/** The step's objects as an apiserver serves them: managedFields, a large annotation, status and refs nobody reads. */
function withApiServerFields(step: HistoryStep): HistoryStep {
  if (!('batch' in step)) return step;
  const batch = step.batch.map((e) => {
    const o = structuredClone(e.object) as Record<string, unknown> & { metadata: Record<string, unknown> };
    o.metadata.managedFields = [
      { manager: 'kube-controller-manager', operation: 'Update', fieldsV1: { 'f:spec': {} } },
    ];
    o.metadata.annotations = {
      ...(o.metadata.annotations as object),
      note: `${e.resourceVersion}-${'a'.repeat(2000)}`,
    };
    if (e.kind === 'Node') o.status = { ...(o.status as object), conditions: [{ type: 'Ready', status: 'True' }] };
    if (e.kind === 'Service') o.spec = { ...(o.spec as object), selector: { app: e.name } };
    if (e.kind === 'EndpointSlice' && Array.isArray(o.endpoints))
      o.endpoints = o.endpoints.map((ep: object) => ({ ...ep, targetRef: { kind: 'Pod', name: 'p' } }));
    return { ...e, object: o };
  });
  return { batch };
}
