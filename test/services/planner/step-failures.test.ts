import { describe, expect, it } from 'vitest';
import { StepFailures, type StepFailureChange } from '../../../services/planner/step-failures.ts';

function failures(sayEveryMs = 60_000) {
  let now = 1000;
  const said: StepFailureChange[] = [];
  const errors: string[] = [];
  const f = new StepFailures({
    onError: (where) => errors.push(where),
    onChange: (c) => said.push(c),
    sayEveryMs,
    nowMs: () => now,
  });
  return { f, said, errors, at: (ms: number) => (now = ms) };
}

describe('StepFailures: what is said of a failing step', () => {
  it('says a failure once when it starts, not at every retry, and says when it is over and for how long', () => {
    const { f, said, errors, at } = failures();
    f.fail('source', new Error('manifests directory /m does not exist'));
    for (let t = 2000; t <= 30_000; t += 1000) {
      at(t);
      f.fail('source', new Error('manifests directory /m does not exist'));
    }
    expect(said).toEqual([{ where: 'source', failing: 'manifests directory /m does not exist' }]);
    expect(errors).toHaveLength(30); // every failure still counts (metrics)
    expect(f.of('source')).toBe('source: manifests directory /m does not exist');
    at(31_500);
    f.recovered('source');
    f.recovered('source'); // a success that follows a success says nothing
    expect(said.slice(1)).toEqual([{ where: 'source', failedForMs: 30_500 }]);
    expect(f.last).toBeUndefined();
  });

  it('says a changed failure at most once per interval, and each step of its own', () => {
    const { f, said, at } = failures(60_000);
    f.fail('publish', 'timeout');
    at(5000);
    f.fail('publish', 'maximum bytes exceeded'); // changed, but within the minute: not said
    f.fail('append', 'SQLITE_FULL'); // another step: said
    at(61_000);
    f.fail('publish', 'maximum bytes exceeded'); // changed since said, a minute on: said
    at(62_000);
    f.fail('publish', 'timeout');
    expect(said).toEqual([
      { where: 'publish', failing: 'timeout' },
      { where: 'append', failing: 'SQLITE_FULL' },
      { where: 'publish', failing: 'maximum bytes exceeded' },
    ]);
  });

  it("never says a failure noted as someone else's to say, nor its end", () => {
    const { f, said } = failures();
    f.fail('lease', 'stepped down (lease lost)', false);
    expect(f.last).toBe('lease: stepped down (lease lost)');
    f.recovered('lease');
    expect(said).toEqual([]);
  });

  it('says a failure again once the step failed anew after working', () => {
    const { f, said, at } = failures();
    f.fail('sync', 'x');
    at(2000);
    f.recovered('sync');
    at(3000);
    f.fail('sync', 'x');
    expect(said).toEqual([
      { where: 'sync', failing: 'x' },
      { where: 'sync', failedForMs: 1000 },
      { where: 'sync', failing: 'x' },
    ]);
  });
});
