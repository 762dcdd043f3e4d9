import { NarwhalError } from '../errors.ts';
import { parseNarinfo } from '../nix/narinfo.ts';
import { parseSha256, formatSha256Nix32 } from '../nix/hash.ts';
import { parseStorePathBaseName } from '../nix/store-path.ts';
import { narinfoFingerprint, verifySignature } from '../nix/signing.ts';
import type { CacheRecord } from '../metadata/metadata-store.ts';
import type { Narwhal } from './narwhal.ts';
import { forgetNarinfo } from './get-narinfo.ts';

/**
 * Stores a narinfo uploaded as `<hashPart>.narinfo` after checking it against what is stored:
 * its store path has that hash part, its NAR was uploaded with the same NarHash and NarSize, and
 * every reference other than itself is already in this cache (Nix uploads dependencies first),
 * and, where the cache requires it, a trusted key signed it.
 */
export async function putNarinfo(nw: Narwhal, cache: CacheRecord, hashPart: string, text: string): Promise<void> {
  const info = parseNarinfo(text);
  const { hashPart: ownHash } = parseStorePathBaseName(info.storePath.slice(info.storePath.lastIndexOf('/') + 1));
  if (ownHash !== hashPart) {
    throw new NarwhalError('bad-narinfo', `StorePath ${info.storePath} does not match the file name ${hashPart}.narinfo`);
  }
  if (cache.requireSignature && !info.sigs.some((sig) => verifySignature(narinfoFingerprint(info), sig, cache.trustedKeys))) {
    throw new NarwhalError('forbidden', `this cache accepts only narinfos signed by one of: ${cache.trustedKeys.map((k) => k.split(':')[0]).join(', ')}`);
  }
  const narHash = formatSha256Nix32(parseSha256(info.narHash));
  const nar = await nw.meta.getNar(narHash);
  if (!nar) throw new NarwhalError('missing-reference', `no NAR with NarHash ${narHash} has been uploaded`);
  if (nar.narSize !== info.narSize) {
    throw new NarwhalError('hash-mismatch', `NarSize ${info.narSize} differs from the uploaded NAR's size ${nar.narSize}`);
  }
  const others = info.references.map((ref) => parseStorePathBaseName(ref).hashPart).filter((h) => h !== hashPart);
  const present = await nw.meta.existingPaths(cache.id, others);
  const missing = info.references.filter((ref) => {
    const h = parseStorePathBaseName(ref).hashPart;
    return h !== hashPart && !present.has(h);
  });
  if (missing.length > 0) {
    throw new NarwhalError('missing-reference', `references not in this cache: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`);
  }
  // Checked again inside putPath's transaction: GC may have deleted the NAR or a reference since.
  const result = await nw.meta.putPath({
    cacheId: cache.id,
    hashPart,
    storePath: info.storePath,
    narId: nar.id,
    references: info.references,
    deriver: info.deriver ?? null,
    system: info.system ?? null,
    sigs: info.sigs,
    ca: info.ca ?? null,
  });
  if (result === 'no-nar') throw new NarwhalError('missing-reference', `no NAR with NarHash ${narHash} has been uploaded`);
  if (result === 'missing-reference') throw new NarwhalError('missing-reference', 'a reference was deleted from this cache meanwhile');
  forgetNarinfo(nw, cache.id, hashPart);
}
