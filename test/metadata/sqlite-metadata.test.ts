import { after } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadata } from '../../src/metadata/sqlite-metadata.ts';
import { metadataConformance } from './metadata-conformance.ts';

const dir = await mkdtemp(join(tmpdir(), 'narwhal-sqlite-conformance-'));
after(() => rm(dir, { recursive: true, force: true }));
let n = 0;

metadataConformance('sqlite', { open: async () => new SqliteMetadata(join(dir, `db${n++}.sqlite`)) });
