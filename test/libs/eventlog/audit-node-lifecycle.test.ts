import { afterAll, describe, expect, it, vi } from 'vitest';
import { nodeLifecycleOf, type NodeEventRow } from '../../../libs/eventlog/index.ts';
import type { WatchEvent } from '../../../libs/model/index.ts';
import { main } from '../../../services/cli/main.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// probe20 P20-7: `audit node` printed the node's last ACK only: a Node deleted and re-created with a
// new address, or one deleted while its applier ran on, read like a node that never changed.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const nodeObject = (name: string, uid: string, ips: string[], extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name, uid, ...extra },
  status: {
    addresses: [...ips.map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: name }],
  },
});
const row = (seq: number, type: NodeEventRow['type'], uid: string, object: unknown): NodeEventRow => ({
  seq,
  receivedAt: `2026-01-01T10:00:${String(seq).padStart(2, '0')}.000Z`,
  type,
  uid,
  object,
});

describe('nodeLifecycleOf', () => {
  it('added, addresses changed, marked for removal, deleted, re-created with a new uid; other updates are no entry', () => {
    const n = (uid: string, ips: string[], extra?: Record<string, unknown>) => nodeObject('n1', uid, ips, extra);
    const entries = nodeLifecycleOf([
      row(1, 'ADDED', 'u1', n('u1', ['10.0.0.1'])),
      row(2, 'MODIFIED', 'u1', n('u1', ['10.0.0.1'], { labels: { team: 'x' } })), // no change that serves differently
      row(3, 'MODIFIED', 'u1', n('u1', ['10.0.0.1', '10.0.0.2'])),
      row(4, 'MODIFIED', 'u1', n('u1', ['10.0.0.2', '10.0.0.1'])), // the same set, another order
      row(5, 'MODIFIED', 'u1', n('u1', ['10.0.0.2'], { deletionTimestamp: '2026-01-01T10:00:05Z' })),
      row(6, 'DELETED', 'u1', n('u1', ['10.0.0.2'])),
      row(7, 'DELETED', 'u1', n('u1', ['10.0.0.2'])), // a repeat (a relist) is no second deletion
      row(8, 'ADDED', 'u2', n('u2', ['10.0.0.9'])),
      row(9, 'MODIFIED', 'u3', n('u3', ['10.0.0.9'])), // another uid, its DELETED missed
      row(10, 'MODIFIED', 'u3', { kind: 'Node', metadata: {} }), // refused by the readers: changes nothing
    ]);
    expect(entries.map((e) => [e.seq, e.change, e.uid, e.addresses.join(' ')])).toEqual([
      [1, 'added', 'u1', '10.0.0.1'],
      [3, 'addresses changed', 'u1', '10.0.0.1 10.0.0.2'],
      [5, 'addresses changed', 'u1', '10.0.0.2'],
      [5, 'marked for removal (deletionTimestamp)', 'u1', '10.0.0.2'],
      [6, 'deleted', 'u1', '10.0.0.2'],
      [8, 're-created (new uid)', 'u2', '10.0.0.9'],
      [9, 'replaced (new uid)', 'u3', '10.0.0.9'],
    ]);
  });

  it('a log whose older events were compacted starts with the Node present, not added', () => {
    expect(nodeLifecycleOf([row(40, 'MODIFIED', 'u1', nodeObject('n1', 'u1', ['10.0.0.1']))])[0]?.change).toBe(
      'present (earlier events compacted)',
    );
    expect(nodeLifecycleOf([])).toEqual([]);
  });
});

async function cli(...args: string[]): Promise<string> {
  let out = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
    out += String(s);
    return true;
  });
  try {
    expect(await main(args)).toBe(0);
  } finally {
    o.mockRestore();
  }
  return out;
}

describe('audit node: the Node object lifecycle (real log, the CLI)', () => {
  it('says when the Node was deleted and re-created with another address; --at stops at that time; -o json lists it', async () => {
    const T0 = Date.parse('2026-01-01T10:00:00.000Z');
    let t = T0;
    const file = tmp.file('lifecycle.db');
    const log = await openLog(file, () => new Date(t));
    const ev = (type: WatchEvent['type'], uid: string, ip: string, name = 'n1'): WatchEvent => ({
      kind: 'Node',
      type,
      origin: 'watch',
      namespace: '',
      name,
      uid,
      resourceVersion: String(t),
      object: nodeObject(name, uid, [ip]),
    });
    log.appendEvents([ev('ADDED', 'u1', '192.0.2.1'), ev('ADDED', 'u9', '192.0.2.9', 'n2')]);
    t += 60_000;
    log.appendEvents([ev('DELETED', 'u1', '192.0.2.1')]);
    t += 60_000;
    log.appendEvents([ev('ADDED', 'u2', '192.0.2.7')]);
    log.close();

    const text = await cli('audit', '--db', file, 'node', 'n1');
    expect(text).toContain(
      'Node object (3 change(s) in the log):\n' +
        '  2026-01-01 10:00:00Z seq 1 added (uid u1, 192.0.2.1)\n' +
        '  2026-01-01 10:01:00Z seq 3 deleted (uid u1, 192.0.2.1)\n' +
        '  2026-01-01 10:02:00Z seq 4 re-created (new uid) (uid u2, 192.0.2.7)\n',
    );
    const before = await cli('audit', '--db', file, 'node', 'n1', '--at', new Date(T0 + 90_000).toISOString());
    expect(before).toMatch(/Node object \(2 change\(s\) in the log\):\n.* seq 1 added .*\n.* seq 3 deleted .*\n$/);
    const json = JSON.parse(await cli('audit', '--db', file, 'node', 'n1', '-o', 'json')) as {
      lifecycle: { seq: number; change: string; uid: string; addresses: string[] }[];
    };
    expect(json.lifecycle.map((e) => [e.seq, e.change, e.uid, e.addresses])).toEqual([
      [1, 'added', 'u1', ['192.0.2.1']],
      [3, 'deleted', 'u1', ['192.0.2.1']],
      [4, 're-created (new uid)', 'u2', ['192.0.2.7']],
    ]);
    expect(await cli('audit', '--db', file, 'node', 'n3')).toContain('Node object: no event of this name in the log\n');
  });
});
