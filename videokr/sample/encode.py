"""Write frames to an H.264 MP4 with PyAV, the one encoder the sample corpus and the tests share.

Clips are encoded with a short GOP and no B-frames so every backend (decord, torchcodec, PyAV) can seek
them exactly; `yuv420p` keeps them playable everywhere. Widths and heights must be even.

Output is repeatable: the same frames give the same bytes. libx264's constant-quality mode (CRF) did
not guarantee that here — re-encoding the sample corpus changed the bytes, and sometimes the decoded
pixels, of a few clips even on one thread — while a constant quantiser on one thread gave identical
bytes in every run. A seeded corpus must be byte-identical, and tests compare pixels across runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videokr.atomic import atomic_path


def write_clip(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    qp: int = 23,
    gop: int = 12,
) -> Path:
    """Encode `frames` (each H×W×3 uint8 RGB) to `path` at `fps`; returns the path.

    The file is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written clip that looks finished.
    """
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"{path}: frames must be H×W×3 uint8, got {frame.shape} {frame.dtype}")
            if stream is None:
                height, width = frame.shape[:2]
                if height % 2 or width % 2:
                    raise ValueError(f"{path}: width and height must be even, got {width}×{height}")
                stream = container.add_stream("libx264", rate=rate)
                stream.width, stream.height = width, height
                stream.pix_fmt = "yuv420p"
                stream.codec_context.thread_count = 1
                options = {"qp": str(qp), "g": str(gop), "bf": "0", "preset": "veryfast", "threads": "1"}
                stream.options = options
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    return path
