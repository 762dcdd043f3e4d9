/** Prints JSON when asked, else the human-readable text. */
export function printJsonOr(json: boolean, value: unknown, text: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : text());
}
