"""`make bench` itself is not part of the suite (timing goals are never unit-tested); this
only proves the script runs end to end and writes a usable result, on one small fixture."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import FIXTURES


def test_bench_runs_on_one_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench import run

    args = ["--corpus", str(FIXTURES), "--pattern", "orient_landscape_6.jpg", "--repeats", "1", "--threads", "2"]
    code = run.main([*args, "--quick", "--no-vips", "--no-rss", "--no-plot", "--cold-starts", "1", "--out", str(tmp_path)])
    assert code == 0
    result = json.loads((tmp_path / "latest.json").read_text())
    (photo,) = result["photos"]
    for key in ("floor", "ours_web_2t", "ours_classic_2t", "naive_classic", "handler_web_2t"):
        assert photo["median_ms"][key] > 0, key
    assert photo["ratios"]["naive_over_ours_classic_2t"] > 0
    # The quality check looks at real pixels: an upright, correctly sized rendition scores well.
    assert min(v["psnr"] for v in photo["quality"]["ours"].values()) > 25
    assert set(photo["classic_outputs"]["ours"]) == set(photo["classic_outputs"]["naive"])
    # Cold start is read from a real `python -X importtime -c "import app"`, with the plugins it loaded.
    cold = result["summary"]["cold_start"]
    assert cold["median_ms"] > 0
    assert "JpegImagePlugin" in cold["pil_plugins"]
    assert "PsdImagePlugin" not in cold["pil_plugins"]
    assert "Goals" in capsys.readouterr().out
    # Goals 1-3 are medians and worst cases over the corpus: a --quick run gives no verdict on them.
    corpus_goals = [g for g in result["goals"] if g["goal"][0] in "123"]
    assert corpus_goals and all(g["pass"] is None and "not a verdict" in g["value"] for g in corpus_goals)
    assert any(g["goal"].startswith("6.") and g["pass"] is not None for g in result["goals"])


def test_facts_bench_prints_times_and_the_phash_separation(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import facts

    facts.main(["--corpus", str(FIXTURES), "--side", "256"])
    out = capsys.readouterr().out
    assert "orient_landscape_1.jpg" in out and "orient_landscape_6.jpg" not in out  # one photo of each orientation set
    assert re.search(r"pHash: same photo, largest distance \d+ .*; different photos, smallest \d+", out), out
