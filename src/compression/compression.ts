/**
 * The compressions a Nix client may upload NARs with (`nix copy --to ...?compression=X`), and the
 * NAR URL extensions Nix gives them. gzip and none share the bare `.nar` URL, so an upload to an
 * extension-less URL has to be sniffed (see createDecompressor('auto')).
 */
export type Compression = 'none' | 'xz' | 'zstd' | 'bzip2' | 'br' | 'gzip' | 'lz4';

const bySuffix: ReadonlyMap<string, Compression> = new Map([
  ['', 'none'],
  ['xz', 'xz'],
  ['zst', 'zstd'],
  ['bz2', 'bzip2'],
  ['br', 'br'],
  ['lz4', 'lz4'],
]);

/**
 * The compression a NAR URL suffix (the part after `.nar.`, without the dot; '' for a bare `.nar`)
 * stands for, or undefined for suffixes Nix 2.8 does not produce or Narwhal does not accept
 * (such as `lzip`). A bare `.nar` yields 'none', although gzip uploads use it too.
 */
export function compressionFromNarUrlSuffix(suffix: string): Compression | undefined {
  return bySuffix.get(suffix);
}

const NARINFO_COMPRESSIONS: ReadonlySet<string> = new Set<Compression>([
  'none',
  'xz',
  'zstd',
  'bzip2',
  'br',
  'gzip',
  'lz4',
]);

/** The compression a narinfo's `Compression` names (absent: bzip2, as Nix reads it), if one Narwhal decodes. */
export function compressionFromNarinfo(value: string | undefined): Compression | undefined {
  const name = value ?? 'bzip2';
  return NARINFO_COMPRESSIONS.has(name) ? (name as Compression) : undefined;
}

/** The NAR URL suffix Nix uses for a compression: '' for none and gzip, else e.g. 'xz'. */
export function narUrlSuffix(c: Compression): string {
  switch (c) {
    case 'none':
    case 'gzip':
      return '';
    case 'xz':
      return 'xz';
    case 'zstd':
      return 'zst';
    case 'bzip2':
      return 'bz2';
    case 'br':
      return 'br';
    case 'lz4':
      return 'lz4';
  }
}
