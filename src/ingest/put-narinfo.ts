import { NarwhalError } from '../errors.ts';
import { parseNarinfo, type NarInfo } from '../nix/narinfo.ts';
import { parseSha256, formatSha256Nix32 } from '../nix/hash.ts';
import { parseStorePathBaseName } from '../nix/store-path.ts';
import { narinfoFingerprint, verifySignature } from '../nix/signing.ts';
import type { CacheRecord, NewPath, TokenRecord } from '../metadata/metadata-store.ts';
import { mayAccess } from '../tenancy/access.ts';
import type { Narwhal } from '../context/narwhal.ts';
import { findVisibleNar } from '../tenancy/nar-visibility.ts';

/**
 * Who uploads a narinfo: a request, with its token if it has one, or the operator, who runs
 * commands on the stores themselves (`narwhal import`) and may name any NAR and replace any path.
 */
export type NarinfoUploader = { token: TokenRecord | undefined } | 'operator';

/** The path record a narinfo makes in a cache, for its NAR. */
export function newPath(cache: CacheRecord, hashPart: string, narId: number, info: NarInfo): NewPath {
  return {
    cacheId: cache.id,
    hashPart,
    storePath: info.storePath,
    narId,
    references: info.references,
    deriver: info.deriver ?? null,
    system: info.system ?? null,
    sigs: info.sigs,
    ca: info.ca ?? null,
  };
}

/**
 * Stores a narinfo uploaded as `<hashPart>.narinfo`, after checking it
 * against what is stored: its store path has that hash part; its NAR is one the uploader may see
 * through this cache (nar-visibility.ts) with the same NarHash and NarSize; every reference is a
 * whole store path of this cache (Nix uploads dependencies first) or the path itself; where the
 * cache requires it, a trusted key signed it. The same path again only adds the signatures it
 * lacks; a different path under a hash part already stored needs the delete permission, since
 * it removes what was there. Returns the NAR's id and the store path.
 */
export async function putNarinfo(
  nw: Narwhal,
  cache: CacheRecord,
  hashPart: string,
  text: string,
  uploader: NarinfoUploader,
): Promise<{ narId: number; storePath: string }> {
  const info = parseNarinfo(text);
  const ownName = info.storePath.slice(info.storePath.lastIndexOf('/') + 1);
  if (parseStorePathBaseName(ownName).hashPart !== hashPart) {
    throw new NarwhalError(
      'bad-narinfo',
      `StorePath ${info.storePath} does not match the file name ${hashPart}.narinfo`,
    );
  }
  if (
    cache.requireSignature &&
    !info.sigs.some((sig) => verifySignature(narinfoFingerprint(info), sig, cache.trustedKeys))
  ) {
    throw new NarwhalError(
      'forbidden',
      `this cache accepts only narinfos signed by one of: ${cache.trustedKeys.map((k) => k.split(':')[0]).join(', ')}`,
    );
  }
  const narHash = formatSha256Nix32(parseSha256(info.narHash));
  const nar =
    uploader === 'operator' ? await nw.meta.getNar(narHash) : await findVisibleNar(nw, cache, uploader.token, narHash);
  if (!nar) throw new NarwhalError('missing-reference', `no NAR with NarHash ${narHash} has been uploaded`);
  // The size itself is not told: it would describe a NAR the uploader may not have.
  if (nar.narSize !== info.narSize)
    throw new NarwhalError(
      'hash-mismatch',
      `NarSize ${info.narSize} differs from the size of the NAR with that NarHash`,
    );
  await checkReferences(nw, cache, hashPart, ownName, info);
  const result = await nw.meta.putPath(newPath(cache, hashPart, nar.id, info), {
    replace: uploader === 'operator' || mayAccess(uploader.token, cache, 'delete'),
  });
  // Checked again inside putPath's transaction: GC may have deleted the NAR or a reference since.
  if (result === 'no-nar')
    throw new NarwhalError('missing-reference', `no NAR with NarHash ${narHash} has been uploaded`);
  if (result === 'missing-reference')
    throw new NarwhalError('missing-reference', 'a reference was deleted from this cache meanwhile');
  if (result === 'exists') {
    throw new NarwhalError(
      'conflict',
      `${info.storePath} is already in ${cache.name} with another NAR, references or deriver; replacing it needs the delete permission`,
    );
  }
  nw.memos.narinfos.forget(cache.id, hashPart);
  return { narId: nar.id, storePath: info.storePath };
}

/** Every reference must be the path itself or a whole store path this cache holds, by name, not just by hash. */
async function checkReferences(
  nw: Narwhal,
  cache: CacheRecord,
  hashPart: string,
  ownName: string,
  info: NarInfo,
): Promise<void> {
  const others = info.references.filter((ref) => ref !== ownName);
  const present = await nw.meta.existingPaths(
    cache.id,
    others.map((ref) => parseStorePathBaseName(ref).hashPart),
  );
  const missing = others.filter((ref) => {
    const { hashPart: refHash } = parseStorePathBaseName(ref);
    const stored = refHash === hashPart ? info.storePath : present.get(refHash);
    return stored === undefined || stored.slice(stored.lastIndexOf('/') + 1) !== ref;
  });
  if (missing.length > 0) {
    throw new NarwhalError(
      'missing-reference',
      `references not in this cache: ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}`,
    );
  }
}
