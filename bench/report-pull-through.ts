/** Section 8 of the report: pull-through (issue 22), measured by measure-pull-through.ts. */
import { pullThroughTable } from './measure-pull-through.ts';
import type { Results } from './results.ts';

export const PULL_THROUGH_SECTION = '## 8. Pull-through';

export function renderPullThroughSection(r: Results): string[] {
  const md: string[] = [PULL_THROUGH_SECTION, ''];
  if (!r.pullThrough) return [...md, 'Not measured in this run.', ''];
  return [
    ...md,
    `Every path of the dataset in a signed xz file cache behind nginx (the upstream), fetched with \`nix copy --from\` into a fresh store, signatures checked; median of ${r.pullThrough.rounds} round(s), a fresh Narwhal each round; ${r.pullThrough.pinned ? 'the servers (Narwhal, nginx) on one core and `nix` on the others, as a cache and its clients are different machines' : 'servers and clients sharing every core'}.`,
    '',
    pullThroughTable(r.pullThrough),
    '',
  ];
}
