/**
 * The service files in contrib/: the systemd unit passes `systemd-analyze verify`, and the NixOS
 * module, evaluated by the real `nix-instantiate` against a small stand-in for nixpkgs' `lib`
 * (nixpkgs is not on this machine), has an option for every serve setting, each carried to the
 * service as its NARWHAL_* variable, with the unit's hardening.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { envVarOf, SERVE_OPTIONS } from '../../../src/cli/serve-options.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const UNIT = join(REPO, 'contrib/systemd/narwhal.service');
const MODULE = join(REPO, 'contrib/nixos/module.nix');
const run = promisify(execFile);

/** Nix as root without a daemon, evaluating only (nix-protocol.md). */
const NIX_ENV = { ...process.env, NIX_CONFIG: 'build-users-group =\nexperimental-features = nix-command' };

const camel = (name: string): string => name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

/** Key=value lines of a unit file, by section, in order. */
function unitKeys(text: string): { section: string; key: string; value: string }[] {
  const out: { section: string; key: string; value: string }[] = [];
  let section = '';
  for (const line of text.split('\n')) {
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) section = header[1];
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (pair) out.push({ section, key: pair[1], value: pair[2] });
  }
  return out;
}

test('the systemd unit passes systemd-analyze verify, hardened, MemoryDenyWriteExecute left off', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'narwhal-unit-'));
  try {
    // verify wants ExecStart's program to exist: point it at this checkout's.
    const text = await readFile(UNIT, 'utf8');
    const unit = join(dir, 'narwhal.service');
    await writeFile(
      unit,
      text.replace('ExecStart=/usr/local/bin/narwhal', `ExecStart=${join(REPO, 'bin/narwhal.js')}`),
    );
    const { stderr } = await run('systemd-analyze', ['verify', unit]);
    assert.equal(stderr.trim(), '', 'no key unknown or unparsable');

    // The check above would catch a misspelt key: so would this one.
    await writeFile(unit, (await readFile(unit, 'utf8')).replace('ProtectHome=yes', 'ProtectHom=yes'));
    const bad = await run('systemd-analyze', ['verify', unit]);
    assert.match(bad.stderr, /Unknown key 'ProtectHom'/);

    const keys = unitKeys(text).filter((k) => k.section === 'Service');
    const value = (key: string) => keys.find((k) => k.key === key)?.value;
    for (const [key, expected] of Object.entries({
      DynamicUser: 'yes',
      StateDirectory: 'narwhal',
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      PrivateTmp: 'yes',
      NoNewPrivileges: 'yes',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      SystemCallFilter: '@system-service',
      CapabilityBoundingSet: '',
    }))
      assert.equal(value(key), expected, key);
    assert.equal(value('MemoryDenyWriteExecute'), undefined);
    assert.match(text, /MemoryDenyWriteExecute=yes is left off on purpose: V8/);
    // Its variables are serve's, and Node's compile cache in the unit's CacheDirectory.
    const variables = keys.filter((k) => k.key === 'Environment').map((k) => k.value.split('=')[0]);
    const known = new Set([...Object.keys(SERVE_OPTIONS).map(envVarOf), 'NODE_COMPILE_CACHE']);
    assert.equal(value('CacheDirectory'), 'narwhal');
    assert.ok(variables.length > 0);
    for (const variable of variables) assert.ok(known.has(variable), variable);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/**
 * The module evaluated as NixOS would, with a stand-in `lib` that keeps what an option declares
 * (mkOption returns its arguments), and a config built from the options' defaults plus `overrides`.
 */
async function evaluateModule(overrides: string): Promise<{
  options: Record<string, { default: unknown; type: unknown; description: string }>;
  config: {
    systemd: {
      services: { narwhal: { environment: Record<string, string>; serviceConfig: Record<string, unknown> } };
    };
  };
}> {
  const expr = `
    let
      lib = {
        mkOption = o: o;
        mkEnableOption = what: { type = "bool"; default = false; description = "Whether to enable " + what; };
        mkIf = condition: value: if condition then value else { };
        types = {
          str = "str"; bool = "bool"; package = "package"; path = "path";
          nullOr = t: { nullOr = t; };
          enum = values: { enum = values; };
        };
      };
      evaluate = config: import ${JSON.stringify(MODULE)} { inherit config lib; pkgs = { }; };
      options = (evaluate { }).options.services.narwhal;
      defaults = builtins.mapAttrs (name: option: option.default) options.settings;
      config = {
        services.narwhal = {
          enable = true;
          package = "/nix/store/00000000000000000000000000000000-narwhal";
          environmentFile = "/run/secrets/narwhal.env";
          settings = defaults // (${overrides});
        };
      };
    in { options = options.settings; config = (evaluate config).config; }`;
  const { stdout } = await run('nix-instantiate', ['--eval', '--strict', '--json', '--expr', expr], { env: NIX_ENV });
  return JSON.parse(stdout);
}

test('the NixOS module: an option for every serve setting, passed on as its NARWHAL_* variable', async () => {
  await run('nix-instantiate', ['--parse', MODULE], { env: NIX_ENV });
  const { options, config } = await evaluateModule('{ deltas = true; database = "postgres://narwhal@db/narwhal"; }');
  const service = config.systemd.services.narwhal;
  const names = Object.keys(SERVE_OPTIONS);
  assert.deepEqual(Object.keys(options).sort(), names.map(camel).sort(), 'one option per serve setting, no more');
  for (const name of names) {
    const option = options[camel(name)];
    assert.ok(option.description.length > 10, `${name} is described`);
    const serveDefault = (SERVE_OPTIONS as Record<string, { default?: string | boolean }>)[name].default;
    // The service keeps its data in its state directory and logs JSON for the journal.
    if (name === 'data-dir') assert.equal(option.default, '/var/lib/narwhal');
    else if (name === 'log-format') assert.equal(option.default, 'json');
    else assert.equal(option.default, serveDefault ?? null, `${name}'s default is serve's`);
  }
  const env = service.environment;
  assert.equal(env.NARWHAL_DELTAS, '1');
  assert.equal(env.NARWHAL_LOG_REQUESTS, '0');
  assert.equal(env.NARWHAL_DATABASE, 'postgres://narwhal@db/narwhal');
  assert.equal(env.NARWHAL_LISTEN, '127.0.0.1:5000');
  assert.equal(env.NARWHAL_METRICS_TOKEN, undefined, 'a null setting leaves the default');
  // Every variable it can set is the one serve reads for that setting.
  const unset = names.filter(
    (name) => (SERVE_OPTIONS as Record<string, { default?: unknown }>)[name].default === undefined,
  );
  const all = await evaluateModule(`{ ${unset.map((name) => `${camel(name)} = "x";`).join(' ')} }`);
  assert.deepEqual(Object.keys(all.config.systemd.services.narwhal.environment).sort(), names.map(envVarOf).sort());

  const hardening = service.serviceConfig;
  assert.equal(hardening.ExecStart, '/nix/store/00000000000000000000000000000000-narwhal/bin/narwhal serve');
  assert.deepEqual(hardening.EnvironmentFile, ['/run/secrets/narwhal.env']);
  for (const [key, expected] of Object.entries({
    DynamicUser: true,
    StateDirectory: 'narwhal',
    ProtectSystem: 'strict',
    ProtectHome: true,
    PrivateTmp: true,
    NoNewPrivileges: true,
  }))
    assert.deepEqual(hardening[key], expected, key);
  assert.deepEqual(hardening.SystemCallFilter, ['@system-service']);
  assert.equal(hardening.MemoryDenyWriteExecute, undefined);
});
