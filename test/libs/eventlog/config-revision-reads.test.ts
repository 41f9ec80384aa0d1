import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_PROXY_CONFIG, type ProxyConfig } from '../../../libs/model/index.ts';
import { openLog, tempDir } from './support/temp-log.ts';

// EventLog.configRevision keeps what it read (a rollout step asks per wave node per ACK): a held
// revision is shared, so it is frozen, and a truncation, the one thing that drops a revision row,
// must not leave the dropped one served in place of what is written at its number next.

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const withScheduler = (scheduler: string): ProxyConfig => ({ ...DEFAULT_PROXY_CONFIG, scheduler });

describe('config revisions as read', () => {
  it('are shared frozen, and a truncation forgets the ones it dropped', async () => {
    const log = await openLog(tmp.file());
    log.recordConfigRevision({ config: withScheduler('rr'), reason: 'first' });
    const first = log.configRevision(1)!;
    expect(log.configRevision(1)).toBe(first); // read once, held
    expect(Object.isFrozen(first.config)).toBe(true);
    expect(() => {
      (first.config as { scheduler: string }).scheduler = 'changed by a reader';
    }).toThrow(TypeError);
    expect(log.configRevision(1)!.config.scheduler).toBe('rr');

    const at = log.position();
    log.recordConfigRevision({ config: withScheduler('wrr'), reason: 'dropped by the truncation' });
    expect(log.configRevision(2)!.config.scheduler).toBe('wrr');
    log.truncateTo(at, { stream: 's', streamSeq: 1, reason: 'test' });
    expect(log.configRevision(2)).toBeUndefined();
    log.recordConfigRevision({ config: withScheduler('lc'), reason: 'the next leader’s revision 2' });
    expect(log.configRevision(2)).toMatchObject({ revision: 2, reason: 'the next leader’s revision 2' });
    expect(log.configRevision(2)!.config.scheduler).toBe('lc');
    expect(log.configRevision(1)).toEqual(first);
    log.close();
  });
});
