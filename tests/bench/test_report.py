import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from eyepurify.bench.report import build_report, find_sections, markdown_to_html
from eyepurify.cli import main
from eyepurify.errors import DataError
from eyepurify.io import write_image, write_json, write_text


def _png(path, value=128):
    write_image(path, np.full((8, 12, 3), value, np.uint8))


def test_markdown_table_escapes_and_formats():
    md = "# Title\n\nA `x<y` and **bold** [link](http://e)\n\n| a | b |\n|---|---:|\n| <1> | **2** |\n"
    out = markdown_to_html(md)
    assert "<h2>Title</h2>" in out
    assert "<code>x&lt;y</code>" in out and "<strong>bold</strong>" in out and '<a href="http://e">link</a>' in out
    assert "<th>a</th><th>b</th>" in out and "<td>&lt;1&gt;</td><td><strong>2</strong></td>" in out
    assert "<script" not in markdown_to_html("<script>alert(1)</script>")


def test_lists_code_blocks_and_images(tmp_path):
    _png(tmp_path / "f.png")
    used = set()
    md = "* one\n  continued\n- two\n\n```\na | b\n```\n\n![fig](f.png) ![gone](missing.png)"
    out = markdown_to_html(md, tmp_path, used)
    assert "<ul><li>one continued</li><li>two</li></ul>" in out
    assert "<pre><code>a | b</code></pre>" in out
    assert out.count('src="data:image/png;base64,') == 1
    assert "![gone](missing.png)" in out  # a missing figure stays visible as text
    assert used == {(tmp_path / "f.png").resolve()}


def test_sections_are_ordered_and_collect_figures(tmp_path):
    for name in ("speed", "gaze", "zeta"):
        write_text(tmp_path / name / f"{name}.md", f"# {name}\n")
    _png(tmp_path / "gaze" / "gaze_cdf.png")
    _png(tmp_path / "gaze" / "other.png")
    write_text(tmp_path / "README.md", "not a result")
    secs = find_sections(tmp_path)
    assert [s.name for s in secs] == ["gaze", "speed", "zeta"]
    assert [f.name for f in secs[0].figures] == ["gaze_cdf.png"]


def test_build_report_inlines_everything(tmp_path):
    write_text(tmp_path / "a" / "gaze.md", "# Gaze\n\n| m | e |\n|---|---|\n| raw | 1.0 |\n\n![cdf](gaze_cdf.png)\n")
    write_json(tmp_path / "a" / "gaze.json", {"command": "eyepurify bench gaze --out a"})
    _png(tmp_path / "a" / "gaze_cdf.png")
    _png(tmp_path / "a" / "gaze_extra.png", 10)
    write_text(tmp_path / "b" / "paired.md", "no heading here\n")
    page = build_report(tmp_path)
    assert page.count('class="figure"') == 2  # the referenced one once, the other appended
    assert "eyepurify bench gaze --out a" in page and "<h2>b/paired</h2>" in page
    assert "http" not in page.replace('lang="en"', "")  # nothing fetched from anywhere


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="no benchmark results"):
        build_report(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        build_report(tmp_path / "nope")
    write_text(tmp_path / "x.md", "# x\n")
    (tmp_path / "x_fig.png").write_bytes(b"GIF89a")
    with pytest.raises(DataError, match="x_fig.png"):
        build_report(tmp_path)


def test_cli_writes_report(tmp_path, capsys):
    write_text(tmp_path / "speed.md", "# Speed\n")
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "empty" in capsys.readouterr().err


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None and os.environ.get("EYEPURIFY_REQUIRE_CHROMIUM"):
        pytest.fail("headless Chromium is required here (EYEPURIFY_REQUIRE_CHROMIUM) but not installed")
    return found


def test_report_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium not installed (apt-get install chromium); .ci/run installs it")
    write_text(tmp_path / "gaze.md", "# Gaze\n\n| m | e |\n|---|---|\n| raw | 1.0 |\n\n![cdf](gaze_cdf.png)\n")
    _png(tmp_path / "gaze_cdf.png")
    _png(tmp_path / "gaze_more.png", 30)
    assert main(["report", str(tmp_path)]) == 0
    # Offline: a user-data dir of its own, no network, the page read from disk.
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
           "--dump-dom", (tmp_path / "report.html").as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-figures-loaded="2"' in body.group(0) and 'data-figures-total="2"' in body.group(0)
    assert "<td>raw</td>" in dom


def _wide_results(root):
    """Two runs of one benchmark (same title), a wide table, a long command and a figure."""
    wide = "| " + " | ".join(f"column {i} with a long header" for i in range(12)) + " |\n"
    wide += "|" + "---|" * 12 + "\n" + "| " + " | ".join(f"{i}.000" for i in range(12)) + " |\n"
    for run in ("gaze", "gaze_columbia"):
        write_text(root / run / "gaze.md", f"# Gaze estimation\n\n{wide}\n![cdf](gaze_cdf.png)\n")
        write_json(root / run / "gaze.json", {"command": "eyepurify bench gaze --out " + "x" * 300})
        write_image(root / run / "gaze_cdf.png", np.full((400, 700, 3), 200, np.uint8))


def test_report_in_headless_chromium_at_1280_and_390_px(tmp_path):
    """Screenshots at a desktop and a phone width: nothing makes the page scroll sideways,
    figures load, and two runs of one benchmark get different titles (issue 23)."""
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium not installed (apt-get install chromium); .ci/run installs it")
    from PIL import Image

    _wide_results(tmp_path / "r")
    assert main(["report", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "report.html").as_uri()
    for width in (1280, 390):
        common = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / f'profile{width}'}",
                  f"--window-size={width},1400", "--virtual-time-budget=5000"]
        shot = tmp_path / f"report_{width}.png"
        subprocess.run([*common, f"--screenshot={shot}", page], capture_output=True, timeout=120)
        assert shot.is_file(), f"no screenshot at {width} px"
        im = np.asarray(Image.open(shot).convert("L"))
        assert im.shape[1] == width and im.std() > 5  # something was drawn
        dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
        body = re.search(r"<body[^>]*>", dom)
        assert body, dom[:500]
        assert 'data-figures-loaded="2"' in body.group(0)
        assert 'data-overflow="0"' in body.group(0), f"the page scrolls sideways at {width} px"
        titles = re.findall(r"<h2>(.*?)</h2>", dom)
        assert len(titles) == 2 and len(set(titles)) == 2 and all("Gaze estimation" in t for t in titles), titles


def test_sample_sheet_headers_are_never_cut_off():
    from eyepurify.bench.paired import header_lines

    lines = header_lines("raw (no purification)", 60)
    assert " ".join(lines).replace(" ", "") == "raw(nopurification)" and len(lines) > 1


def test_cdf_legend_does_not_cover_the_curves():
    from eyepurify.gaze.protocol import cdf_plot

    rng = np.random.default_rng(0)
    fig = cdf_plot({name: rng.gamma(2, 6, 200) for name in ("raw", "histogram matching", "Reinhard", "ours")}, "t")
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    plot = ax.get_window_extent()
    assert not legend.overlaps(plot), (legend, plot)
    assert legend.y0 >= 0 and legend.x0 >= 0 and legend.x1 <= fig.bbox.x1  # inside the figure
