// The report's inline style sheet, hover script and colours. Schedule ops take the colours of DualPipe's figure
// (FACTS §5; DualPipe README): forward orange, backward dark green, backward for input (a split B, `z`) light
// green, backward for weights blue, an F&B block half orange over half green inside one black border; the second
// chunk (DualPipe's reverse direction) a darker shade of the same hue. The work after the schedule is neutral grey
// with a dashed border, and comm bars take colours no op uses. Nothing is loaded from anywhere: the page's CSP
// forbids it.

/** A line series' colours, by index (wraps). */
export const SERIES_COLOURS: readonly string[] = Object.freeze(['#1f77b4', '#d62728', '#2ca02c', '#9467bd',
  '#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22']);

/** Colour of series i. */
export function seriesColour(i: number): string {
  return SERIES_COLOURS[i % SERIES_COLOURS.length];
}

/** Colour of expert e of n: hues around the circle, so neighbours differ. */
export function expertColour(e: number, n: number): string {
  return `hsl(${Math.round((360 * e) / Math.max(1, n))},65%,45%)`;
}

/** The comm phases the timeline colours; any other comm record is `other`. */
export const COMM_PHASES = ['dispatch', 'combine', 'p2p', 'reduce'] as const;

/** Legend entries of the timeline's blocks and of its comm bars: CSS class, label. */
export const OP_LEGEND: readonly [string, string][] = [
  ['k-F', 'F: forward'], ['k-B', 'B: backward'], ['k-Bz', 'Bz: backward for input (W deferred)'],
  ['k-W', 'W: backward for weights'], ['k-FB', 'F&B: forward and backward overlapped'],
  ['post', 'after the schedule: reductions, optimizer'],
];
export const COMM_LEGEND: readonly [string, string][] = [
  ['ph-dispatch', 'dispatch'], ['ph-combine', 'combine'], ['ph-p2p', 'pipeline p2p'], ['ph-reduce', 'reduce'],
  ['ph-other', 'other comm'],
];

/** The page's style sheet (system fonts only). */
export const STYLE = `
:root{--ink:#1d2330;--mute:#5d6677;--line:#d9dde5;--bg:#fff;--panel:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:16px 20px 48px}
h1{font-size:22px;margin:4px 0 2px}h2{font-size:17px;margin:28px 0 4px;border-bottom:1px solid var(--line);
padding-bottom:3px}h3{font-size:14px;margin:12px 0 4px}
.sub,.note{color:var(--mute);margin:2px 0 8px}.note{font-size:13px}
nav{font-size:13px;margin:6px 0 4px}nav a{margin-right:12px;color:#2457a6;text-decoration:none}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{background:var(--panel);border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:150px}
.card .v{font-size:19px;font-weight:600}.card .k{color:var(--mute);font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid var(--line);padding:3px 9px;text-align:right;white-space:nowrap}
th:first-child,td:first-child,table.runs td,table.runs th{text-align:left}th{background:var(--panel);font-weight:600}
.up{color:#b3261e}.down{color:#1b7f3b}
.scroll{overflow-x:auto}
.grid{display:flex;flex-wrap:wrap;gap:8px 18px}
figure{margin:6px 0}figcaption{font-size:12px;color:var(--mute)}
svg{display:block;font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
svg text{fill:var(--ink)}svg .ax{stroke:#8a93a3;stroke-width:1}svg .gr{stroke:#eceef2;stroke-width:1}
svg .lbl{fill:var(--mute)}svg .in{pointer-events:none;font-size:9px;fill:#1d2330}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:4px 0;color:var(--mute)}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px;
border:1px solid rgba(0,0,0,.25)}
.k-F,.sw.k-F{fill:#f6a23c;background:#f6a23c}.k-F.c1{fill:#d97a12}
.k-B,.sw.k-B{fill:#2f8f46;background:#2f8f46}.k-B.c1{fill:#1f6b33}
.k-Bz,.sw.k-Bz{fill:#9fd48b;background:#9fd48b}.k-Bz.c1{fill:#77bd62}
.k-W,.sw.k-W{fill:#5a8fd8;background:#5a8fd8}.k-W.c1{fill:#336cbc}
.sw.k-FB{background:linear-gradient(#f6a23c 50%,#2f8f46 50%);border-color:#000}
.fbo{fill:none;stroke:#000;stroke-width:1}
.post,.sw.post{fill:#c4c7cc;background:#c4c7cc;stroke:#6b7280;stroke-dasharray:3 2}
.oth{fill:#e2e4e8}
.ph-dispatch,.sw.ph-dispatch{fill:#8e5cc4;background:#8e5cc4}.ph-combine,.sw.ph-combine{fill:#d6609d;background:#d6609d}
.ph-p2p,.sw.ph-p2p{fill:#b7962a;background:#b7962a}.ph-reduce,.sw.ph-reduce{fill:#8a5a44;background:#8a5a44}
.ph-other,.sw.ph-other{fill:#9aa1ad;background:#9aa1ad}
.track{fill:#f3f4f6}.lane{fill:#fafafb}
.hot{stroke:#000;stroke-width:1.5}
dl.glossary{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:13px}
dl.glossary dt{font-weight:600}dl.glossary dd{margin:0}
#tip{position:fixed;display:none;z-index:10;max-width:460px;background:#1d2330;color:#fff;font-size:12px;
line-height:1.4;padding:6px 8px;border-radius:4px;white-space:pre-line;pointer-events:none;
box-shadow:0 2px 8px rgba(0,0,0,.25)}
`;

/**
 * Hover: an element whose first child is a `<title>` (op blocks, comm bars, points, cells) shows that text in
 * #tip. The first hover moves the title into data-tip, so the browser's own slow tooltip does not show as well;
 * without script the title still works.
 */
export const SCRIPT = `
(function () {
  var tip = document.getElementById('tip');
  var current = null;
  function tipped(node) {
    for (var n = node; n && n.nodeType === 1; n = n.parentNode) {
      if (n.hasAttribute('data-tip')) return n;
      var t = n.firstElementChild;
      if (t && t.tagName.toLowerCase() === 'title' && n.tagName.toLowerCase() !== 'svg') {
        n.setAttribute('data-tip', t.textContent);
        n.removeChild(t);
        return n;
      }
    }
    return null;
  }
  function place(e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth - 4) x = Math.max(4, e.clientX - tip.offsetWidth - 14);
    if (y + tip.offsetHeight > window.innerHeight - 4) y = Math.max(4, e.clientY - tip.offsetHeight - 14);
    tip.style.left = x + 'px';
    tip.style.top = y + 'px';
  }
  function hide() {
    if (current) current.classList.remove('hot');
    current = null;
    tip.style.display = 'none';
  }
  document.addEventListener('mouseover', function (e) {
    var n = tipped(e.target);
    if (n === current) return;
    hide();
    if (!n) return;
    current = n;
    n.classList.add('hot');
    tip.textContent = n.getAttribute('data-tip');
    tip.style.display = 'block';
    place(e);
  });
  document.addEventListener('mousemove', function (e) { if (current) place(e); });
  document.addEventListener('mouseout', function (e) {
    if (current && !(e.relatedTarget && current.contains(e.relatedTarget))) hide();
  });
})();
`;
