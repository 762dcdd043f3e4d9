/** How a walk over chunk records ended. */
export type PagesEnd = 'finished' | 'stopped' | 'ended';

/**
 * Walks the chunk records that `list` pages through (ids above `after`, ascending), `limit` at a
 * time, handing each page to `handle`: 'finished' when none are left, 'stopped' when `shouldStop`
 * said so before a page (the server yields to uploads), 'ended' when `handle` returned false.
 */
export async function walkChunkPages<Chunk extends { id: Uint8Array }>(
  list: (after: Uint8Array, limit: number) => Promise<Chunk[]>,
  limit: number,
  shouldStop: (() => boolean) | undefined,
  handle: (page: Chunk[]) => Promise<boolean>,
): Promise<PagesEnd> {
  let after: Uint8Array = new Uint8Array(0);
  for (;;) {
    if (shouldStop?.()) return 'stopped';
    const page = await list(after, limit);
    if (page.length === 0) return 'finished';
    after = page[page.length - 1].id;
    if (!(await handle(page))) return 'ended';
  }
}
