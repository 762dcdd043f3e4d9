import { parseArgs } from 'node:util';
import { NarwhalError } from '../errors.ts';
import { parseDuration } from '../tenancy/duration.ts';
import { parsePermissions } from '../tenancy/tokens.ts';
import { ADMIN_OPTIONS, openAdminTarget } from './options.ts';
import { printJsonOr } from './output.ts';

const OPTIONS = {
  ...ADMIN_OPTIONS,
  json: { type: 'boolean', default: false },
  cache: { type: 'string' },
  perm: { type: 'string' },
  expires: { type: 'string' },
  name: { type: 'string' },
} as const;

export async function tokenCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  const [action, id] = positionals;
  const { admin, close } = await openAdminTarget(values);
  try {
    switch (action) {
      case 'create': {
        if (!values.cache || !values.perm)
          throw new NarwhalError(
            'bad-request',
            'token create needs --cache NAME[,NAME|glob] and --perm pull,push,delete,admin',
          );
        const created = await admin.createToken({
          caches: values.cache
            .split(',')
            .map((c) => c.trim())
            .filter((c) => c !== ''),
          perms: parsePermissions(values.perm),
          name: values.name,
          expiresInMs: values.expires === undefined ? undefined : parseDuration(values.expires),
        });
        printJsonOr(
          values.json,
          created,
          () => `token ${created.id} created; its secret, shown only now:\n${created.secret}\n`,
        );
        return 0;
      }
      case 'list': {
        const tokens = await admin.listTokens();
        printJsonOr(values.json, tokens, () =>
          tokens
            .map(
              (t) =>
                `${t.id}\t${t.name || '-'}\tcaches ${t.caches.join(',')}\tperms ${t.perms.join(',')}\texpires ${t.expiresAt ?? 'never'}${t.revoked ? '\tREVOKED' : ''}\n`,
            )
            .join(''),
        );
        return 0;
      }
      case 'revoke':
        if (!id) throw new NarwhalError('bad-request', 'token revoke needs a token id');
        await admin.revokeToken(id);
        process.stdout.write(`revoked token ${id}\n`);
        return 0;
      default:
        throw new NarwhalError('bad-request', 'token takes create, list or revoke');
    }
  } finally {
    await close();
  }
}
