"""One self-contained HTML page from a folder of benchmark results (``NAME.md`` + ``NAME*.png``).

Each benchmark writes ``NAME.json``, ``NAME.md`` and figures ``NAME_*.png`` into its output
folder. :func:`build_report` finds every ``*.md`` under a folder, converts it with the small
Markdown subset the benchmarks write (headings, paragraphs, lists, tables, code, bold,
links, images), inlines every figure as a base64 ``data:`` URI and returns one HTML page that
opens offline. A script at the end of the page counts the figures the browser decoded
(``<body data-figures-loaded=N data-figures-total=M>``) so a headless browser can check it.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from eyepurify.errors import DataError

# Benchmarks in the order of the paper's evaluation; others follow alphabetically.
ORDER = ("paired", "gaze", "pupil", "domain", "objective", "speed")

_TABLE_SEP = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


@dataclass
class Section:
    """One benchmark's result: its Markdown file, figures and (optional) JSON."""

    name: str
    markdown: Path
    figures: list[Path] = field(default_factory=list)
    json: Path | None = None


def png_data_uri(path: Path) -> str:
    """``data:image/png;base64,...`` for a PNG file; DataError when it is not a PNG."""
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise DataError(path, "is not a PNG file", "re-run the benchmark that wrote it")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _inline(text: str, base: Path | None, used: set[Path]) -> str:
    """Escape ``text`` and apply images, links, code and bold (in that order)."""
    pieces: list[str] = []
    pos = 0
    for m in _CODE.finditer(text):
        pieces.append(_inline_plain(text[pos : m.start()], base, used))
        pieces.append(f"<code>{html.escape(m.group(1))}</code>")
        pos = m.end()
    pieces.append(_inline_plain(text[pos:], base, used))
    return "".join(pieces)


def _inline_plain(text: str, base: Path | None, used: set[Path]) -> str:
    def image(m: re.Match[str]) -> str:
        alt, src = m.group(1), m.group(2)
        path = (base / src) if base is not None else None
        if path is not None and path.suffix.lower() == ".png" and path.is_file():
            used.add(path.resolve())
            return f'<img class="figure" alt="{html.escape(alt)}" src="{png_data_uri(path)}">'
        return html.escape(m.group(0))

    out = []
    pos = 0
    for m in _IMAGE.finditer(text):
        out.append(_links_bold(html.escape(text[pos : m.start()])))
        out.append(image(m))
        pos = m.end()
    out.append(_links_bold(html.escape(text[pos:])))
    return "".join(out)


def _links_bold(escaped: str) -> str:
    escaped = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', escaped)
    return _BOLD.sub(r"<strong>\1</strong>", escaped)


def _cells(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip() for c in line.split("|")]


def markdown_to_html(text: str, base: Path | None = None, used: set[Path] | None = None) -> str:
    """The Markdown subset the benchmarks write -> HTML. Images relative to ``base`` are inlined."""
    used = set() if used is None else used
    lines = text.splitlines()
    out: list[str] = []
    para: list[str] = []
    i = 0

    def flush() -> None:
        if para:
            out.append("<p>" + _inline(" ".join(para), base, used) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
        elif stripped.startswith("```"):
            flush()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            out.append("<pre><code>" + html.escape("\n".join(lines[i + 1 : j])) + "</code></pre>")
            i = j + 1
        elif m := re.match(r"^(#{1,6})\s+(.*)$", stripped):
            flush()
            level = min(len(m.group(1)) + 1, 6)  # the page's <h1> is the report title
            out.append(f"<h{level}>{_inline(m.group(2), base, used)}</h{level}>")
            i += 1
        elif stripped.startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1].strip()):
            flush()
            head = _cells(stripped)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            th = "".join(f"<th>{_inline(c, base, used)}</th>" for c in head)
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c, base, used)}</td>" for c in r) + "</tr>" for r in rows
            )
            out.append(f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>")
        elif re.match(r"^[*-]\s+", stripped):
            flush()
            items = []
            while i < len(lines) and re.match(r"^\s*[*-]\s+", lines[i]):
                item = re.sub(r"^\s*[*-]\s+", "", lines[i])
                i += 1
                while i < len(lines) and lines[i].startswith("  ") and lines[i].strip() and not re.match(r"^\s*[*-]\s+", lines[i]):
                    item += " " + lines[i].strip()
                    i += 1
                items.append(f"<li>{_inline(item, base, used)}</li>")
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para.append(stripped)
            i += 1
    flush()
    return "\n".join(out)


def find_sections(root: Path) -> list[Section]:
    """Every ``NAME.md`` under ``root`` (recursively) with its ``NAME*.png`` and ``NAME.json``."""
    sections = []
    for md in sorted(root.rglob("*.md")):
        if md.name.lower() == "readme.md" or any(p.startswith(".") for p in md.relative_to(root).parts):
            continue
        figures = sorted(p for p in md.parent.glob(f"{md.stem}*.png") if p.is_file())
        js = md.with_suffix(".json")
        sections.append(Section(md.stem, md, figures, js if js.is_file() else None))

    def key(s: Section) -> tuple[int, str]:
        base = s.name.split("_")[0]
        return (ORDER.index(base) if base in ORDER else len(ORDER), str(s.markdown.relative_to(root)))

    return sorted(sections, key=key)


def _command(js: Path | None) -> str | None:
    if js is None:
        return None
    try:
        data = json.loads(js.read_text())
    except (OSError, ValueError):
        return None
    cmd = data.get("command") if isinstance(data, dict) else None
    return cmd if isinstance(cmd, str) else None


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2.2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f0f0f0}tbody tr:nth-child(even){background:#fafafa}
code,pre{background:#f4f4f4;font-size:.9em}pre{padding:.6em;overflow-x:auto}
img.figure{max-width:100%;height:auto;display:block;margin:1em 0;border:1px solid #ddd}
nav ul{columns:2}.src{color:#777;font-size:.85em;overflow-wrap:anywhere}
.scroll{overflow-x:auto;max-width:100%}
@media (max-width:700px){body{margin:1em auto;padding:0 .6em}nav ul{columns:1}h1{font-size:1.5em}}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img.figure'));
  var ok = imgs.filter(function (im) { return im.complete && im.naturalWidth > 0; }).length;
  document.body.setAttribute('data-figures-loaded', String(ok));
  document.body.setAttribute('data-figures-total', String(imgs.length));
  // 1 when anything makes the page wider than the window (a sideways-scrolling page)
  var wide = document.documentElement.scrollWidth > window.innerWidth + 1;
  document.body.setAttribute('data-overflow', wide ? '1' : '0');
});
"""


def build_report(root: str | Path, title: str = "eyepurify benchmark report") -> str:
    """A self-contained HTML page of every benchmark result under ``root``.

    DataError when ``root`` is not a folder or holds no ``*.md`` result.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "is not a folder", "pass the --out folder of one or more `eyepurify bench` runs")
    sections = find_sections(root)
    if not sections:
        raise DataError(root, "holds no benchmark results (*.md)", "run `eyepurify bench NAME --out DIR` first")
    nav, body = [], []
    rendered = []
    for s in sections:
        used: set[Path] = set()
        content = markdown_to_html(s.markdown.read_text(encoding="utf-8"), s.markdown.parent, used)
        content = content.replace("<table>", '<div class="scroll"><table>').replace("</table>", "</table></div>")
        rendered.append((content, used))
    titles = [re.match(r"<h2>(.*?)</h2>", c) for c, _ in rendered]
    seen = Counter(t.group(1) for t in titles if t)
    for k, s in enumerate(sections):
        anchor = f"s{k}"
        rel = s.markdown.relative_to(root)
        content, used = rendered[k]
        first = titles[k]
        fallback = html.escape(str(rel.with_suffix("")))
        if first and seen[first.group(1)] > 1:  # two runs of one benchmark: say which is which
            where = html.escape(str(rel.parent)) if str(rel.parent) != "." else fallback
            content = content.replace(first.group(0), f"<h2>{first.group(1)} — {where}</h2>", 1)
            first = re.match(r"<h2>(.*?)</h2>", content)
        label = re.sub(r"<[^>]+>", "", first.group(1)) if first else fallback
        nav.append(f'<li><a href="#{anchor}">{label}</a> <span class="src">{html.escape(str(rel))}</span></li>')
        parts = [f'<section id="{anchor}">']
        if not first:
            parts.append(f"<h2>{fallback}</h2>")
        parts.append(content)
        for fig in s.figures:
            if fig.resolve() not in used:
                parts.append(f'<img class="figure" alt="{html.escape(fig.name)}" src="{png_data_uri(fig)}">')
        cmd = _command(s.json)
        src = f"source: {html.escape(str(rel))}" + (f" · command: <code>{html.escape(cmd)}</code>" if cmd else "")
        parts.append(f'<p class="src">{src}</p></section>')
        body.append("\n".join(parts))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n<p class=\"src\">{len(sections)} results from "
        f"{html.escape(str(root))}, assembled {stamp}.</p>\n<nav><ul>{''.join(nav)}</ul></nav>\n"
        + "\n".join(body)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
