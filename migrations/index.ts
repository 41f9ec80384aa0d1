import type { Migration, MigrationProvider } from 'kysely/migration';
import * as m0001 from './0001-initial.ts';
import * as m0002 from './0002-checkpoint-rejections.ts';
import * as m0003 from './0003-replication.ts';
import * as m0004 from './0004-checkpoint-pieces.ts';
import * as m0005 from './0005-ack-received-at.ts';
import * as m0006 from './0006-replication-stream-created.ts';
import * as m0007 from './0007-compactions.ts';
import * as m0008 from './0008-reading-revision.ts';
import * as m0009 from './0009-compaction-finished-by.ts';
import * as m0010 from './0010-compaction-versions-removed.ts';

/**
 * Every migration, listed statically: a folder scan breaks under bundlers and differs between
 * tsx and vitest, an import list does not. Names sort in the order they must run; add new ones
 * at the end.
 */
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '0001-initial': m0001,
  '0002-checkpoint-rejections': m0002,
  '0003-replication': m0003,
  '0004-checkpoint-pieces': m0004,
  '0005-ack-received-at': m0005,
  '0006-replication-stream-created': m0006,
  '0007-compactions': m0007,
  '0008-reading-revision': m0008,
  '0009-compaction-finished-by': m0009,
  '0010-compaction-versions-removed': m0010,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: async () => ({ ...MIGRATIONS }),
};
