/** The one stylesheet, served at /_ui/style.css. */
export const STYLESHEET = `
:root { color-scheme: light dark; --line: #8884; --muted: #777; --accent: #2a6fb0; }
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 0 1rem 3rem; }
header { display: flex; align-items: center; gap: 1rem; border-bottom: 1px solid var(--line); padding: .6rem 0; flex-wrap: wrap; }
header .brand { font-weight: 700; font-size: 1.15rem; text-decoration: none; color: inherit; }
header form { margin: 0; }
header .who { margin-left: auto; color: var(--muted); }
a { color: var(--accent); }
h1 { font-size: 1.4rem; margin: 1.2rem 0 .6rem; word-break: break-all; }
h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: .9em; }
td.mono, dd.mono { word-break: break-all; }
pre { background: #8881; padding: .6rem; overflow: auto; border-radius: 4px; }
dl.fields { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dl.fields dt { color: var(--muted); }
dl.fields dd { margin: 0; word-break: break-all; }
.badge { font-size: .8rem; border: 1px solid var(--line); border-radius: 3px; padding: 0 .3rem; color: var(--muted); }
.muted { color: var(--muted); }
.figures { display: flex; gap: 2rem; flex-wrap: wrap; }
.figures div { min-width: 8rem; }
.figures b { display: block; font-size: 1.3rem; }
svg.chart { width: 100%; max-width: 48rem; height: auto; border: 1px solid var(--line); }
svg.chart .nar { stroke: #d9822b; fill: none; stroke-width: 2; }
svg.chart .stored { stroke: #2a6fb0; fill: none; stroke-width: 2; }
svg.chart text { fill: currentColor; font-size: 11px; }
svg.chart .axis { stroke: var(--line); }
.error { border-left: 4px solid #c33; padding: .4rem .8rem; }
form.inline { display: inline; }
input[type=search] { width: 20rem; max-width: 60vw; }
`;
