import { afterAll, describe, expect, it } from 'vitest';
import { logStorage, storageWarning } from '../../../libs/eventlog/index.ts';
import { openLog, tempDir } from './support/temp-log.ts';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const MB = 1024 * 1024;

describe('event log storage (review4 G8)', () => {
  it('warns when free space is below the log itself, below 1 GiB, or below 5% of the filesystem; not otherwise', () => {
    const total = 1000_000 * MB;
    expect(storageWarning({ bytes: 50 * MB, freeBytes: 200_000 * MB, totalBytes: total })).toBeUndefined();
    expect(storageWarning({ bytes: 300_000 * MB, freeBytes: 200_000 * MB, totalBytes: total })).toMatch(
      /^200000 MB free on the event log's filesystem, less than the log itself \(300000 MB\)/,
    );
    expect(storageWarning({ bytes: 50 * MB, freeBytes: 900 * MB, totalBytes: total })).toMatch(/below 1024 MB/);
    expect(storageWarning({ bytes: 50 * MB, freeBytes: 40_000 * MB, totalBytes: total })).toMatch(/below 5% of/);
    expect(
      storageWarning({ bytes: 50 * MB, freeBytes: 900 * MB, totalBytes: total }, { minFreeBytes: MB, minFreeRatio: 0 }),
    ).toBeUndefined();
  });

  it("reads a real log's file, WAL and filesystem; a threshold above the disk's free space warns", async () => {
    const file = tmp.file();
    const log = await openLog(file);
    try {
      const s = logStorage(file)!;
      expect(s.bytes).toBeGreaterThan(0);
      expect(s.bytes).toBeGreaterThanOrEqual(s.walBytes);
      expect(s.freeBytes).toBeGreaterThan(0);
      expect(s.totalBytes).toBeGreaterThanOrEqual(s.freeBytes);
      expect(logStorage(file, { minFreeBytes: s.totalBytes + 1 })?.warning).toMatch(
        /free on the event log's filesystem/,
      );
      expect(logStorage(':memory:')).toBeUndefined();
      expect(logStorage(tmp.file('absent.db'))).toBeUndefined();
    } finally {
      log.close();
    }
  });
});
