import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// Code outside libs/X reaches libs/X only through libs/X/index.ts, its public surface (docs/architecture.md,
// "Module boundaries").
// libs/X itself and its unit tests (test/libs/X/, which mirror it) may import any of its files.

const root = path.resolve(import.meta.dirname, '../..');
const SCANNED = ['libs', 'services', 'test', 'bench', 'scripts'];

/**
 * Deep imports kept on purpose, each with why. `ctl` and `--help` must load no heavy module
 * (test/build/dist.test.ts): libs/control's and libs/model's indexes pull the wire schemas (zod),
 * so the CLI's flag helpers on that path take the one leaf file they need.
 */
const ALLOWED: ReadonlyMap<string, string> = new Map([
  ['services/cli/flag-values.ts -> libs/control/parse-waves.ts', 'ctl path: no zod'],
  ['services/cli/rollout-flags.ts -> libs/control/wave-policy.ts', 'ctl path: no zod'],
  ['services/cli/config-fields.ts -> libs/model/proxy-config.ts', 'ctl path: no zod'],
  ['services/cli/commands/ctl.ts -> libs/eventlog/compaction-record.ts', 'ctl path: no SQLite'],
  ['services/cli/commands/ctl.ts -> libs/control/wave-policy.ts', 'ctl path: no zod'],
  ['services/cli/commands/ctl.ts -> libs/control/node-status.ts', 'ctl path: no zod'],
  ['services/cli/operation-sentences.ts -> libs/control/field-changes.ts', 'ctl path: no zod'],
  [
    'test/libs/versioning/reading-revision.test.ts -> libs/eventlog/database-handle.ts',
    "moves a revision-1 log's rows into a replica below EventLog's API (as the event log's own replication tests do)",
  ],
  [
    'test/libs/versioning/reading-revision.test.ts -> libs/eventlog/log-rows.ts',
    "exportRows/importRows: a replica import across the upgrade, below EventLog's API",
  ],
  [
    'test/fixtures/previous-release/wire-schemas.ts -> libs/model/proxy-config.ts',
    "a verbatim copy of the previous release's wire schemas (interop tests): its imports stay as shipped",
  ],
  [
    'bench/scale/checkpoint-memory.ts -> libs/eventlog/checkpoints.ts',
    "the bench times the checkpoint store alone (old and new writer side by side), below EventLog's API",
  ],
  [
    'bench/scale/checkpoint-memory.ts -> libs/eventlog/database-handle.ts',
    "the bench times the checkpoint store alone (old and new writer side by side), below EventLog's API",
  ],
  [
    'bench/eventlog/nodes-behind-bench.ts -> libs/eventlog/database-handle.ts',
    "the bench times the old ACK query (a raw SQL scan) beside nodesBehind on the same file, below EventLog's API",
  ],
  [
    'test/services/planner/planner-stop-resume.test.ts -> libs/eventlog/database-handle.ts',
    "a full disk on the running planner's own SQLite connection (max_page_count is per connection), below EventLog's API",
  ],
  [
    'libs/eventlog/replication.ts -> libs/bus/jetstream-transient.ts',
    'the bus index imports libs/eventlog (published anchors): the index would make a cycle',
  ],
  [
    'libs/eventlog/replication.ts -> libs/bus/jetstream-refusal.ts',
    'the bus index imports libs/eventlog (published anchors): the index would make a cycle; a leaf (the NATS client only)',
  ],
  [
    'libs/eventlog/replication.ts -> libs/bus/stream-replicas.ts',
    'the bus index imports libs/eventlog (published anchors): the index would make a cycle',
  ],
  [
    'libs/eventlog/replication-signing.ts -> libs/bus/planner-signature.ts',
    'the bus index imports libs/eventlog (published anchors): the index would make a cycle',
  ],
  [
    'libs/eventlog/log-replicator.ts -> libs/bus/planner-signature.ts',
    'the bus index imports libs/eventlog (published anchors): the index would make a cycle',
  ],
  [
    'libs/eventlog/replication.ts -> libs/bus/stream-limits.ts',
    'the bus index imports libs/eventlog (published anchors): the index would make a cycle',
  ],
]);

/** `importer -> target` for every relative import that crosses into another lib past its index. */
function deepImports(files: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  for (const [file, text] of files) {
    const from = file.split('/');
    for (const ref of ts.preProcessFile(text, true, true).importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), ref.fileName));
      const [top, lib, ...rest] = target.split('/');
      if (top !== 'libs' || lib === undefined || rest.length === 0) continue;
      if (rest.length === 1 && rest[0] === 'index.ts') continue;
      if (from[0] === 'libs' && from[1] === lib) continue;
      if (from[0] === 'test' && from[1] === 'libs' && from[2] === lib) continue;
      out.push(`${file} -> ${target}`);
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mts|js|mjs)$/.test(e.name) && !e.parentPath.includes('node_modules'))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
}

/** Production files (libs, services, scripts, migrations) that import `pkg`. */
function importersOf(files: ReadonlyMap<string, string>, pkg: string): string[] {
  return [...files]
    .filter(([f]) => /^(libs|services|scripts|migrations)\//.test(f))
    .filter(([, text]) =>
      ts
        .preProcessFile(text, true, true)
        .importedFiles.some((r) => r.fileName === pkg || r.fileName.startsWith(`${pkg}/`)),
    )
    .map(([f]) => f)
    .sort();
}

describe('import boundaries between libs', () => {
  it('flags a deep import from another lib, a service or a test of another lib; allows the index and the lib itself', () => {
    const files = new Map([
      ['libs/planner/a.ts', "import { x } from '../eventlog/event-log.ts';\nimport { y } from '../eventlog/index.ts';"],
      ['libs/eventlog/b.ts', "import { z } from './replay.ts';\nexport * from '../model/kube-objects.ts';"],
      ['services/cli/c.ts', "const m = await import('../../libs/bus/subjects.ts');"],
      [
        'test/libs/bus/d.test.ts',
        "import { s } from '../../../libs/bus/subjects.ts';\nimport { t } from '../../../libs/kube/kube-http.ts';",
      ],
    ]);
    expect(deepImports(files)).toEqual([
      'libs/planner/a.ts -> libs/eventlog/event-log.ts',
      'libs/eventlog/b.ts -> libs/model/kube-objects.ts',
      'services/cli/c.ts -> libs/bus/subjects.ts',
      'test/libs/bus/d.test.ts -> libs/kube/kube-http.ts',
    ]);
  });

  it('the tree has no deep import outside the reasoned exceptions', () => {
    const files = new Map(
      SCANNED.flatMap(sourceFiles).map((f) => [f, readFileSync(path.join(root, f), 'utf8')] as const),
    );
    const found = deepImports(files);
    expect(found.filter((d) => !ALLOWED.has(d))).toEqual([]);
    // an exception whose import is gone is removed from the list, so the list stays true
    expect([...ALLOWED.keys()].filter((a) => !found.includes(a))).toEqual([]);
  });

  it('the event log keeps SQLite to itself and has one query style: prepared statements; kysely only migrates', () => {
    const files = new Map(
      [...SCANNED, 'migrations']
        .flatMap(sourceFiles)
        .map((f) => [f, readFileSync(path.join(root, f), 'utf8')] as const),
    );
    // better-sqlite3 (the handle and its prepared statements) is used by libs/eventlog alone, and
    // by the process lock for SQLite's file lock only (no table of data: Node has no flock)
    expect(
      importersOf(files, 'better-sqlite3').filter(
        (f) => !f.startsWith('libs/eventlog/') && f !== 'libs/locks/process-lock.ts',
      ),
    ).toEqual([]);
    // kysely: its Migrator in open-database.ts and the migrations' raw DDL, never a query builder
    expect(
      importersOf(files, 'kysely').filter(
        (f) => f !== 'libs/eventlog/open-database.ts' && !f.startsWith('migrations/'),
      ),
    ).toEqual([]);
  });
});
