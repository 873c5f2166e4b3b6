// The HTML document around a report's sections: one self-contained file (inline style, inline SVG, one small
// inline script), with a Content-Security-Policy that lets the page load nothing at all, so opening a report can
// never reach the network whatever a run's names contain.
import { esc } from './html.js';
import { SCRIPT, STYLE } from './style.js';

const CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

/** A whole page: the heading, a line under it, links to the sections, the sections' HTML (already escaped). */
export function page(o: { title: string; heading: string; sub: string; nav: readonly [string, string][];
  body: string }): string {
  const nav = o.nav.map(([id, text]) => `<a href="#${esc(id)}">${esc(text)}</a>`).join('');
  return '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">\n` +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<title>${esc(o.title)}</title>\n<style>${STYLE}</style>\n</head>\n<body>\n<main>\n` +
    `<h1>${esc(o.heading)}</h1>\n<p class="sub">${esc(o.sub)}</p>\n<nav>${nav}</nav>\n${o.body}</main>\n` +
    `<div id="tip" role="tooltip"></div>\n<script>${SCRIPT}</script>\n</body>\n</html>\n`;
}
