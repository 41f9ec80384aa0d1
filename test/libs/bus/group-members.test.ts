import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { GroupMembers, membersFromRecords, type GroupMember, type MemberRecord } from '../../../libs/bus/index.ts';
import { startNatsServer } from '../../support/nats-server.ts';

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

describe('group members on a real nats-server', () => {
  it('each planner lists the others, and a beat leaves no consumer behind (kv.keys() left one per beat: probe5)', async () => {
    const server = await startNatsServer({ jetstream: true });
    const nc = await connect({ servers: server.url });
    const open = (id: string, leader: boolean) =>
      GroupMembers.open({ nc, group: 'g', ttlMs: 60_000, self: () => ({ id, leader, term: 1, lagRows: 0 }) });
    const a = await open('planner-a', true);
    const b = await open('planner b/2', false); // an id a KV key could not hold as it is
    try {
      for (let i = 0; i < 10; i++) {
        await a.beat();
        await b.beat();
      }
      expect(a.list().map((m) => [m.id, m.leader])).toEqual([
        ['planner b/2', false],
        ['planner-a', true],
      ]);
      expect(b.list().map((m) => m.id)).toEqual(['planner b/2', 'planner-a']);
      const jsm = await jetstreamManager(nc);
      expect((await jsm.streams.info('KV_sb_members_g')).state.consumer_count).toBe(0);
      await b.close();
      await a.beat();
      expect(a.list().map((m) => m.id)).toEqual(['planner-a']); // a deleted record is not a member
    } finally {
      await a.close();
      await b.close();
      await nc.close();
      await server.stop();
    }
  });
});
