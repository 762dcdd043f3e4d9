/** The UI's URLs. Every part that comes from data is percent-encoded. */
export const links = {
  home: (): string => '/',
  search: (query: string): string => `/?q=${encodeURIComponent(query)}`,
  cache: (cache: string): string => `/_ui/c/${encodeURIComponent(cache)}`,
  pin: (cache: string): string => `/_ui/c/${encodeURIComponent(cache)}/pin`,
  path: (cache: string, hashPart: string): string =>
    `/_ui/c/${encodeURIComponent(cache)}/p/${encodeURIComponent(hashPart)}`,
  /** A file of the path's NAR; `file` is its path below the root, '/'-separated. */
  file: (cache: string, hashPart: string, file: string): string =>
    `${links.path(cache, hashPart)}/f/${file.split('/').map(encodeURIComponent).join('/')}`,
  download: (cache: string, hashPart: string, file: string): string =>
    `${links.file(cache, hashPart, file)}?download=1`,
};
