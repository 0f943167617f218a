"""report.html: one self-contained page (nothing external, every text escaped), checked in a real headless browser.

The table is built by hand with the real columns — two attacks and their worst case, an uncoded and a coded
pipeline (so both kinds of curve are drawn), a cost row — and the figures are drawn by report.py and
rate_plots.py as in a run. The browser test opens the page in Debian's chromium and reads back, from the DOM it
dumps, that the sections were parsed and that every embedded image decoded (the page's script writes each
image's natural size into ``data-natural`` on load), and that a screenshot of it is not a blank page.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from privbench.cli import main
from privbench.html_report import CSP, write_html
from privbench.rate_plots import rate_plots
from privbench.report import load_manifest, privacy_utility_plots, reconstruction_grid, write_report
from privbench.results import COLUMNS, base_row, write_csv

CHROMIUM = Path("/usr/bin/chromium")
TEST_SET, FACES = "synth-scenes", "synth-faces"
SECTIONS = ["summary", "manifest", "worst-case", "results", "edge-cost", "privacy-utility", "rate-utility",
            "reconstructions", "notes"]
HOSTILE_NOTE = "<script>alert(1)</script> & a 'quoted' \"note\""

MANIFEST = {
    "name": "tiny <b>run</b>", "config_hash": "abc123def456",
    "config": {"name": "tiny", "seed": 3, "comment": "a < b & c"},
    "seeds": [3], "grid": {"points": 3, "evaluated": 2, "resumed": 1}, "executor": "processes", "jobs": 2,
    "git_sha": "0123456789ab",
    "versions": {"privbench": "0.1.0", "python": "3.11.2", "torch": "2.5.1", "platform": "Linux", "cpu": "x86_64"},
    "started": "2025-01-01T10:00:00+00:00", "finished": "2025-01-01T10:00:42+00:00", "wall_seconds": 42.0,
    "stages": [{"stage": "task model", "seconds": 6.0}, {"stage": "attacks", "seconds": 30.0}],
}


def point(strength: float, accuracy: float, psnr: dict[str, float], codec: str = "none", quality: float | str = "",
          bpp: float | None = None) -> list[dict]:
    """The rows one grid point writes: accuracy, bpp when coded, psnr per attack plus attack=worst, edge cost."""
    common = dict(run_id="tiny-abc123de", config_hash="abc123def456", seed=3, model="vgg-small", split="relu12",
                  defense="noise", defense_params=json.dumps({"placement": "features", "scale": strength}),
                  strength=strength, codec=codec, quality=quality,
                  codec_params=json.dumps({"placement": "features"}) if codec != "none" else "")
    rows = [base_row(**common, dataset=TEST_SET, attack="none", metric="accuracy", kind="utility", value=accuracy,
                     ci_low=accuracy - 0.05, ci_high=accuracy + 0.05, ci_method="wilson95", n=60),
            base_row(**common, dataset="edge", attack="none", metric="edge-params", kind="cost", value=840.0, n=1)]
    if bpp is not None:
        rows += [base_row(**common, dataset=d, attack="none", metric="bpp", kind="rate", value=bpp, n=8)
                 for d in (TEST_SET, FACES)]
    for attack, value in {**psnr, "worst": max(psnr.values())}.items():
        rows.append(base_row(**common, dataset=FACES, attack=attack, metric="psnr", kind="privacy", value=value,
                             ci_low=value - 0.5, ci_high=value + 0.5, ci_method="normal95", n=8))
    return rows


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rows = (point(0.0, 0.9, {"inverse-net": 14.0, "rmle": 17.0}) + point(1.0, 0.5, {"inverse-net": 12.0, "rmle": 11.0})
            + point(0.0, 0.85, {"inverse-net": 13.0, "rmle": 15.0}, codec="hevc", quality=22, bpp=0.8)
            + point(0.0, 0.7, {"inverse-net": 12.0, "rmle": 13.0}, codec="hevc", quality=32, bpp=0.3))
    return pd.DataFrame(rows, columns=COLUMNS)


@pytest.fixture(scope="module")
def figures(frame, tmp_path_factory):
    """The run's figures drawn as a run draws them, and a 2-probe reconstruction grid."""
    import torch

    folder = tmp_path_factory.mktemp("figures")
    plots = privacy_utility_plots(frame, folder) + rate_plots(frame, folder)
    g = torch.Generator().manual_seed(0)
    originals = {FACES: torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)}
    samples = {("noise=1", "rmle"): {FACES: torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)}}
    return plots, reconstruction_grid(originals, samples, folder)


@pytest.fixture(scope="module")
def page(frame, figures, tmp_path_factory) -> Path:
    plots, grid = figures
    return write_html(frame, tmp_path_factory.mktemp("page"), MANIFEST, plots, grid, [HOSTILE_NOTE, "second note"])


def test_the_page_is_self_contained_and_escapes_every_text(page, figures):
    text = page.read_text()
    for external in ("http://", "https://", 'src="/', "src='/", "<link", "url(", "@import", "<iframe", "<object"):
        assert external not in text.lower(), external
    plots, grid = figures
    images = re.findall(r"<img\b[^>]*>", text)
    assert len(images) == len(plots) + 1 and {p.name for p in plots} >= {"privacy_utility_psnr.png", "rate_utility.png"}
    embedded = [re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', img) for img in images]
    assert all(embedded), images
    assert [base64.b64decode(m.group(1)) for m in embedded] == [p.read_bytes() for p in [*plots, grid]]
    # the hostile note, the run name and the config are text, not markup; the page's own script is the only one
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; a &#x27;quoted&#x27; &quot;note&quot;" in text
    assert "alert(1)</script>" not in text and text.count("<script") == 1
    assert "tiny &lt;b&gt;run&lt;/b&gt;" in text and "<b>run</b>" not in text
    assert "comment: a &lt; b &amp; c" in text
    assert f'content="{CSP.replace(chr(39), "&#x27;")}"' in text and "default-src &#x27;none&#x27;" in text
    for section in SECTIONS:
        assert f'<section id="{section}">' in text, section


def test_the_worst_case_and_manifest_sections_say_what_the_run_recorded(frame, page, tmp_path):
    text = page.read_text()
    # the answer first: the ranked summary and the worst-case curves open the page; the manifest closes it
    assert text.index('<section id="summary">') < text.index('<section id="privacy-utility">') < \
        text.index('<section id="worst-case">') < text.index('<section id="notes">') < text.index('<section id="manifest">')
    worst = text[text.index('<section id="worst-case">'):text.index('<section id="results">')]
    # one row per setting: the worst psnr is the larger attack's, beside the setting's accuracy (and rate)
    assert worst.count("<tr>") == 1 + 4 and ">17<" in worst and ">12<" in worst and ">0.85<" in worst
    assert "hevc" in worst and ">bpp<" in worst and "inverse-net" not in worst
    manifest = text[text.index('<section id="manifest">'):]
    for fact in ("abc123def456", "3 points (2 evaluated, 1 resumed from the cache)", "processes, 2 jobs",
                 "torch 2.5.1", "2025-01-01T10:00:42+00:00", "42.0 s", "task model", "71%"):
        assert fact in manifest, fact
    assert "not recorded" not in manifest
    sparse = write_html(frame, tmp_path, {"name": "old"}, [], None, []).read_text()
    assert sparse.count("not recorded") >= 9 and "No notes." in sparse and "No reconstruction grid" in sparse
    none = write_html(frame, tmp_path, None, [], None, [], config_text="seed: 7\n").read_text()
    assert "No run manifest was recorded" in none and "<pre>seed: 7</pre>" in none


def test_write_report_writes_the_manifest_section(frame, figures, tmp_path):
    plots, grid = figures
    md = write_report(frame, tmp_path, "seed: 3\n", plots, grid, ["a note"], manifest=MANIFEST)
    assert md == tmp_path / "report.md"
    section = md.read_text().split("## Run manifest", 1)[1].split("## Configuration", 1)[0]
    assert "- config hash: `abc123def456`" in section and "| attacks | 30 | 71% |" in section
    write_report(frame, tmp_path, "seed: 3\n", plots, grid, [])  # the positional call of the older callers
    assert "## Run manifest" not in md.read_text()
    write_html(frame, tmp_path, None, plots, grid, [])
    assert "No run manifest" in (tmp_path / "report.html").read_text()


def _run_folder(frame, tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    write_csv(frame, run / "results.csv")
    return run


def _report(capsys, run: Path) -> tuple[int, str]:
    try:
        main(["report", str(run)])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def test_privbench_report_rebuilds_both_pages_from_the_manifest_or_config_yaml(frame, tmp_path, capsys):
    run = _run_folder(frame, tmp_path)
    (run / "config.yaml").write_text("name: from-config-yaml\n")
    assert _report(capsys, run) == (0, "")  # a run folder from before manifests: config.yaml's text
    assert "name: from-config-yaml" in (run / "report.md").read_text()
    assert "name: from-config-yaml" in (run / "report.html").read_text()
    (run / "manifest.json").write_text(json.dumps(MANIFEST))
    assert _report(capsys, run) == (0, "")
    md, page = (run / "report.md").read_text(), (run / "report.html").read_text()
    assert "## Run manifest" in md and "comment: a < b & c" in md and "from-config-yaml" not in md
    assert "comment: a &lt; b &amp; c" in page and "3 points (2 evaluated" in page


@pytest.fixture(scope="module")
def reported(frame, tmp_path_factory) -> Path:
    """A run folder whose report was drawn once (the malformed-manifest cases copy it)."""
    run = _run_folder(frame, tmp_path_factory.mktemp("reported"))
    main(["report", str(run)])
    return run


@pytest.mark.parametrize(("content", "why"), [
    (b"", "not JSON"), (b'{"name": "x", ', "not JSON"), (b"[1, 2]", "a JSON list, not an object"),
    (b"\xff\xfe", "not UTF-8"), (b'{"stages": [{"stage": "a"}]}', "'stages' entry"),
    (b'{"seeds": [0, "one"]}', "'seeds' is not a list of integers"), (b'{"jobs": "2"}', "'jobs' is a str"),
])
def test_a_malformed_manifest_is_one_line_and_changes_nothing(reported, tmp_path, capsys, content, why):
    run = Path(shutil.copytree(reported, tmp_path / "run"))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert {"report.md", "report.html"} <= set(before)
    (run / "manifest.json").write_bytes(content)
    code, err = _report(capsys, run)
    assert code == 2 and err.count("\n") == 1 and "is not a privbench run manifest" in err and why in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.name != "manifest.json"} == before
    assert load_manifest(tmp_path) is None  # no manifest.json: a run from before manifests


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    # run() kills the browser when the timeout expires (and raises TimeoutExpired, failing the test)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_real_browser_parses_the_page_decodes_every_image_and_draws_it(page, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("no chromium at /usr/bin/chromium: apt-get install chromium to run the browser check")
    from PIL import Image, ImageStat

    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom.stdout, section
    assert 'data-loaded="yes"' in dom.stdout and 'data-styled="yes"' in dom.stdout  # the CSP let them run
    sizes = re.findall(r'data-natural="(\d+)x(\d+)"', dom.stdout)
    assert len(sizes) == page.read_text().count("<img") and all(int(w) > 0 and int(h) > 0 for w, h in sizes), sizes
    assert "alert(1)" in dom.stdout and "<script>alert" not in dom.stdout  # still text after parsing

    shot = tmp_path / "shot.png"
    result = _chromium(f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri(),
                       profile=tmp_path / "profile-shot")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 3000)
        gray = image.convert("L")
        assert ImageStat.Stat(gray).stddev[0] > 20  # text, tables and figures, not a blank page
        histogram = gray.histogram()
        assert sum(histogram[:128]) > 0.01 * sum(histogram)  # dark pixels: drawn text and curves
