import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  HEAP_CLEAR_SHARE,
  HEAP_WARN_SHARE,
  heapRecovered,
  heapWarning,
  HeapWatch,
} from '../../../services/cli/heap-headroom.ts';

const MB = 1e6;
const here = path.dirname(fileURLToPath(import.meta.url));

describe('heapWarning', () => {
  it('warns from 80 % of the limit, names the figures and what to do, and stands until under 70 %', () => {
    const limit = 524 * MB;
    expect(heapWarning({ liveBytes: 0.79 * limit, limitBytes: limit }, false)).toBeUndefined();
    const line = heapWarning({ liveBytes: 0.8 * limit, limitBytes: limit }, false);
    expect(line).toBe(
      'heap 419 MB in use after a full collection, 80 % of its 524 MB limit (Node\'s: half the container\'s memory limit, at most ~2 GiB below 16 GiB; or --max-old-space-size): at the limit this process stops with "JavaScript heap out of memory"; raise its memory limit, past 4 GiB with --max-old-space-size (docs/install.md, "Memory")',
    );
    // once warned: still warned between the two shares, cleared under the lower one
    expect(heapWarning({ liveBytes: 0.75 * limit, limitBytes: limit }, true)).toContain('75 % of its 524 MB limit');
    expect(heapWarning({ liveBytes: 0.75 * limit, limitBytes: limit }, false)).toBeUndefined();
    expect(heapWarning({ liveBytes: 0.69 * limit, limitBytes: limit }, true)).toBeUndefined();
    expect(HEAP_CLEAR_SHARE).toBeLessThan(HEAP_WARN_SHARE);
    expect(heapRecovered({ liveBytes: 0.5 * limit, limitBytes: limit })).toBe(
      'heap back to 262 MB after a full collection, 50 % of its 524 MB limit',
    );
  });
});

describe('HeapWatch', () => {
  it('says one line when the heap crosses the warning share and one when it is back, none at each reading between', () => {
    let used = 100 * MB;
    const said: [string, boolean][] = [];
    const watch = new HeapWatch({
      say: (line, warning) => said.push([line, warning]),
      stats: () => ({ used_heap_size: used, heap_size_limit: 500 * MB }),
    });
    try {
      for (const u of [100, 390, 410, 420, 360, 380, 340, 200]) {
        used = u * MB;
        watch.read();
      }
      expect(said).toEqual([
        [heapWarning({ liveBytes: 410 * MB, limitBytes: 500 * MB }, false)!, true],
        [heapRecovered({ liveBytes: 340 * MB, limitBytes: 500 * MB }), false],
      ]);
      expect(watch.reading).toEqual({ liveBytes: 200 * MB, limitBytes: 500 * MB });
      expect(watch.warning).toBeUndefined();
    } finally {
      watch.stop();
    }
  });

  it("in a real process near its limit: warned after V8's own full collections, cleared after the heap is let go", () => {
    const r = spawnSync(
      process.execPath,
      [
        '--max-old-space-size=64',
        '--max-semi-space-size=1',
        '--expose-gc',
        '--import',
        'tsx',
        path.join(here, 'heap-watch-child.ts'),
      ],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, SHARE: '0.9' } },
    );
    expect(r.stderr).not.toContain('heap out of memory');
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const held = lines.find((l) => 'held' in l) as { held: number; limit: number; reading: { liveBytes: number } };
    const warnings = lines.filter((l) => l.warning === true);
    const cleared = lines.filter((l) => l.warning === false);
    // warned once, before the allocation stopped, from a reading V8's own collections triggered
    expect(warnings).toHaveLength(1);
    expect(lines.indexOf(warnings[0]!)).toBeLessThan(lines.indexOf(held));
    expect(String(warnings[0]!.line)).toMatch(
      /^heap \d+ MB in use after a full collection, (8\d|9\d) % of its \d+ MB limit/,
    );
    expect(held.reading.liveBytes).toBeGreaterThanOrEqual(HEAP_WARN_SHARE * held.limit * 0.95);
    // the heap let go and collected: one line saying so, the reading far under the limit
    expect(cleared).toHaveLength(1);
    expect(String(cleared[0]!.line)).toMatch(/^heap back to \d+ MB after a full collection/);
    const released = lines.find((l) => 'released' in l) as { reading: { liveBytes: number } };
    expect(released.reading.liveBytes).toBeLessThan(HEAP_CLEAR_SHARE * held.limit);
  });
});
