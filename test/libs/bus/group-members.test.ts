import { describe, expect, it } from 'vitest';
import { membersFromRecords, type GroupMember, type MemberRecord } from '../../../libs/bus/index.ts';

const key = (id: string) => Buffer.from(id).toString('base64url');
const member = (id: string, at: string, leader = false): GroupMember => ({ id, leader, term: 1, lagRows: 0, at });
const record = (m: GroupMember, k = key(m.id)): MemberRecord => ({ key: k, value: Buffer.from(JSON.stringify(m)) });

describe('group members from the bucket', () => {
  it('a key listed twice in one read (a planner announcing during the listing) is one member, its newest record', () => {
    const older = member('a', '2026-12-01T10:00:00.000Z', true);
    const newer = { ...member('a', '2026-12-01T10:00:01.000Z', true), lagRows: 3 };
    const b = member('b', '2026-12-01T10:00:00.500Z');
    for (const order of [
      [older, b, newer],
      [newer, b, older],
    ]) {
      const list = membersFromRecords(order.map((m) => record(m)));
      expect(list.map((m) => m.id).sort()).toEqual(['a', 'b']);
      expect(list.find((m) => m.id === 'a')).toEqual(newer);
    }
  });

  it("a record under another planner's key, or one that does not parse, is dropped alone", () => {
    const a = member('a', '2026-12-01T10:00:00.000Z', true);
    const forged = record(member('a', '2026-12-01T10:00:09.000Z'), key('b'));
    const garbage: MemberRecord = { key: key('c'), value: Buffer.from('{"id":') };
    const wrongShape: MemberRecord = { key: key('d'), value: Buffer.from('{"id":"d","leader":"yes"}') };
    const list = membersFromRecords([record(a), forged, garbage, wrongShape]);
    expect(list).toEqual([a]);
  });
});
