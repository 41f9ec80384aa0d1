import { describe, expect, it } from 'vitest';
import { relistDiff, type RawKubeObject } from '../../../libs/kube/index.ts';

const obj = (name: string, rv: string, uid = `uid-${name}`, namespace = 'default'): RawKubeObject => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace, uid, resourceVersion: rv },
});

describe('relistDiff', () => {
  it('reports vanished objects as DELETED, new as ADDED, changed as MODIFIED, same as nothing', () => {
    const known = new Map([
      ['default/a', obj('a', '1')],
      ['default/b', obj('b', '2')],
      ['default/c', obj('c', '3')],
    ]);
    const changes = relistDiff(known, [obj('a', '1'), obj('c', '9'), obj('d', '10')]);
    expect(changes.map((c) => [c.type, c.object.metadata.name, c.object.metadata.resourceVersion])).toEqual([
      ['DELETED', 'b', '2'],
      ['MODIFIED', 'c', '9'],
      ['ADDED', 'd', '10'],
    ]);
  });

  it('reports a recreated object (new uid) as DELETED then ADDED', () => {
    const known = new Map([['default/a', obj('a', '1', 'old')]]);
    expect(relistDiff(known, [obj('a', '5', 'new')]).map((c) => [c.type, c.object.metadata.uid])).toEqual([
      ['DELETED', 'old'],
      ['ADDED', 'new'],
    ]);
  });

  it('is empty when nothing changed and all ADDED from nothing', () => {
    expect(relistDiff(new Map([['default/a', obj('a', '1')]]), [obj('a', '1')])).toEqual([]);
    expect(relistDiff(new Map(), [obj('a', '1'), obj('b', '2')]).map((c) => c.type)).toEqual(['ADDED', 'ADDED']);
  });
});
