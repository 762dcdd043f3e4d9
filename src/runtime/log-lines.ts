import { NarwhalError } from '../errors.ts';

/** How the server writes its log: `text` for people, `json` for log collectors (one object a line). */
export type LogFormat = 'text' | 'json';

export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  msg: string;
  requestId?: string;
  method?: string;
  /** The route's name (metrics use the same), not the path. */
  route?: string;
  /** The request's path, as sent. */
  path?: string;
  status?: number;
  durationMs?: number;
  /** Bytes sent in the answer. */
  bytes?: number;
}

/**
 * One log line, without its newline. JSON: an object with `time` (ISO 8601) first, then the
 * entry's fields that are set. Text: the message, then the request's figures and id, if any.
 */
export function formatLogLine(format: LogFormat, entry: LogEntry, time: Date = new Date()): string {
  if (format === 'json') return JSON.stringify({ time: time.toISOString(), ...entry });
  const parts = [entry.msg];
  if (entry.durationMs !== undefined) parts.push(`${entry.durationMs.toFixed(1)}ms`);
  if (entry.bytes !== undefined) parts.push(`${entry.bytes}B`);
  if (entry.requestId !== undefined) parts.push(`id=${entry.requestId}`);
  return parts.join(' ');
}

export function parseLogFormat(text: string): LogFormat {
  const format = LOG_FORMATS.find((known) => known === text);
  if (!format) throw new NarwhalError('bad-request', `--log-format takes ${LOG_FORMATS.join(' or ')}, not ${text}`);
  return format;
}
