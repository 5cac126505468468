"""`make measure-local`'s CPU accounting: the bound a batch is compared with, read from /proc."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools import stack_cpu
from tools.measure_local_stack import Throughput


def test_the_bound_is_cores_times_60_over_the_cpu_one_image_costs() -> None:
    # 10 images cost the stack 20 CPU s on a 2-core machine that had 40 CPU s in all, 30 busy.
    cpu = stack_cpu.CpuSample({"workers": 16.0, "emulator": 3.0, "stack": 1.0}, machine_busy=30.0, machine_total=40.0)
    batch = Throughput(10, per_minute=30.0, cpu=cpu, cores=2, summary="batch done: ...", load_before=1.0, load_after=1.0)
    assert batch.cpu_per_image == 2.0
    assert batch.bound == 60.0  # 2 cores x 60 / 2 CPU s per image
    # Other work took 10 CPU s of the 40: the stack used 20 of the 30 left to it.
    assert batch.free_share == pytest.approx(2 / 3)
    report = "\n".join(batch.report())
    assert "CPU bound 60.0 images/min" in report and "50% of the bound" in report and "workers 16.0" in report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_process_trees_cpu_time_includes_its_children() -> None:
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    # A parent that runs a busy child to the end (and reaps it), then idles.
    script = f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {busy!r}]); print('done', flush=True); time.sleep(30)"
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "done\n"
        sample = stack_cpu.sample(parent.pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()  # type: ignore[union-attr]
    assert sample.total >= 0.3  # the child's 0.3 s, counted in its parent once reaped
    assert sample.machine_total >= sample.machine_busy > 0
