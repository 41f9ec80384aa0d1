import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { driftRepairsCounter } from '../../../libs/dataplane/index.ts';
import { ApplierMetrics } from '../../../services/applier/applier-metrics.ts';
import { plannerMetrics } from '../../../services/planner/planner-metrics.ts';

/** Every `switchboard_…` name written in a source file under `dir` (a metric defined anywhere). */
function namesInSources(dir: string): string[] {
  const names: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const text = readFileSync(path.join(entry.parentPath, entry.name), 'utf8');
    for (const m of text.matchAll(/['"`](switchboard_[a-z0-9_]+)['"`]/g)) names.push(m[1]!);
  }
  return names;
}

describe('docs/operations.md lists every metric the planner and the applier export (review5 F6)', () => {
  it('each registry metric and each switchboard_ name in the sources appears in the Metrics section', async () => {
    const applier = new ApplierMetrics();
    driftRepairsCounter(applier.registry);
    const exported = (await Promise.all([plannerMetrics().registry, applier.registry].map((r) => r.getMetricsAsJSON())))
      .flat()
      .map((m) => m.name)
      .filter((n) => n.startsWith('switchboard_'));
    const defined = [...namesInSources('services'), ...namesInSources('libs')];
    expect(exported.length).toBeGreaterThan(20);
    expect(exported.filter((n) => !defined.includes(n))).toEqual([]); // the source scan sees them all
    const docs = readFileSync('docs/operations.md', 'utf8');
    const section = docs.slice(docs.indexOf('\n## Metrics\n'));
    expect(section.length).toBeGreaterThan(100);
    const undocumented = [...new Set([...exported, ...defined])].filter((n) => !section.includes(`\`${n}`));
    expect(undocumented).toEqual([]);
  });
});
