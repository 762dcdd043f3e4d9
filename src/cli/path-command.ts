import { parseArgs } from 'node:util';
import { NarwhalError } from '../errors.ts';
import { closeNarwhal } from '../context/narwhal.ts';
import { openNarwhal } from '../tenancy/open-narwhal.ts';
import { deletePaths, listPaths, pinPath, type PathInfo } from '../tenancy/paths.ts';
import { STORE_OPTIONS } from './options.ts';
import { printJsonOr } from './output.ts';

export async function pathCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { ...STORE_OPTIONS, json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  const [action, cache, ...paths] = positionals;
  if (!['list', 'pin', 'unpin', 'delete'].includes(action))
    throw new NarwhalError('bad-request', 'path takes list, pin, unpin or delete');
  if (!cache) throw new NarwhalError('bad-request', `path ${action} needs a cache name`);
  if (action === 'list' ? paths.length > 0 : paths.length === 0) {
    throw new NarwhalError(
      'bad-request',
      action === 'list' ? 'path list takes only a cache name' : `path ${action} needs store paths or hashes`,
    );
  }
  const nw = await openNarwhal({ dataDir: values['data-dir'], storage: values.storage, database: values.database });
  try {
    switch (action) {
      case 'list': {
        const list = await listPaths(nw, cache);
        printJsonOr(values.json, list, () => list.map(describe).join(''));
        break;
      }
      case 'pin':
      case 'unpin': {
        const changed: PathInfo[] = [];
        for (const path of paths) changed.push(await pinPath(nw, cache, path, action === 'pin'));
        printJsonOr(values.json, changed, () =>
          changed.map((p) => `${action === 'pin' ? 'pinned' : 'unpinned'} ${p.storePath}\n`).join(''),
        );
        break;
      }
      case 'delete': {
        const deleted = await deletePaths(nw, cache, paths);
        printJsonOr(values.json, deleted, () => deleted.map((p) => `deleted ${p}\n`).join(''));
        break;
      }
    }
  } finally {
    await closeNarwhal(nw);
  }
  return 0;
}

function describe(p: PathInfo): string {
  return `${p.storePath}\t${p.narSize} bytes\tlast access ${p.lastAccess}${p.pinned ? '\tpinned' : ''}${p.damaged ? '\tDAMAGED' : ''}\n`;
}
