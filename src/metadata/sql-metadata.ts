import {
  blob,
  chunksDeletedError,
  fileUploadGoneError,
  pathUpload,
  storedSizeDelta,
  toCache,
  toCacheFile,
  toChunk,
  toNar,
  type Row,
  toNarOwners,
  toPath,
  toToken,
} from './metadata-rows.ts';
import { metadataStatements, type MetadataStatements } from './metadata-statements.ts';
import { SKETCH_SUPER_FEATURES } from '../delta/resemblance.ts';
import type { SqlDialect } from './sql-dialect.ts';
import { rawFrameSize } from '../delta/stored-form.ts';
import { packageName } from '../nix/store-path.ts';
import { SIMILAR_ROWS_PER_FEATURE } from './metadata-store.ts';
import { all, get, run, type SqlRunner, type SqlWork } from './sql-work.ts';
import type {
  CacheFile,
  CacheRecord,
  CacheUsage,
  ClosureSize,
  CacheSettings,
  ChunkRecord,
  DeltaCandidate,
  DeltaChunk,
  DeltaCursor,
  ChunkSketch,
  MetadataStore,
  NarPlace,
  NarWithoutPackage,
  NarOwners,
  NarRecord,
  NewChunk,
  NewNar,
  NewPath,
  PathRecord,
  PendingDelta,
  PutPathResult,
  RecompressedChunk,
  SimilarChunk,
  StorageSample,
  StoreStats,
  TokenRecord,
} from './metadata-store.ts';

/**
 * The metadata store over SQL, for SQLite and PostgreSQL alike: each method is written once, as
 * works (sql-work.ts) over one statement catalogue (metadata-statements.ts) in the backend's
 * dialect. The backends supply the connection, the migrations and the runner.
 */
export abstract class SqlMetadata implements MetadataStore {
  readonly #q: MetadataStatements;
  readonly #dialect: SqlDialect;
  readonly #runner: SqlRunner;

  constructor(dialect: SqlDialect, runner: SqlRunner) {
    this.#q = metadataStatements(dialect);
    this.#dialect = dialect;
    this.#runner = runner;
  }

  abstract close(): Promise<void>;
  abstract schemaVersion(): Promise<number>;

  async getCache(name: string): Promise<CacheRecord | undefined> {
    const row = await this.#runner.get(this.#q.cacheByName, [name]);
    return row && toCache(row);
  }

  async createCache(name: string, settings: CacheSettings): Promise<CacheRecord | undefined> {
    const { isPublic, priority, signingKey, trustedKeys, requireSignature, retention, upstreams, upstreamKeys } =
      settings;
    const params = [
      name,
      isPublic,
      priority,
      signingKey,
      trustedKeys.join('\n'),
      requireSignature,
      retention,
      upstreams.join('\n'),
      upstreamKeys.join('\n'),
      Date.now(),
    ];
    const row = await this.#runner.atomic(get(this.#q.insertCache, params));
    return row && toCache(row);
  }

  async updateCache(name: string, changes: Partial<CacheSettings>): Promise<CacheRecord | undefined> {
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        const row = yield* get(q.cacheByName, [name]);
        if (!row) return undefined;
        const next = { ...toCache(row), ...changes };
        yield* run(q.updateCache, [
          next.isPublic,
          next.priority,
          next.signingKey,
          next.trustedKeys.join('\n'),
          next.requireSignature,
          next.retention,
          next.upstreams.join('\n'),
          next.upstreamKeys.join('\n'),
          name,
        ]);
        return next;
      })(),
    );
  }

  async deleteCache(name: string): Promise<boolean> {
    // Under the write lock: the cascade touches many rows, in an order of its own that could deadlock with GC.
    return (await this.#runner.write(run(this.#q.deleteCache, [name]))) > 0;
  }

  async listCaches(): Promise<CacheRecord[]> {
    return (await this.#runner.all(this.#q.caches)).map(toCache);
  }

  async createToken(token: TokenRecord, secretHash: Uint8Array): Promise<void> {
    const params = [
      token.id,
      secretHash,
      token.name,
      token.caches.join(','),
      token.perms.join(','),
      token.createdAt,
      token.expiresAt,
      token.revokedAt,
    ];
    await this.#runner.atomic(run(this.#q.insertToken, params));
  }

  async findTokenBySecretHash(secretHash: Uint8Array): Promise<TokenRecord | undefined> {
    const row = await this.#runner.get(this.#q.tokenBySecretHash, [secretHash]);
    return row && toToken(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.#runner.all(this.#q.tokens)).map(toToken);
  }

  async revokeToken(id: string, at: number): Promise<boolean> {
    return (await this.#runner.atomic(run(this.#q.revokeToken, [at, id]))) > 0;
  }

  async cacheHasNar(cacheId: number, narId: number): Promise<boolean> {
    return (await this.#runner.get(this.#q.cacheUsesNar, [narId, cacheId])) !== undefined;
  }

  async narOwners(narId: number): Promise<NarOwners> {
    return toNarOwners(await this.#runner.all(this.#q.narOwners, [narId, narId]));
  }

  async chunkOwners(chunkId: Uint8Array): Promise<NarOwners> {
    return toNarOwners(await this.#runner.all(this.#q.chunkOwners, [chunkId, chunkId]));
  }

  async cacheHasChunk(cacheId: number, chunkId: Uint8Array): Promise<boolean> {
    return (await this.#runner.get(this.#q.cacheUsesChunk, [chunkId, cacheId])) !== undefined;
  }

  async getNar(narHash: string): Promise<NarRecord | undefined> {
    const row = await this.#runner.get(this.#q.narByHash, [narHash]);
    return row && toNar(row);
  }

  async mayReuseChunk(id: Uint8Array): Promise<boolean> {
    return (await this.#runner.get(this.#q.reusableChunk, [id])) !== undefined;
  }

  async getNarByUpload(fileHash: string, suffix: string): Promise<NarRecord | undefined> {
    const row = await this.#runner.get(this.#q.narByUpload, [fileHash, suffix]);
    return row && toNar(row);
  }

  async commitNar(nar: NewNar): Promise<NarRecord> {
    const chunks = this.#dialect.distinctLists ? distinctChunks(nar.chunks) : nar.chunks;
    return this.#runner.write(commitNar(this.#q, nar, chunks, Date.now()));
  }

  async getPath(cacheId: number, hashPart: string): Promise<PathRecord | undefined> {
    const row = await this.#runner.get(this.#q.path, [cacheId, hashPart]);
    return row && toPath(row);
  }

  async existingPaths(cacheId: number, hashParts: string[]): Promise<Map<string, string>> {
    if (hashParts.length === 0) return new Map();
    const rows = await this.#runner.all(this.#q.storePaths, [cacheId, hashParts]);
    return new Map(rows.map((row) => [String(row.hash_part), String(row.store_path)]));
  }

  async putPath(path: NewPath, options: { replace?: boolean } = {}): Promise<PutPathResult> {
    return this.#runner.write(putPath(this.#q, path, options.replace === true, Date.now()));
  }

  async listPaths(cacheId: number): Promise<PathRecord[]> {
    return (await this.#runner.all(this.#q.paths, [cacheId])).map(toPath);
  }

  async setPathPinned(cacheId: number, hashPart: string, pinned: boolean): Promise<boolean> {
    return (await this.#runner.write(run(this.#q.setPathPinned, [pinned, cacheId, hashPart]))) > 0;
  }

  async deletePaths(cacheId: number, hashParts: string[]): Promise<{ deleted: string[]; referrers: string[] }> {
    const doomed = [...new Set(hashParts)];
    if (doomed.length === 0) return { deleted: [], referrers: [] };
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        const doomedSet = new Set(doomed);
        const referring = yield* all(q.referrers, [cacheId, doomed]);
        const referrers = [...new Set(referring.map((row) => String(row.hash_part)))].filter((h) => !doomedSet.has(h));
        if (referrers.length > 0) return { deleted: [], referrers };
        const removed = new Set((yield* all(q.deletePaths, [cacheId, doomed])).map((row) => String(row.hash_part)));
        return { deleted: doomed.filter((h) => removed.has(h)), referrers: [] };
      })(),
    );
  }

  async recordPathAccess(cacheId: number, hashPart: string, at: number, staleBefore: number): Promise<void> {
    await this.#runner.atomic(run(this.#q.touchPath, [at, cacheId, hashPart, staleBefore]));
  }

  async recordNarAccess(cacheId: number, narId: number, at: number, staleBefore: number): Promise<void> {
    // Read first: a NAR is served far more often than its paths' access times go stale. The update
    // may touch several rows, so it takes the write lock: row locks taken in an order of its own
    // could deadlock with a GC transaction.
    if (!(await this.#runner.get(this.#q.staleNarPath, [narId, cacheId, staleBefore]))) return;
    await this.#runner.write(run(this.#q.touchNarPaths, [at, narId, cacheId, staleBefore]));
  }

  async getFile(cacheId: number, name: string): Promise<CacheFile | undefined> {
    const row = await this.#runner.get(this.#q.file, [cacheId, name]);
    return row && toCacheFile(row);
  }

  async getFilePiece(contentId: number, seq: number): Promise<Uint8Array | undefined> {
    const row = await this.#runner.get(this.#q.filePiece, [contentId, seq]);
    return row && blob(row.data);
  }

  async startFileUpload(): Promise<number> {
    return Number((await this.#runner.atomic(get(this.#q.insertFileContent, [Date.now()])))!.id);
  }

  async appendFilePiece(contentId: number, seq: number, data: Uint8Array): Promise<void> {
    const q = this.#q;
    const writableCtes = this.#dialect.writableCtes;
    const now = Date.now();
    // No piece is added to a content GC deleted.
    await this.#runner.atomic(
      (function* () {
        if (writableCtes) {
          if ((yield* run(q.growFileContentWithPiece, [data.length, now, contentId, seq, data])) === 0)
            throw fileUploadGoneError();
          return;
        }
        if ((yield* run(q.growFileContent, [data.length, now, contentId])) === 0) throw fileUploadGoneError();
        yield* run(q.insertFilePiece, [contentId, seq, data]);
      })(),
    );
  }

  async commitFile(cacheId: number, name: string, file: CacheFile): Promise<void> {
    const q = this.#q;
    const now = Date.now();
    await this.#runner.write(
      (function* () {
        const content = yield* get(q.fileContentSize, [file.contentId]);
        if (!content || Number(content.size) !== file.size) throw fileUploadGoneError();
        const previous = yield* get(q.fileContentId, [cacheId, name]);
        yield* run(q.upsertFile, [
          cacheId,
          name,
          file.contentId,
          file.size,
          file.contentType,
          file.contentEncoding,
          now,
        ]);
        if (previous) yield* run(q.deleteUnusedFileContent, [Number(previous.content_id)]);
      })(),
    );
  }

  async discardFileUpload(contentId: number): Promise<void> {
    await this.#runner.write(run(this.#q.deleteUnusedFileContent, [contentId]));
  }

  async deleteAbandonedFileContents(before: number, limit: number): Promise<{ contents: number; bytes: number }> {
    const rows = await this.#runner.write(all(this.#q.deleteAbandonedFileContents, [before, limit]));
    return { contents: rows.length, bytes: rows.reduce((sum, row) => sum + Number(row.size), 0) };
  }

  async stats(): Promise<StoreStats> {
    const row = (await this.#runner.get(this.#q.stats))!;
    return {
      paths: Number(row.paths),
      nars: Number(row.nars),
      narBytes: Number(row.nar_bytes),
      chunks: Number(row.chunks),
      chunkBytes: Number(row.chunk_bytes),
      storedBytes: Number(row.stored_bytes),
    };
  }

  async cacheUsage(cacheId: number): Promise<CacheUsage> {
    return toUsage((await this.#runner.get(this.#q.cacheUsage, [cacheId, cacheId, cacheId]))!);
  }

  async recentPaths(cacheId: number, limit: number): Promise<PathRecord[]> {
    return (await this.#runner.all(this.#q.recentPaths, [cacheId, limit])).map(toPath);
  }

  async pinnedPaths(cacheId: number, limit: number): Promise<PathRecord[]> {
    return (await this.#runner.all(this.#q.pinnedPaths, [cacheId, limit])).map(toPath);
  }

  async searchPaths(cacheId: number, text: string, limit: number): Promise<PathRecord[]> {
    const pattern = `%${text.toLowerCase().replace(/[!%_]/g, (c) => `!${c}`)}%`;
    return (await this.#runner.all(this.#q.searchPaths, [cacheId, pattern, limit])).map(toPath);
  }

  async referrersOf(cacheId: number, hashPart: string, limit: number): Promise<PathRecord[]> {
    return (await this.#runner.all(this.#q.referrersOf, [cacheId, hashPart, limit])).map(toPath);
  }

  async closureSize(cacheId: number, hashPart: string): Promise<ClosureSize> {
    const row = (await this.#runner.get(this.#q.closureSize, [hashPart, cacheId, cacheId]))!;
    return { paths: Number(row.paths), narBytes: Number(row.nar_bytes) };
  }

  async recordStorageSample(cacheId: number, sample: StorageSample): Promise<void> {
    const { at, paths, narBytes, storedBytes } = sample;
    await this.#runner.write(run(this.#q.insertStorageSample, [cacheId, at, paths, narBytes, storedBytes]));
  }

  async storageSamples(cacheId: number, since: number, limit: number): Promise<StorageSample[]> {
    const rows = await this.#runner.all(this.#q.storageSamples, [cacheId, since, limit]);
    return rows.map((row) => ({ at: Number(row.at), ...toUsage(row) })).reverse();
  }

  async deleteStorageSamples(before: number): Promise<void> {
    await this.#runner.write(run(this.#q.deleteStorageSamples, [before]));
  }

  async markChunksDamaged(ids: Uint8Array[], at: number): Promise<number> {
    if (ids.length === 0) return 0;
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        yield* run(q.markChunksDamaged, [ids, at]);
        return yield* run(q.markNarsDamaged, [ids, at]);
      })(),
    );
  }

  async setChunksDamaged(ids: Uint8Array[], damaged: boolean, at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#runner.write(
      damaged ? run(this.#q.flagChunksDamaged, [at, ids]) : run(this.#q.clearChunksDamaged, [ids]),
    );
  }

  async listChunks(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (await this.#runner.all(this.#q.chunks, [after, limit])).map(toChunk);
  }

  async getChunk(id: Uint8Array): Promise<ChunkRecord | undefined> {
    const row = await this.#runner.get(this.#q.chunk, [id]);
    return row && toChunk(row);
  }

  async chunksToRecompress(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (await this.#runner.all(this.#q.chunksToRecompress, [after, limit])).map(toChunk);
  }

  async narsToRecompress(afterId: number, limit: number): Promise<NarRecord[]> {
    return (await this.#runner.all(this.#q.narsToRecompress, [afterId, limit])).map(toNar);
  }

  async recordRecompressed(chunks: RecompressedChunk[]): Promise<number> {
    if (chunks.length === 0) return 0;
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        const params = [
          chunks.map((c) => c.id),
          chunks.map((c) => c.oldStoredSize),
          chunks.map((c) => c.storedSize),
          chunks.map((c) => c.zstdLevel),
        ];
        const updated = new Set((yield* all(q.recordRecompressed, params)).map((row) => hex(blob(row.id))));
        const changes = new Map<string, number>();
        for (const chunk of chunks) {
          const id = hex(chunk.id);
          if (updated.has(id)) changes.set(id, chunk.storedSize - chunk.oldStoredSize);
        }
        yield* moveNarStoredSizes(q, changes);
        return changes.size;
      })(),
    );
  }

  async recordDeltas(chunks: DeltaChunk[]): Promise<number> {
    if (chunks.length === 0) return 0;
    const q = this.#q;
    const distinct = this.#dialect.distinctLists;
    return this.#runner.write(
      (function* () {
        const allBases = chunks.flatMap((c) => c.bases);
        const usable = new Set(
          (yield* all(q.usableBases, [distinct ? distinctIds(allBases) : allBases])).map((row) => hex(blob(row.id))),
        );
        // Only as reserved: a chunk written again since (commitNar) or reserved by no one is left alone.
        const ids = chunks.map((c) => c.id);
        const reserved = new Map<string, string[]>();
        for (const row of yield* all(q.chunkBasesOf, [distinct ? distinctIds(ids) : ids])) {
          const id = hex(blob(row.chunk_id));
          reserved.set(id, [...(reserved.get(id) ?? []), hex(blob(row.base_id))]);
        }
        const eligible = chunks.filter(
          (c) =>
            c.bases.length > 0 &&
            c.bases.every((base) => usable.has(hex(base)) && hex(base) !== hex(c.id)) &&
            (reserved.get(hex(c.id)) ?? []).join() === c.bases.map(hex).join(),
        );
        if (eligible.length === 0) return 0;
        const params = [
          eligible.map((c) => c.id),
          eligible.map((c) => c.oldStoredSize),
          eligible.map((c) => c.storedSize),
          eligible.map((c) => c.level),
          eligible.map((c) => c.depth),
        ];
        const sizes = new Map((yield* all(q.recordDeltas, params)).map((row) => [hex(blob(row.id)), Number(row.size)]));
        const recorded = eligible.filter((c) => sizes.has(hex(c.id)));
        if (recorded.length === 0) return 0;
        // Chunks already built on a recorded one (reverse deltas: older ones) are one deeper now, and so on up.
        let above = recorded.map((c) => c.id);
        for (let level = 0; level < MAX_DEPENDANT_LEVELS && above.length > 0; level++) {
          const updated = (yield* all(q.refreshDependantDepths, [above])).map((row) => blob(row.id));
          above = distinct ? distinctIds(updated) : updated;
        }
        // Each use of a recorded chunk is now served as a raw frame rather than its old frame.
        const changes = new Map(
          recorded.map((c) => [hex(c.id), rawFrameSize(sizes.get(hex(c.id))!) - c.oldStoredSize] as const),
        );
        yield* moveNarStoredSizes(q, changes);
        return recorded.length;
      })(),
    );
  }

  async setChunkLevels(ids: Uint8Array[], zstdLevel: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#runner.atomic(run(this.#q.setChunkLevels, [zstdLevel, ids]));
  }

  async listNars(afterId: number, limit: number): Promise<NarRecord[]> {
    return (await this.#runner.all(this.#q.nars, [afterId, limit])).map(toNar);
  }

  async narChunks(narId: number): Promise<ChunkRecord[]> {
    return (await this.#runner.all(this.#q.narChunks, [narId])).map(toChunk);
  }

  async narDeltaBases(narId: number): Promise<Uint8Array[]> {
    return (await this.#runner.all(this.#q.narDeltaBases, [narId])).map((row) => blob(row.id));
  }

  async setNarDamaged(narId: number, damaged: boolean, at: number): Promise<void> {
    await this.#runner.atomic(run(this.#q.setNarDamaged, [damaged, at, narId]));
  }

  async damagedNarCount(): Promise<number> {
    return Number((await this.#runner.get(this.#q.damagedNarCount))!.n);
  }

  async expirePaths(cacheId: number, accessedBefore: number): Promise<number> {
    return this.#runner.write(run(this.#q.expirePaths, [cacheId, accessedBefore, cacheId, cacheId]));
  }

  async expirablePaths(cacheId: number, accessedBefore: number, limit: number): Promise<PathRecord[]> {
    const rows = await this.#runner.all(this.#q.expirablePaths, [
      cacheId,
      accessedBefore,
      cacheId,
      cacheId,
      accessedBefore,
      limit,
    ]);
    return rows.map(toPath);
  }

  async markUnreferencedNars(at: number): Promise<number> {
    return this.#runner.write(run(this.#q.markUnreferencedNars, [at]));
  }

  async deleteUnreferencedNars(before: number, at: number, limit: number): Promise<{ nars: number; narBytes: number }> {
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        const doomed = yield* all(q.unreferencedNars, [before, limit]);
        if (doomed.length === 0) return { nars: 0, narBytes: 0 };
        const narIds = doomed.map((row) => Number(row.id));
        const chunkIds = (yield* all(q.chunksOfNars, [narIds])).map((row) => blob(row.chunk_id));
        yield* run(q.deleteNars, [narIds]);
        if (chunkIds.length > 0) yield* run(q.markUnreferencedChunks, [at, chunkIds]);
        return { nars: doomed.length, narBytes: doomed.reduce((sum, row) => sum + Number(row.nar_size), 0) };
      })(),
    );
  }

  async deleteUnreferencedChunks(before: number, limit: number): Promise<ChunkRecord[]> {
    return (await this.#runner.write(all(this.#q.deleteUnreferencedChunks, [before, limit]))).map(toChunk);
  }

  async chunksWithoutSketch(after: Uint8Array, limit: number): Promise<ChunkRecord[]> {
    return (await this.#runner.all(this.#q.chunksWithoutSketch, [after, limit])).map(toChunk);
  }

  async recordSketches(sketches: ChunkSketch[]): Promise<void> {
    if (sketches.length === 0) return;
    // Under the write lock, like GC's deletions of chunk records: none goes between the check and the insert.
    const q = this.#q;
    await this.#runner.write(
      (function* () {
        yield* run(q.insertChunkFeatures, featureRows(sketches));
        // A chunk found not worth a delta may have its base among these.
        const existing = new Set(
          (yield* all(q.existingChunks, [sketches.map((s) => s.id)])).map((r) => hex(blob(r.id))),
        );
        const features = sketches
          .filter((s) => existing.has(hex(s.id)))
          .flatMap((s) => Array.from(s.sketch, (value, index) => feature(index, value)));
        if (features.length > 0) yield* run(q.retryChunksWithFeatures, [features]);
      })(),
    );
  }

  async similarChunks(sketch: Uint32Array, limit: number): Promise<SimilarChunk[]> {
    const perFeature = Math.max(limit, SIMILAR_ROWS_PER_FEATURE);
    const params = Array.from(sketch, (value, index) => [feature(index, value), perFeature]).flat();
    const rows = await this.#runner.all(this.#q.similarChunks, [...params, limit]);
    return rows.map((row) => ({ id: blob(row.chunk_id), matches: Number(row.matches) }));
  }

  async deltaCandidates(after: DeltaCursor | undefined, limit: number): Promise<DeltaCandidate[]> {
    const createdAt = after?.createdAt ?? Number.MAX_SAFE_INTEGER;
    const id = after?.id ?? new Uint8Array(0);
    const rows = await this.#runner.all(this.#q.deltaCandidates, [createdAt, createdAt, id, limit]);
    return groupByChunk(rows).map((group) => ({
      ...toChunk(group[0]),
      sketch: Uint32Array.from(group, (row) => Number(row.feature) % 2 ** 32),
    }));
  }

  async deltaChain(id: Uint8Array): Promise<{ depth: number; height: number }> {
    const depth = await this.#runner.get(this.#q.deltaDepthBelow, [id]);
    const height = await this.#runner.get(this.#q.deltaHeightAbove, [id]);
    return { depth: Number(depth!.n), height: Number(height!.n) };
  }

  async reserveDeltaBases(id: Uint8Array, bases: Uint8Array[]): Promise<boolean> {
    return (await this.reserveDeltaBasesOf([{ id, bases }]))[0];
  }

  async reserveDeltaBasesOf(chunks: { id: Uint8Array; bases: Uint8Array[] }[]): Promise<boolean[]> {
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        const reserved: boolean[] = [];
        for (const { id, bases } of chunks) {
          const free = bases.length > 0 && (yield* get(q.reservableChunk, [id])) !== undefined;
          if (free) yield* run(q.insertChunkBases, [bases.map(() => id), bases.map((_, position) => position), bases]);
          reserved.push(free);
        }
        return reserved;
      })(),
    );
  }

  async pendingDeltas(after: Uint8Array, limit: number): Promise<PendingDelta[]> {
    const rows = await this.#runner.all(this.#q.pendingDeltas, [after, limit]);
    return groupByChunk(rows).map((group) => ({ ...toChunk(group[0]), bases: group.map((row) => blob(row.base_id)) }));
  }

  async dropDeltaBases(ids: Uint8Array[]): Promise<void> {
    if (ids.length === 0) return;
    await this.#runner.write(run(this.#q.dropPlainChunkBases, [ids]));
  }

  async markDeltaTried(ids: Uint8Array[], at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#runner.write(run(this.#q.markDeltaTried, [at, ids]));
  }

  async narsWithoutPackage(after: number, limit: number): Promise<NarWithoutPackage[]> {
    return (await this.#runner.all(this.#q.narsWithoutPackage, [after, limit])).map((row) => ({
      id: Number(row.id),
      storePath: row.store_path === null ? null : String(row.store_path),
    }));
  }

  async recordNarPackage(narId: number, storePath: string): Promise<void> {
    await this.#runner.write(recordNarPackage(this.#q, narId, storePath));
  }

  async chunkPlace(id: Uint8Array): Promise<{ nar: NarPlace; next: NarPlace } | undefined> {
    const nar = await this.#runner.get(this.#q.chunkNewestNar, [id]);
    if (!nar) return undefined;
    const next = await this.#runner.get(this.#q.nextNarOfPackage, [nar.package, nar.created_at]);
    return next && { nar: toNarPlace(nar), next: toNarPlace(next) };
  }

  async otherNarsOfPackage(narId: number, limit: number): Promise<(NarPlace & { storePath: string })[]> {
    const nar = await this.#runner.get(this.#q.narPackage, [narId]);
    if (!nar || nar.package === null) return [];
    const rows = await this.#runner.all(this.#q.otherNarsOfPackage, [nar.package, narId, limit]);
    return rows
      .filter((row) => row.store_path !== null)
      .map((row) => ({ ...toNarPlace(row), storePath: String(row.store_path) }));
  }

  async narChunkTable(narId: number): Promise<Uint8Array | undefined> {
    const row = await this.#runner.get(this.#q.narChunkTable, [narId]);
    return row && blob(row.chunk_table);
  }

  async existingChunks(ids: Uint8Array[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.#runner.all(this.#q.existingChunks, [ids]);
    return new Set(rows.map((row) => hex(blob(row.id))));
  }

  async noteChunkDeletions(ids: Uint8Array[], at: number): Promise<Uint8Array[]> {
    if (ids.length === 0) return [];
    // Under the write lock, like commitNar: a record cannot appear between the check and the note.
    const rows = await this.#runner.write(
      all(this.#q.noteChunkDeletions, [at, this.#dialect.distinctLists ? distinctIds(ids) : ids]),
    );
    return rows.map((row) => blob(row.id));
  }

  async finishChunkDeletions(ids: Uint8Array[], at: number): Promise<void> {
    if (ids.length === 0) return;
    await this.#runner.atomic(run(this.#q.finishChunkDeletions, [at, ids]));
  }

  async tidyChunkDeletions(before: number, at: number): Promise<void> {
    const q = this.#q;
    await this.#runner.write(
      (function* () {
        yield* run(q.finishUnfinishedChunkDeletions, [at]);
        yield* run(q.forgetChunkDeletions, [before]);
      })(),
    );
  }

  async renewIngestHold(holder: string, busySince: number | null, at: number): Promise<void> {
    await this.#runner.atomic(run(this.#q.upsertIngestHold, [holder, busySince, at]));
  }

  async releaseIngestHold(holder: string): Promise<void> {
    await this.#runner.atomic(run(this.#q.deleteIngestHold, [holder]));
  }

  async ingestHoldFloor(aliveSince: number, exceptHolder: string): Promise<number | undefined> {
    const q = this.#q;
    return this.#runner.write(
      (function* () {
        yield* run(q.deleteDeadIngestHolds, [aliveSince]);
        const row = (yield* get(q.ingestHoldFloor, [exceptHolder]))!;
        return row.floor === null ? undefined : Number(row.floor);
      })(),
    );
  }

  async tryAcquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const row = await this.#runner.atomic(get(this.#q.acquireLease, [name, holder, now + ttlMs, now]));
    return row?.holder === holder;
  }

  async releaseLease(name: string, holder: string): Promise<void> {
    await this.#runner.atomic(run(this.#q.releaseLease, [name, holder]));
  }
}

/**
 * Records a NAR and its chunks (MetadataStore.commitNar): `chunks` are the NAR's, distinct as the
 * dialect needs (SqlDialect.distinctLists). Damage is rare: when no chunk is
 * flagged, the repair bookkeeping is skipped.
 */
function* commitNar(q: MetadataStatements, nar: NewNar, chunks: NewChunk[], now: number): SqlWork<NarRecord> {
  const ids = chunks.map((chunk) => chunk.id);
  if (nar.ingestStartedAt !== undefined && chunks.length > 0 && (yield* get(q.anyChunkDeletion))) {
    if (yield* get(q.chunkDeletedSince, [ids, nar.ingestStartedAt])) throw chunksDeletedError();
  }
  const anyDamage = (yield* get(q.anyDamagedChunk)) !== undefined;
  const existing = yield* get(q.narStateByHash, [nar.narHash]);
  let narId: number;
  if (existing) {
    narId = Number(existing.id);
    // Uploaded again (its narinfo is likely to follow): GC's grace starts anew.
    yield* run(q.narReferencedAgain, [narId]);
  } else {
    const params = [nar.narHash, nar.narSize, nar.chunkTable.length / 40, nar.storedSize, nar.chunkTable, now];
    narId = Number((yield* get(q.insertNar, params))!.id);
  }
  const written = chunks.filter((chunk) => chunk.written);
  const writtenIds = written.map((chunk) => chunk.id);
  // A chunk this ingest wrote again may now have another stored size than its record (one
  // recompressed, then repaired): the NARs that use it follow.
  // A delta written again is plain again: its bases go, and its NARs are served the frame written.
  const resized = new Map<string, number>();
  const plainAgain: Uint8Array[] = [];
  if (written.length > 0) {
    for (const row of yield* all(q.chunkResizes, [writtenIds, written.map((chunk) => chunk.storedSize)])) {
      if (Number(row.change) !== 0) resized.set(hex(blob(row.id)), Number(row.change));
      if (row.encoding === 'delta') plainAgain.push(blob(row.id));
    }
  }
  let repaired: Uint8Array[] = [];
  if (!existing || anyDamage || resized.size > 0 || plainAgain.length > 0) {
    if (anyDamage && written.length > 0)
      repaired = (yield* all(q.damagedChunks, [writtenIds])).map((row) => blob(row.id));
    const unwritten = written.length === chunks.length ? [] : chunks.filter((chunk) => !chunk.written);
    for (const [group, isWritten] of [
      [written, true],
      [unwritten, false],
    ] as const) {
      if (group.length === 0) continue;
      const params = [
        now,
        group.map((c) => c.id),
        group.map((c) => c.size),
        group.map((c) => c.storedSize),
        ...Array<boolean>(6).fill(isWritten),
      ];
      yield* run(q.upsertChunks, params);
    }
    if (plainAgain.length > 0) yield* run(q.deleteChunkBases, [plainAgain]);
    if (!existing && chunks.length > 0) {
      yield* run(q.insertNarChunks, [narId, ids]);
      yield* countServedDeltas(q, nar, chunks, narId);
    }
    // A new NAR counted its chunks at the sizes written.
    yield* moveNarStoredSizes(q, resized, existing ? undefined : narId);
  }
  // A chunk written again is not the file a delta pass reserved it as (delta-encode.ts): recordDeltas must refuse it.
  if (written.length > 0 && (yield* get(q.anyDelta))) yield* run(q.dropPlainChunkBases, [writtenIds]);
  const sketched = chunks.filter((chunk): chunk is NewChunk & ChunkSketch => chunk.sketch !== undefined);
  if (sketched.length > 0) yield* run(q.insertChunkFeatures, featureRows(sketched));
  if (anyDamage || (existing && existing.damaged_at !== null)) {
    if (repaired.length > 0) yield* run(q.healNarsUsing, [repaired]);
    yield* run(q.settleNarDamage, [now, narId]);
  }
  if (nar.upload) yield* run(q.insertNarUpload, [nar.upload.fileHash, nar.upload.suffix, narId, nar.upload.fileSize]);
  if (nar.uploadedTo !== undefined) yield* run(q.insertNarUploadCache, [nar.uploadedTo, narId]);
  return toNar((yield* get(q.narById, [narId]))!);
}

/**
 * Stores a path (MetadataStore.putPath), checking that its NAR and every reference other than
 * itself are still there.
 */
function* putPath(q: MetadataStatements, path: NewPath, replace: boolean, now: number): SqlWork<PutPathResult> {
  if (!(yield* get(q.narExists, [path.narId]))) return 'no-nar';
  const refs = [...new Set(path.references.map((ref) => ref.slice(0, 32)))].filter((h) => h !== path.hashPart);
  if (refs.length > 0 && (yield* all(q.storePaths, [path.cacheId, refs])).length < refs.length)
    return 'missing-reference';
  const upload = pathUpload(yield* get(q.pathIdentity, [path.cacheId, path.hashPart]), path);
  if (upload.kind === 'unchanged') return 'unchanged';
  if (upload.kind === 'different' && !replace) return 'exists';
  if (upload.kind === 'more-sigs') {
    yield* run(q.setPathSigs, [upload.sigs.join('\n'), path.cacheId, path.hashPart]);
    return 'stored';
  }
  const { cacheId, hashPart, storePath, narId, references, deriver, system, sigs, ca } = path;
  yield* run(q.upsertPath, [
    cacheId,
    hashPart,
    storePath,
    narId,
    references.join(' '),
    deriver,
    system,
    sigs.join('\n'),
    ca,
    now,
    now,
  ]);
  yield* run(q.deletePathRefs, [cacheId, hashPart]);
  if (refs.length > 0) yield* run(q.insertPathRefs, [cacheId, hashPart, refs]);
  yield* run(q.narReferencedAgain, [narId]);
  yield* recordNarPackage(q, narId, storePath);
  return 'stored';
}

/** Names the NAR's package if it has none; the chunks of the package's NAR before it may find bases in it now. */
function* recordNarPackage(q: MetadataStatements, narId: number, storePath: string): SqlWork<void> {
  const nar = yield* get(q.narPackage, [narId]);
  if (!nar || nar.package !== null) return;
  const pkg = packageName(storePath.slice(storePath.lastIndexOf('/') + 34));
  yield* run(q.setNarPackage, [pkg, narId]);
  yield* run(q.retryChunksOfPreviousNar, [pkg, nar.created_at]);
}

function toNarPlace(row: Row): NarPlace {
  return { id: Number(row.id), narSize: Number(row.nar_size), createdAt: Number(row.created_at) };
}

/**
 * A new NAR counted the chunks it reused at their stored size; those stored as deltas are served
 * as raw frames (nar-reader.ts), so its stored size follows. Skipped while no delta exists.
 */
function* countServedDeltas(q: MetadataStatements, nar: NewNar, chunks: NewChunk[], narId: number): SqlWork<void> {
  const reused = chunks.filter((chunk) => !chunk.written);
  if (reused.length === 0 || !(yield* get(q.anyDelta))) return;
  const rows = yield* all(q.deltasServed, [reused.map((c) => c.id), reused.map((c) => c.storedSize)]);
  if (rows.length === 0) return;
  const changes = new Map(rows.map((row) => [hex(blob(row.id)), Number(row.change)]));
  yield* run(q.moveNarStoredSizes, [[narId], [storedSizeDelta(nar.chunkTable, changes)]]);
}

/** Moves the stored size of the NARs (but `except`) that use changed chunks (hex id to new minus old size). */
function* moveNarStoredSizes(q: MetadataStatements, changes: Map<string, number>, except?: number): SqlWork<void> {
  if (changes.size === 0) return;
  const chunkIds = [...changes.keys()].map((id) => Buffer.from(id, 'hex'));
  const narIds = [...new Set((yield* all(q.narsUsingChunks, [chunkIds])).map((row) => Number(row.nar_id)))].filter(
    (id) => id !== except,
  );
  if (narIds.length === 0) return;
  const nars = yield* all(q.narChunkTables, [narIds]);
  const deltas = nars.map((row) => storedSizeDelta(blob(row.chunk_table), changes));
  yield* run(q.moveNarStoredSizes, [nars.map((row) => Number(row.id)), deltas]);
}

/** A super-feature as chunk_features stores it: its index in the sketch and its value in one integer. */
/** How many levels of dependants recordDeltas refreshes the depth of (chains are at most 3 deep). */
const MAX_DEPENDANT_LEVELS = 3;

/** Rows ordered by chunk id, grouped by it. */
function groupByChunk(rows: Row[]): Row[][] {
  const groups: Row[][] = [];
  let last = '';
  for (const row of rows) {
    const id = hex(blob(row.id));
    if (id !== last) groups.push([]);
    groups[groups.length - 1].push(row);
    last = id;
  }
  return groups;
}

function feature(index: number, value: number): number {
  return index * 2 ** 32 + value;
}

/** insertChunkFeatures' lists: the ids, then per super-feature index its features. */
function featureRows(sketches: ChunkSketch[]): unknown[] {
  return [
    sketches.map((s) => s.id),
    ...Array.from({ length: SKETCH_SUPER_FEATURES }, (_, j) => sketches.map((s) => feature(j, s.sketch[j]))),
  ];
}

function distinctChunks(chunks: NewChunk[]): NewChunk[] {
  const seen = new Set<string>();
  return chunks.filter((chunk) => {
    const id = hex(chunk.id);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function distinctIds(ids: Uint8Array[]): Uint8Array[] {
  return [...new Map(ids.map((id) => [hex(id), id])).values()];
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function toUsage(row: Row): CacheUsage {
  return { paths: Number(row.paths), narBytes: Number(row.nar_bytes), storedBytes: Number(row.stored_bytes) };
}
