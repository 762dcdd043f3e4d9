import type { CacheRecord } from '../metadata/metadata-store.ts';
import { parseSecretKey, signFingerprint, type SecretKey } from '../nix/signing.ts';
import { CheckedFrames } from './checked-frames.ts';

/**
 * What one Narwhal remembers in memory between requests, so that hot reads skip a query, a
 * signature or a check. Each memo is owned by the context (nw.memos), made with it, and gone with
 * it; none is the truth: each can be dropped at any time at the cost of redoing the work.
 */
export class Memos {
  /** Cache records by name (tenancy/caches.ts). */
  readonly caches = new CacheRecords();
  /** Served narinfo texts (serving/render-narinfo.ts; dropped by whatever changes a path). */
  readonly narinfos = new NarinfoTexts();
  /** Signatures of narinfo fingerprints, by key (serving/render-narinfo.ts). */
  readonly signatures = new NarinfoSignatures();
  /** Parsed signing keys, by their text (serving/render-narinfo.ts). */
  readonly signingKeys = new SigningKeys();
  /** When each NAR's access through a cache was last recorded (serving/access-times.ts). */
  readonly narAccesses = new NarAccesses();
  /** Stored frames checked in full before (serving/chunk-damage.ts). */
  readonly checkedFrames = new CheckedFrames();
}

/**
 * Every request looks its cache up, so records are kept for a second: changes made through this
 * process apply at once (they call forget), changes by other processes (the CLI on the same
 * data dir, other replicas) within a second.
 */
const CACHE_RECORD_TTL_MS = 1000;
const MAX_CACHE_RECORDS = 10_000;

export class CacheRecords {
  readonly #recent = new Map<string, { record: CacheRecord | undefined; until: number }>();

  /** The kept record of the cache (kept absence included), else what `load` finds, then kept. */
  async find(name: string, load: () => Promise<CacheRecord | undefined>): Promise<CacheRecord | undefined> {
    const now = Date.now();
    const hit = this.#recent.get(name);
    if (hit && hit.until > now) return hit.record;
    const record = await load();
    if (this.#recent.size > MAX_CACHE_RECORDS) this.#recent.clear();
    this.#recent.set(name, { record, until: now + CACHE_RECORD_TTL_MS });
    return record;
  }

  forget(name: string): void {
    this.#recent.delete(name);
  }
}

/**
 * Served narinfos are kept for a few seconds: a lookup is then one map access instead of a
 * query, a signature and formatting (measured: docs/benchmarks.md, 'Narinfo lookups'). Only hits are
 * kept, so a new path is visible at once on every replica; changes made in this process (a
 * re-push, deletion, damage) call forget, other processes' within the TTL.
 */
const RECENT_NARINFO_TTL_MS = 5_000;
const MAX_RECENT_NARINFOS = 100_000;

export class NarinfoTexts {
  readonly #recent = new Map<string, { text: string; signingKey: string; until: number }>();

  /** The kept text of the path signed with `signingKey`, else what `render` makes, kept when there is one. */
  async find(
    cacheId: number,
    hashPart: string,
    signingKey: string,
    render: () => Promise<string | undefined>,
  ): Promise<string | undefined> {
    const key = `${cacheId}/${hashPart}`;
    const now = Date.now();
    const hit = this.#recent.get(key);
    if (hit && hit.until > now && hit.signingKey === signingKey) return hit.text;
    const text = await render();
    if (text !== undefined) {
      if (this.#recent.size >= MAX_RECENT_NARINFOS) this.#recent.delete(this.#recent.keys().next().value!);
      this.#recent.set(key, { text, signingKey, until: now + RECENT_NARINFO_TTL_MS });
    }
    return text;
  }

  /** Drops kept narinfos: one path's, or (without hashPart) every one. */
  forget(cacheId?: number, hashPart?: string): void {
    if (cacheId === undefined || hashPart === undefined) this.#recent.clear();
    else this.#recent.delete(`${cacheId}/${hashPart}`);
  }
}

/** Signing is most of a narinfo lookup's cost (docs/benchmarks.md, 'Narinfo lookups'); a path's fingerprint never changes, so keep recent signatures. */
const MAX_CACHED_SIGNATURES = 50_000;

export class NarinfoSignatures {
  readonly #signatures = new Map<string, string>();

  /** The signature of `fingerprint` by `key` (whose text is `keyText`). */
  sign(fingerprint: string, keyText: string, key: SecretKey): string {
    const cacheKey = `${keyText}\n${fingerprint}`;
    let signature = this.#signatures.get(cacheKey);
    if (signature === undefined) {
      signature = signFingerprint(fingerprint, key);
      if (this.#signatures.size >= MAX_CACHED_SIGNATURES)
        this.#signatures.delete(this.#signatures.keys().next().value!);
      this.#signatures.set(cacheKey, signature);
    }
    return signature;
  }
}

const MAX_SIGNING_KEYS = 1000;

/** Parsed keys are kept: parsing builds a KeyObject, which costs more than the signature itself. */
export class SigningKeys {
  readonly #parsed = new Map<string, SecretKey>();

  parse(text: string): SecretKey {
    let key = this.#parsed.get(text);
    if (!key) {
      key = parseSecretKey(text);
      if (this.#parsed.size > MAX_SIGNING_KEYS) this.#parsed.clear();
      this.#parsed.set(text, key);
    }
    return key;
  }
}

const MAX_NOTED = 100_000;

/**
 * When this process last recorded that a NAR was served through a cache, so that a NAR served
 * often costs one query per access-time resolution (serving/access-times.ts).
 */
export class NarAccesses {
  readonly #noted = new Map<string, number>();

  /** The time the access was last recorded here, or -Infinity. */
  lastNoted(cacheId: number, narId: number): number {
    return this.#noted.get(`${cacheId}/${narId}`) ?? -Infinity;
  }

  note(cacheId: number, narId: number, at: number): void {
    if (this.#noted.size >= MAX_NOTED) this.#noted.clear();
    this.#noted.set(`${cacheId}/${narId}`, at);
  }
}
