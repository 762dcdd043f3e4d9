import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NarwhalMetrics } from '../../../src/metrics/narwhal-metrics.ts';
import { metricNames } from '../../helpers/prometheus-text.ts';

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

/** PromQL words that are not metric names: functions, aggregations and their modifiers. */
const PROMQL_WORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
]);

/** The metric names a PromQL expression reads. */
function metricsRead(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values
    .replace(/\{[^}]*\}/g, '') // label matchers
    .replace(/\[[^\]]*\]/g, '') // ranges
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ''); // grouping labels
  // A word followed by an opening parenthesis is a function or an aggregation.
  return [...bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)]
    .filter((m) => m[2] === undefined)
    .map((m) => m[1])
    .filter((word) => !PROMQL_WORDS.has(word) && !/^\d/.test(word));
}

test('every metric the Grafana dashboard queries is one /metrics exposes', async () => {
  const dashboard = JSON.parse(
    await readFile(join(import.meta.dirname, '../../../docs/grafana-dashboard.json'), 'utf8'),
  );
  const metrics = new NarwhalMetrics();
  metrics.addProcessMetrics();
  const declared = metricNames(await metrics.text());
  // A histogram is queried through its series.
  const exposed = new Set([...declared].flatMap((name) => [name, `${name}_bucket`, `${name}_sum`, `${name}_count`]));
  const panels = dashboard.panels as Panel[];
  assert.ok(panels.length >= 10);
  const used = new Set<string>();
  for (const panel of panels) {
    assert.ok(panel.targets && panel.targets.length > 0, `${panel.title} queries something`);
    for (const { expr } of panel.targets) {
      const names = metricsRead(expr);
      assert.ok(names.length > 0, `${panel.title}: ${expr} reads a metric`);
      for (const name of names) {
        assert.ok(exposed.has(name), `${panel.title}: ${name} is not exposed`);
        used.add(name);
      }
    }
  }
  // And the dashboard shows every figure Narwhal itself records.
  for (const name of declared) {
    if (!name.startsWith('narwhal_')) continue;
    assert.ok(used.has(name) || used.has(`${name}_bucket`), `the dashboard shows ${name}`);
  }
});

test('the check finds a name that is not exposed', () => {
  assert.deepEqual(metricsRead('sum by (route) (rate(narwhal_nope_total{route="a b"}[5m])) / on (x) up'), [
    'narwhal_nope_total',
    'up',
  ]);
});
