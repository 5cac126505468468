"""`make bench`'s cost table and its docs block, on a synthetic result (no timing here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import cost, docs
from bench.report import print_table, summarise
from tests.conftest import ROOT


def _photo(name: str, cpu_1t: float, cpu_2t: float, wall_2t: float, *, handler: bool = True) -> dict[str, Any]:
    kind = "handler_web" if handler else "ours_web"
    return {
        "name": name,
        "megapixels": 12.0,
        "median_ms": {f"{kind}_1t": cpu_1t, f"{kind}_2t": wall_2t, "floor": 50.0},
        "median_cpu_ms": {f"{kind}_1t": cpu_1t, f"{kind}_2t": cpu_2t, "floor": 50.0},
        "ratios": {},
    }


def test_dollars_follow_lambdas_price() -> None:
    # One second at 1,024 MB is one GB-second, plus one request.
    assert cost.dollars_per_1000(1.0, 1024) == pytest.approx(1000 * (0.0000166667 + 0.2e-6))
    assert cost.dollars_per_1000(0.5, 2048) == pytest.approx(cost.dollars_per_1000(1.0, 1024))


def test_below_one_vcpu_the_same_work_costs_the_same_and_finishes_sooner() -> None:
    image = cost.ImageTimes(cost.PHOTO_12MP, cpu_1t=0.6, cpu_2t=0.75, wall_2t=0.45)
    assert cost.duration_s(image, 1024) == pytest.approx(0.6 * 1769 / 1024)
    assert cost.duration_s(image, 1536) == pytest.approx(0.6 * 1769 / 1536)
    rows = {row.memory_mb: row for row in cost.cost_table([image])}
    assert rows[1024].dollars_per_1000 == pytest.approx(rows[1536].dollars_per_1000, rel=1e-3)
    # Above 1,769 MB two threads run: no faster than on two whole cores, and billed for more memory.
    assert rows[2048].threads == 2 and cost.duration_s(image, 2048) == pytest.approx(0.75 * 1769 / 2048)
    assert cost.duration_s(image, 3008) == pytest.approx(0.45)  # not 0.44: no faster than on two whole cores
    assert rows[3008].dollars_per_1000 > rows[1536].dollars_per_1000
    # Equally cheap: the faster of 1,024 and 1,536 MB is taken.
    chosen = cost.choose(list(rows.values()))
    assert chosen is not None and chosen.memory_mb == 1536


def test_the_latency_goal_rules_out_small_sizes() -> None:
    slow = cost.ImageTimes(cost.PHOTO_12MP, cpu_1t=1.4, cpu_2t=1.6, wall_2t=1.2)
    rows = cost.cost_table([slow, cost.ImageTimes("other.jpg", 0.3, 0.35, 0.2)])
    assert [round(row.latency_12mp_s or 0, 2) for row in rows] == [2.42, 1.61, 1.38, 1.2]
    assert [row.meets_latency for row in rows] == [False, False, True, True]
    chosen = cost.choose(rows)
    # 3,008 MB is faster, but its threads wait on each other (wall-bound): it pays for idle memory.
    assert chosen is not None and chosen.memory_mb == 2048
    assert cost.choose(cost.cost_table([cost.ImageTimes(cost.PHOTO_12MP, 9.0)])) is None


def test_make_bench_prints_the_table_and_keeps_it_in_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    photos = [_photo(cost.PHOTO_12MP, 600, 750, 450), _photo("photo_8mp.jpg", 400, 500, 300, handler=False)]
    summary = summarise(photos, [1, 2], None)
    assert summary["lambda_cost"]["chosen_memory_mb"] == 1536
    assert summary["lambda_cost"]["cpu_s_per_image_1t"] == pytest.approx(0.5)
    print_table(photos, [1, 2], summary, None)
    out = capsys.readouterr().out
    assert "Cost on Lambda" in out and "<- chosen" in out
    chosen_line = next(line for line in out.splitlines() if line.endswith("<- chosen"))
    assert chosen_line.split()[0] == "1536"


def test_the_docs_keep_only_the_latest_block(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text(f"# Performance\n\nprose before\n\n{docs.BEGIN}\nold header\n\n```\nold table\n```\n{docs.END}\n\nprose after\n")
    docs.update(doc, "Run A", "table A")
    docs.update(doc, "Run B", "table B")
    text = doc.read_text()
    assert "Run B" in text and "table B" in text
    assert "old" not in text and "Run A" not in text and "table A" not in text
    assert text.startswith("# Performance\n\nprose before\n") and text.endswith(f"{docs.END}\n\nprose after\n")
    with pytest.raises(docs.MarkersMissing):
        docs.replace_block("no markers here", "h", "t")


def test_the_real_performance_doc_has_the_block() -> None:
    text = (ROOT / "docs" / "performance.md").read_text()
    assert text.count(docs.BEGIN) == 1 and text.count(docs.END) == 1
    docs.replace_block(text, "h", "t")  # make bench can write it
