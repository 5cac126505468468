"""bench/formats.py's measuring stick: SSIM says 1 for the same image and less for a worse one."""

from __future__ import annotations

import pytest
from PIL import Image, ImageFilter

from tests.support import hostile

pytest.importorskip("numpy", reason="numpy is a bench dependency (bench/requirements.txt)")


def test_ssim_ranks_a_blurred_copy_below_the_original() -> None:
    from bench.formats import ssim

    photo = hostile.photo((96, 72))
    assert ssim(photo, photo) == pytest.approx(1.0)
    slightly, badly = (photo.filter(ImageFilter.GaussianBlur(radius)) for radius in (0.6, 2.0))
    assert 1.0 > ssim(photo, slightly) > ssim(photo, badly)
    assert ssim(photo, Image.new("RGB", photo.size, (128, 128, 128))) < 0.2
