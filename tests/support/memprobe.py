"""Peak memory of decoding and rendering each named case, one forked child per case.

    python -m tests.support.memprobe gif-2M-frames limit-png-rgba ...

The child makes the file, resets the kernel's peak-RSS counter (VmHWM, via
/proc/self/clear_refs), renders it with the heaviest profile (`classic`: full-size JPEG,
WebP and PNG) on 4 encoder threads, and reports its peak: the file's bytes plus everything
decoding and encoding needed, as a Lambda function would hold them. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

from PIL import Image

from chalicelib.imaging import codec, render
from chalicelib.models import RejectedInput
from chalicelib.presets import CLASSIC
from tests.support import hostile

LIMITS = codec.DecodeLimits(max_pixels=50_000_000, max_frames=1000)
SIDE = 7071  # 7071 x 7071 = 49,999,041 pixels: the largest square under the default limit


def _limit_case(name: str) -> bytes:
    if name == "limit-png-rgba":
        image = Image.linear_gradient("L").resize((SIDE, SIDE)).convert("RGBA")
        image.putalpha(Image.linear_gradient("L").rotate(90).resize((SIDE, SIDE)))
        return hostile.save(image, "PNG", compress_level=1)
    if name == "limit-png-16bit-grey":
        return hostile.save(Image.linear_gradient("L").resize((SIDE, SIDE)).convert("I").point(lambda v: v * 257).convert("I;16"), "PNG")
    if name == "limit-jpeg-cmyk":
        return hostile.save(Image.linear_gradient("L").resize((SIDE, SIDE)).convert("RGB").convert("CMYK"), "JPEG", quality=80)
    raise KeyError(name)


def _peak_mb() -> float:
    with open("/proc/self/status") as status:
        match = re.search(r"VmHWM:\s+(\d+) kB", status.read())
    return round(int(match.group(1)) / 1024, 1) if match else -1.0


def _measure(name: str) -> dict[str, Any]:
    data = _limit_case(name) if name.startswith("limit-") else hostile.case(name)
    expected = "ok" if name.startswith("limit-") else str(hostile.CASES[name][1])
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # reset VmHWM to the current RSS (which includes `data`)
    started = time.perf_counter()
    try:
        render.render(data, CLASSIC, LIMITS, "probe", workers=int(os.environ.get("MEMPROBE_WORKERS", "2")))
        outcome = "ok"
    except RejectedInput as rejection:
        outcome = str(rejection.code)
    return {"outcome": outcome, "expected": expected, "peak_mb": _peak_mb(), "seconds": round(time.perf_counter() - started, 2)}


def main(names: list[str]) -> None:
    results: dict[str, Any] = {}
    for name in names:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: measure one case, report, exit without cleanup
            os.close(read_end)
            try:
                payload = json.dumps(_measure(name))
            except BaseException as exc:  # reported to the parent as a failure
                payload = json.dumps({"outcome": f"crash {type(exc).__name__}: {exc}", "expected": "", "peak_mb": -1})
            os.write(write_end, payload.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            text = pipe.read()
        os.waitpid(pid, 0)
        results[name] = json.loads(text) if text else {"outcome": "child died", "expected": "", "peak_mb": -1}
        print(f"{name}: {results[name]}", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1:])
