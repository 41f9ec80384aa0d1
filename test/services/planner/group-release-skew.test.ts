import { describe, expect, it } from 'vitest';
import { membersFromRecords } from '../../../libs/bus/index.ts';
import { LOG_SCHEMA_VERSION } from '../../../libs/eventlog/index.ts';
import { groupStatus } from '../../../services/planner/http-api.ts';

/*
 * probe15 U10: in a group with a follower of an older release (0f3dc3b, whose member record is
 * {id, leader, term, lagRows, api?, at}: no problem, no log schema), the follower stopped at
 * `import: a acks row has 9 columns, expected 8` on its own stderr, and the new leader's status
 * listed it as "follower, lag 1 rows" with no warning. Each planner now announces its release's log
 * schema; the status names a member whose schema is not its own (ctl status prints it as a WARNING).
 */
const record = (m: object) => {
  const id = (m as { id: string }).id;
  // the members bucket's key of a planner id (group-members.ts memberKey)
  return { key: Buffer.from(id).toString('base64url'), value: new TextEncoder().encode(JSON.stringify(m)) };
};

describe('group status: a member of another release is named', () => {
  const at = '2026-12-03T14:50:00.000Z';
  const planners = membersFromRecords([
    // as this release writes it
    record({
      id: 'new1',
      leader: true,
      term: 23,
      lagRows: 0,
      api: 'http://127.0.0.1:19442',
      logSchema: LOG_SCHEMA_VERSION,
      at,
    }),
    // as release 0f3dc3b writes it (services/planner/planner-group.ts there: no problem, no logSchema)
    record({ id: 'old2', leader: false, term: 23, lagRows: 1, api: 'http://127.0.0.1:19445', at }),
    // an older one that announces its schema, and a newer one
    record({ id: 'mid3', leader: false, term: 23, lagRows: 0, logSchema: 7, at }),
    record({ id: 'next4', leader: false, term: 23, lagRows: 0, logSchema: LOG_SCHEMA_VERSION + 1, at }),
  ]);
  const s = groupStatus({
    group: 'switchboard',
    self: { id: 'new1', leader: true, term: 23 },
    leader: undefined,
    lastLeader: undefined,
    lagRows: 0,
    groupVersion: undefined,
    cutOff: undefined,
    noLeader: undefined,
    ttlMs: 15_000,
    planners,
  });
  const problemOf = (id: string) => s.planners.find((p) => p.id === id)?.problem;

  it('a member record without a log schema (the release before) is an older release', () => {
    expect(problemOf('old2')).toBe(
      `runs an older release (its member record has no log schema; this planner's is ${LOG_SCHEMA_VERSION}): it may not import this release's log rows; upgrade it`,
    );
  });

  it('an older or newer schema is named with both numbers; the same schema is no problem', () => {
    expect(problemOf('mid3')).toBe(
      `runs an older release (log schema 7, this planner's ${LOG_SCHEMA_VERSION}): it cannot import rows of the migrations it lacks; upgrade it`,
    );
    expect(problemOf('next4')).toBe(
      `runs a newer release (log schema ${LOG_SCHEMA_VERSION + 1}, this planner's ${LOG_SCHEMA_VERSION}): upgrade this planner`,
    );
    expect(problemOf('new1')).toBeNull();
  });
});
