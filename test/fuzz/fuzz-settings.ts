import type { Parameters } from 'fast-check';

/**
 * How hard the property tests try. `npm test` runs each property `short` times from a fixed seed,
 * so a run is repeatable; `npm run fuzz` sets NARWHAL_FUZZ_RUNS (and a fresh seed each run unless
 * NARWHAL_FUZZ_SEED pins one). fast-check prints the seed and path of any failure, which
 * NARWHAL_FUZZ_SEED plus `path` in the report replay.
 */
export const FIXED_SEED = 0x6e617277;

export function fuzzParameters<T>(short: number): Parameters<T> {
  const runs = process.env.NARWHAL_FUZZ_RUNS;
  const seed = process.env.NARWHAL_FUZZ_SEED;
  if (runs === undefined) return { seed: seed === undefined ? FIXED_SEED : Number(seed), numRuns: short };
  return { numRuns: Number(runs), ...(seed === undefined ? {} : { seed: Number(seed) }), verbose: 1 };
}
