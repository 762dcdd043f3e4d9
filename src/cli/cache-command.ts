import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { NarwhalError } from '../errors.ts';
import type { CacheInfo } from '../tenancy/caches.ts';
import type { CacheChanges } from '../tenancy/admin-operations.ts';
import { formatRetention, parseRetention } from '../tenancy/duration.ts';
import { ADMIN_OPTIONS, openAdminTarget } from './options.ts';
import { printJsonOr } from './output.ts';

const OPTIONS = {
  ...ADMIN_OPTIONS,
  json: { type: 'boolean', default: false },
  public: { type: 'boolean' },
  private: { type: 'boolean' },
  priority: { type: 'string' },
  'signing-key': { type: 'string' },
  'trusted-key': { type: 'string', multiple: true },
  'no-trusted-keys': { type: 'boolean' },
  'require-signature': { type: 'boolean' },
  'no-require-signature': { type: 'boolean' },
  retention: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  'upstream-key': { type: 'string', multiple: true },
  'no-upstreams': { type: 'boolean' },
} as const;

export async function cacheCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const [action, name, ...rest] = positionals;
  if (rest.length > 0) throw new NarwhalError('bad-request', `unexpected arguments: ${rest.join(' ')}`);
  const needName = (): string => {
    if (!name) throw new NarwhalError('bad-request', `cache ${action} needs a cache name`);
    return name;
  };
  const { admin, close } = await openAdminTarget(values);
  try {
    switch (action) {
      case 'create': {
        const info = await admin.createCache(needName(), {
          isPublic: values.public === true,
          priority: values.priority === undefined ? undefined : Number(values.priority),
          signingKey: values['signing-key'] === undefined ? undefined : await readFile(values['signing-key'], 'utf8'),
          retention: values.retention === undefined ? undefined : parseRetention(values.retention),
          upstreams: values.upstream,
          upstreamKeys: values['upstream-key'],
        });
        printJsonOr(
          values.json,
          info,
          () => `created cache ${info.name} (${info.public ? 'public' : 'private'})\npublic key: ${info.publicKey}\n`,
        );
        return 0;
      }
      case 'list': {
        const caches = await admin.listCaches();
        printJsonOr(values.json, caches, () =>
          caches
            .map((c) => `${c.name}\t${c.public ? 'public' : 'private'}\tpriority ${c.priority}\t${c.publicKey}\n`)
            .join(''),
        );
        return 0;
      }
      case 'info': {
        const info = await admin.cacheInfo(needName());
        printJsonOr(values.json, info, () => describe(info));
        return 0;
      }
      case 'configure': {
        const info = await admin.configureCache(needName(), await changesFrom(values));
        printJsonOr(values.json, info, () => describe(info));
        return 0;
      }
      case 'destroy':
        await admin.destroyCache(needName());
        process.stdout.write(`destroyed cache ${name}\n`);
        return 0;
      default:
        throw new NarwhalError('bad-request', 'cache takes create, list, info, configure or destroy');
    }
  } finally {
    await close();
  }
}

async function changesFrom(values: {
  public?: boolean;
  private?: boolean;
  priority?: string;
  'signing-key'?: string;
  'trusted-key'?: string[];
  'no-trusted-keys'?: boolean;
  'require-signature'?: boolean;
  'no-require-signature'?: boolean;
  retention?: string;
  upstream?: string[];
  'upstream-key'?: string[];
  'no-upstreams'?: boolean;
}): Promise<CacheChanges> {
  const changes: CacheChanges = {};
  if (values.public && values.private)
    throw new NarwhalError('bad-request', '--public and --private contradict each other');
  if (values.public) changes.isPublic = true;
  if (values.private) changes.isPublic = false;
  if (values.priority !== undefined) changes.priority = Number(values.priority);
  if (values['signing-key'] !== undefined) changes.signingKey = await readFile(values['signing-key'], 'utf8');
  if (values['no-trusted-keys']) changes.trustedKeys = [];
  if (values['trusted-key']) changes.trustedKeys = values['trusted-key'];
  if (values['require-signature']) changes.requireSignature = true;
  if (values['no-require-signature']) changes.requireSignature = false;
  if (values.retention !== undefined) changes.retention = parseRetention(values.retention);
  if (values['no-upstreams']) changes.upstreams = [];
  if (values.upstream) changes.upstreams = values.upstream;
  if (values['upstream-key']) changes.upstreamKeys = values['upstream-key'];
  if (Object.keys(changes).length === 0)
    throw new NarwhalError('bad-request', 'cache configure needs at least one setting to change');
  return changes;
}

function describe(info: CacheInfo): string {
  return (
    `name               ${info.name}\n` +
    `visibility         ${info.public ? 'public' : 'private'}\n` +
    `priority           ${info.priority}\n` +
    `public key         ${info.publicKey}\n` +
    `require signature  ${info.requireSignature ? 'yes' : 'no'}\n` +
    `trusted keys       ${info.trustedKeys.join(' ') || '-'}\n` +
    `retention          ${formatRetention(info.retention)}\n` +
    `upstreams          ${info.upstreams.join(' ') || '-'}\n` +
    `upstream keys      ${info.upstreamKeys.join(' ') || '-'}\n` +
    `created            ${info.createdAt}\n`
  );
}
