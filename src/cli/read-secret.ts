import { text } from 'node:stream/consumers';

/**
 * A secret read from standard input, so that it stays out of the command line (and `ps`): on a
 * terminal, typed after `prompt` without being echoed; otherwise the whole input, trimmed (so
 * `narwhal login NAME URL < token-file` works). Empty input: undefined.
 */
export async function readSecret(prompt: string): Promise<string | undefined> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return (await text(stdin)).trim() || undefined;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  let typed = '';
  try {
    for await (const chunk of stdin as AsyncIterable<string>) {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') return typed.trim() || undefined;
        if (char === '\u0003') throw new Error('interrupted');
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else typed += char;
      }
    }
    return typed.trim() || undefined;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}
