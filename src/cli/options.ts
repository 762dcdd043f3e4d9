/** Options every command that opens the stores accepts. */
export const STORE_OPTIONS = {
  'data-dir': { type: 'string', default: './narwhal-data' },
} as const;
