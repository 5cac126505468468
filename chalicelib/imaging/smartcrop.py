"""Where a `cover` crop should sit: the window with the most detail, colour and skin.

The approach of smartcrop.js and libvips' `attention` crop, kept small: on a copy at most
WORK_SIDE px a side, each pixel scores edge detail (a Laplacian), saturation and skin-tone
likelihood (the YCbCr skin box); the scores are averaged into one profile along the axis the
window can slide on (a box resize does it in C), and the window with the highest sum wins, the centre
favoured a little. Near-ties go to the window nearest the centre, so a centred subject and a
flat image stay centred. A few milliseconds on a thumbnail-sized image; pure Pillow.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageDraw, ImageFilter

WORK_SIDE = 96
EDGE_WEIGHT, SATURATION_WEIGHT, SKIN_WEIGHT = 1.0, 0.3, 0.6
CENTRE_BIAS = 0.15
TIE = 0.97  # windows scoring within 3% of the best count as ties: the most central one wins
# YCbCr box commonly used for skin (Chai & Ngan): Cb 77..127, Cr 133..173.
_CB = [255 if 77 <= v <= 127 else 0 for v in range(256)]
_CR = [255 if 133 <= v <= 173 else 0 for v in range(256)]
CENTRE = (0.5, 0.5)


def _score(image: Image.Image) -> Image.Image:
    """Per-pixel interest, 0..255 (mode L)."""
    grey = image.convert("L")
    edges = grey.filter(ImageFilter.FIND_EDGES)
    # Pillow leaves a kernel's 1 px border unfiltered (the source pixels): zero it.
    ImageDraw.Draw(edges).rectangle((0, 0, edges.size[0] - 1, edges.size[1] - 1), outline=0)
    saturation = image.convert("HSV").getchannel("S")
    _, cb, cr = image.convert("YCbCr").split()
    skin = ImageChops.multiply(cb.point(_CB), cr.point(_CR))
    total = ImageChops.add(edges, saturation.point(lambda v: v * SATURATION_WEIGHT), scale=1.0)
    return ImageChops.add(total.point(lambda v: v * EDGE_WEIGHT), skin.point(lambda v: v * SKIN_WEIGHT), scale=1.0)


def _best_start(profile: list[int], window: int) -> int:
    """Start of the `window`-long run of `profile` with the highest sum, the centre favoured a
    little (CENTRE_BIAS at the far ends): the crop moves for a subject, not for a texture."""
    sums = [sum(profile[:window])]
    for i in range(window, len(profile)):
        sums.append(sums[-1] + profile[i] - profile[i - window])
    middle = (len(sums) - 1) / 2
    scores = [s * (1 - CENTRE_BIAS * ((i - middle) / middle) ** 2) for i, s in enumerate(sums)]
    best = max(scores)
    candidates = [i for i, s in enumerate(scores) if s >= best * TIE]
    return min(candidates, key=lambda i: (abs(i - middle), i))


def centering(image: Image.Image, size: tuple[int, int]) -> tuple[float, float]:
    """ImageOps.fit-style centering (0..1 on each axis) for a crop of `size`'s aspect ratio."""
    width, height = image.size
    if width < 2 or height < 2 or size[0] < 1 or size[1] < 1:
        return CENTRE
    horizontal = width * size[1] > height * size[0]  # wider than the crop: the window slides sideways
    scale = min(1.0, WORK_SIDE / max(width, height))
    work_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    work = image.convert("RGB").resize(work_size, Image.Resampling.BOX) if work_size != image.size else image.convert("RGB")
    length = work_size[0] if horizontal else work_size[1]
    window = round(work_size[1] * size[0] / size[1]) if horizontal else round(work_size[0] * size[1] / size[0])
    if length - window <= 1 or window < 1:
        return CENTRE  # no room to move (a pixel of slack either way is the centre)
    # One score per column (or row): a box resize to 1 px across averages the other axis.
    profile = list(_score(work).resize((length, 1) if horizontal else (1, length), Image.Resampling.BOX).tobytes())
    position = _best_start(profile, window) / (length - window)
    return (position, 0.5) if horizontal else (0.5, position)
