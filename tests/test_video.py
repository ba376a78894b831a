"""Frame sampling and decoding on real clips whose frames carry their own index.

Each frame's top half is an 8-bit bar code of its index in 16-pixel black/white blocks (survives H.264
at the default quality), so a test can read back which frame a backend returned; the bottom half is a
colour gradient, so the backends' colour conversion is compared on more than black and white.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from videokr.errors import VideoDecodeError
from videokr.sample.encode import write_clip
from videokr.vision import decode as video

BACKENDS = video.available_backends()
NTSC = Fraction(30000, 1001)
HEIGHT, WIDTH, BITS = 64, 128, 8


def _frame(index: int) -> np.ndarray:
    frame = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            frame[: HEIGHT // 2, bit * 16 : (bit + 1) * 16] = 255
    frame[HEIGHT // 2 :, :, 0] = np.linspace(0, 255, WIDTH, dtype=np.uint8)
    frame[HEIGHT // 2 :, :, 1] = index * 37 % 256
    frame[HEIGHT // 2 :, :, 2] = np.linspace(255, 0, HEIGHT // 2, dtype=np.uint8)[:, None]
    return frame


def _codes(frames: np.ndarray) -> list[int]:
    """Read the bar code back: the middle of each block, thresholded."""
    blocks = frames[:, 8:24].reshape(len(frames), 16, BITS, 16, 3)[:, :, :, 4:12].mean(axis=(1, 3, 4))
    return [int(sum(1 << bit for bit in range(BITS) if row[bit] > 127)) for row in blocks]


def _remux(
    src: Path, dst: Path, fmt: str, *, rotation: int | None = None, options: dict | None = None
) -> Path:
    """Copy the video packets into another container (no re-encoding), optionally with a display rotation."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=fmt, options=options or {}) as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        if rotation is not None:
            copy.set_display_rotation(rotation)
        for packet in inp.demux(stream):
            if packet.dts is not None:
                packet.stream = copy
                out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    ntsc = write_clip(root / "ntsc.mp4", (_frame(i) for i in range(45)), float(NTSC))
    five = write_clip(root / "five.mp4", (_frame(i) for i in range(23)), 5.0)
    return {
        "ntsc": ntsc,
        "five": five,
        "mkv": _remux(ntsc, root / "ntsc.mkv", "matroska"),  # no frame count in the header
        "ts": _remux(ntsc, root / "ntsc.ts", "mpegts"),  # starts at 1.4 s, no header count
        "rot90": _remux(five, root / "rot90.mp4", "mp4", rotation=90),
        "faststart": _remux(ntsc, root / "faststart.mp4", "mp4", options={"movflags": "faststart"}),
    }


# --------------------------------------------------------------------------------------------------
# The index rule (pure)
# --------------------------------------------------------------------------------------------------


def test_rate_mode_takes_interval_centres() -> None:
    # 10 s at 30 fps, 2 fps: 20 samples, one at the centre of each 0.5 s interval
    indices = video.frame_indices(300, 30.0, fps=2.0)
    assert indices.tolist() == [(2 * k + 1) * 300 // 40 for k in range(20)]
    np.testing.assert_allclose(indices / 30.0, 0.25 + 0.5 * np.arange(20), atol=1 / 30)


def test_long_clip_is_capped_and_spread_over_the_whole_clip() -> None:
    total = 600 * 30  # 10 min: 1,200 frames at 2 fps, more than the paper's 128
    indices = video.frame_indices(total, 30.0)
    assert len(indices) == 128
    assert np.all(np.diff(indices) > 0)
    assert indices[0] < total / 128 and indices[-1] >= total - total / 128


def test_clip_shorter_than_one_interval_still_gives_a_frame() -> None:
    assert video.frame_indices(10, 30.0, fps=2.0).tolist() == [5]  # 0.33 s: the middle frame
    assert video.frame_indices(1, 30.0, fps=2.0).tolist() == [0]


def test_rate_above_native_gives_every_frame_once() -> None:
    assert video.frame_indices(23, 5.0, fps=10.0).tolist() == list(range(23))


def test_fixed_count_is_exact_and_repeats_rather_than_returning_fewer() -> None:
    assert video.frame_indices(100, 30.0, num_frames=8).tolist() == [6, 18, 31, 43, 56, 68, 81, 93]
    assert video.frame_indices(100, 30.0, num_frames=8, max_frames=4, fps=0.1).size == 8  # others ignored
    assert video.frame_indices(3, 30.0, num_frames=5).tolist() == [0, 0, 1, 2, 2]


def test_min_frames_and_multiple_of() -> None:
    assert video.frame_indices(10, 30.0, min_frames=4).size == 4  # 0.33 s would give 1
    assert video.frame_indices(2, 30.0, min_frames=4).tolist() == [0, 0, 1, 1]
    assert video.frame_indices(23, 5.0, multiple_of=2).size == 10  # 9.2 → 9 → up to 10
    assert video.frame_indices(23, 5.0, multiple_of=2, max_frames=9).size == 8  # up would pass the cap


@pytest.mark.parametrize("native", [5.0, 24.0, float(NTSC), 60.0])
def test_indices_are_valid_sorted_deterministic_and_counted_by_the_rule(native: float) -> None:
    for total in [1, 2, 3, 7, 30, 31, 599, 4000, 54000]:
        for fps, cap in [(2.0, 128), (0.2, None), (1.0, 16), (100.0, 128)]:
            indices = video.frame_indices(total, native, fps=fps, max_frames=cap)
            expected = min(max(math.floor(total * fps / native + 0.5), 1), total, cap or total)
            assert indices.dtype == np.int64 and indices.size == expected
            assert indices[0] >= 0 and indices[-1] < total and np.all(np.diff(indices) > 0)
            assert np.array_equal(indices, video.frame_indices(total, native, fps=fps, max_frames=cap))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total_frames": 0, "native_fps": 30.0},
        {"total_frames": 10, "native_fps": 0.0},
        {"total_frames": 10, "native_fps": 30.0, "fps": 0.0},
        {"total_frames": 10, "native_fps": 30.0, "max_frames": 0},
        {"total_frames": 10, "native_fps": 30.0, "num_frames": 0},
        {"total_frames": 10, "native_fps": 30.0, "min_frames": 5, "max_frames": 4},
        {"total_frames": 10, "native_fps": 30.0, "multiple_of": 0},
    ],
)
def test_bad_sampling_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        video.frame_indices(**kwargs)


# --------------------------------------------------------------------------------------------------
# Probing and decoding real clips
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clip", "fps", "frames"), [("ntsc", NTSC, 45), ("five", 5, 23), ("mkv", NTSC, 45), ("ts", NTSC, 45)]
)
def test_probe_reports_native_fps_true_count_and_size(
    clips: dict[str, Path], clip: str, fps: Fraction, frames: int
) -> None:
    info = video.probe(clips[clip])
    assert info.fps == pytest.approx(float(fps), rel=1e-9)
    assert info.num_frames == frames
    assert info.duration == pytest.approx(frames / float(fps), rel=1e-9)
    assert (info.width, info.height, info.rotation) == (WIDTH, HEIGHT, 0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("clip", "fps", "frames"), [("ntsc", NTSC, 45), ("five", 5, 23), ("ts", NTSC, 45)])
def test_backend_returns_the_sampled_frames_with_metadata(
    clips: dict[str, Path], backend: str, clip: str, fps: Fraction, frames: int
) -> None:
    sampled = video.sample_frames(clips[clip], backend=backend)
    expected = video.frame_indices(frames, float(fps))
    assert np.array_equal(sampled.indices, expected)
    assert sampled.frames.shape == (len(expected), HEIGHT, WIDTH, 3) and sampled.frames.dtype == np.uint8
    assert _codes(sampled.frames) == expected.tolist()
    metadata = sampled.metadata
    assert metadata.total_num_frames == frames and metadata.fps == pytest.approx(float(fps), rel=1e-9)
    assert metadata.duration == pytest.approx(frames / float(fps), rel=1e-9)
    assert (metadata.width, metadata.height, metadata.video_backend) == (WIDTH, HEIGHT, backend)
    assert metadata.frames_indices == expected.tolist()
    np.testing.assert_allclose(sampled.timestamps, metadata.timestamps, atol=1e-6)  # constant rate


@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_indices_any_order_with_repeats_and_more_frames_than_the_clip(
    clips: dict[str, Path], backend: str
) -> None:
    sampled = video.sample_frames(clips["five"], indices=[7, 0, 7, 22, 3], backend=backend)
    assert _codes(sampled.frames) == [7, 0, 7, 22, 3]
    sampled = video.sample_frames(clips["five"], num_frames=30, backend=backend)
    assert len(sampled.frames) == 30 and _codes(sampled.frames) == sampled.indices.tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_calls_from_threads_do_not_interfere(clips: dict[str, Path], backend: str) -> None:
    jobs = [(clips[name], indices) for name in ("ntsc", "five") for indices in ([1, 2, 3], [20, 10, 0])] * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda job: video.sample_frames(job[0], indices=job[1], backend=backend), jobs)
        assert [_codes(result.frames) for result in results] == [indices for _, indices in jobs]


def test_backends_agree_pixel_for_pixel_within_tolerance(clips: dict[str, Path]) -> None:
    if len(BACKENDS) < 2:
        pytest.skip("needs two importable backends")
    every = list(range(45))
    decoded = {
        name: video.sample_frames(clips["ntsc"], indices=every, backend=name).frames for name in BACKENDS
    }
    reference = decoded[BACKENDS[0]].astype(np.int16)
    for name, frames in decoded.items():
        assert _codes(frames) == every
        assert np.abs(frames.astype(np.int16) - reference).max() <= video.COLOUR_TOLERANCE, name


@pytest.mark.parametrize("backend", BACKENDS)
def test_display_rotation_is_applied_by_every_backend(clips: dict[str, Path], backend: str) -> None:
    sampled = video.sample_frames(clips["rot90"], indices=[3, 9], backend=backend)
    assert sampled.frames.shape == (2, WIDTH, HEIGHT, 3)
    assert (sampled.metadata.width, sampled.metadata.height) == (HEIGHT, WIDTH)
    assert _codes(np.rot90(sampled.frames, -1, axes=(1, 2))) == [3, 9]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("clip", "size"), [("ntsc", None), ("ntsc", (32, 64)), ("rot90", None)])
def test_channels_first_is_the_same_frames_in_the_processors_layout(
    clips: dict[str, Path], backend: str, clip: str, size: tuple[int, int] | None
) -> None:
    """The loader asks for T×3×H×W; each backend fills that layout itself, so check it frame for frame
    (repeats and order included) against the default layout."""
    indices = [9, 2, 9, 4]
    packed = video.sample_frames(clips[clip], indices=indices, backend=backend, size=size).frames
    planar = video.sample_frames(
        clips[clip], indices=indices, backend=backend, size=size, channels_first=True
    ).frames
    assert planar.flags.c_contiguous
    assert np.array_equal(planar, packed.transpose(0, 3, 1, 2))


@pytest.mark.skipif("torchcodec" not in BACKENDS, reason="GPU decoding is torchcodec's")
def test_a_decoding_device_is_configuration_checked_before_any_clip_is_read(clips: dict[str, Path]) -> None:
    """A wrong device raises a plain error (a collator would take a `VideoDecodeError` for one bad clip
    and skip the row); on a machine with CUDA the GPU's frames match the CPU's."""
    import torch

    with pytest.raises(ValueError, match="needs the torchcodec backend, not 'pyav'"):
        video.sample_frames(clips["ntsc"], backend="pyav", device="cuda")
    with pytest.raises(RuntimeError, match="only 'cpu' and CUDA devices"):
        video.sample_frames(clips["ntsc"], device="mps")
    cpu = video.sample_frames(clips["ntsc"], indices=[3, 30], channels_first=True, backend="torchcodec")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device is visible") as raised:
            video.sample_frames(clips["ntsc"], device="cuda")
        assert not isinstance(raised.value, VideoDecodeError)
        return
    gpu = video.sample_frames(clips["ntsc"], indices=[3, 30], channels_first=True, device="cuda")
    assert gpu.backend == "torchcodec" and gpu.frames.shape == cpu.frames.shape
    assert _codes(gpu.frames.transpose(0, 2, 3, 1)) == [3, 30]
    error = np.mean((gpu.frames.astype(np.float64) - cpu.frames) ** 2)
    assert 10 * np.log10(255**2 / max(error, 1e-9)) >= 35


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs the ffmpeg command to cut with an edit list"
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_edit_list_clip_counts_only_displayed_frames(
    clips: dict[str, Path], backend: str, tmp_path: Path
) -> None:
    # A stream copy cut between keyframes keeps the packets from the keyframe before the cut and hides
    # them with an edit list: the header counts them, no decoder shows them.
    cut = tmp_path / "cut.mp4"
    command = ["ffmpeg", "-v", "error", "-ss", "0.5", "-i", str(clips["ntsc"]), "-c", "copy", str(cut)]
    subprocess.run(command, check=True)
    with av.open(str(cut)) as container:
        header = container.streams.video[0].frames
    info = video.probe(cut)
    assert info.num_frames < header
    shown = list(range(info.num_frames))
    if backend == "decord":
        with pytest.raises(VideoDecodeError, match="edit list") as caught:
            video.sample_frames(cut, indices=shown, backend=backend)
        assert cut.name in str(caught.value)
        return
    codes = _codes(video.sample_frames(cut, indices=shown, backend=backend).frames)
    assert codes == list(range(codes[0], codes[0] + info.num_frames)) and codes[-1] == 44


def test_metadata_lets_a_qwen_processor_place_frames_in_time(clips: dict[str, Path]) -> None:
    from transformers import Qwen2VLVideoProcessor

    sampled = video.sample_frames(clips["five"])  # 23 frames at 5 fps, 4.6 s: 9 frames at 2 fps
    assert len(sampled.frames) == 9
    out = Qwen2VLVideoProcessor()(
        videos=[sampled.frames],
        video_metadata=[sampled.metadata],
        do_sample_frames=False,
        return_metadata=True,
        return_tensors="pt",
    )
    assert out["video_grid_thw"][0, 0].item() == 5  # 9 frames in temporal pairs, the last one padded
    (metadata,) = out["video_metadata"]
    assert metadata.sampled_fps == pytest.approx(9 / 23 * 5.0)
    assert metadata.timestamps == pytest.approx(sampled.timestamps.tolist())


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        _mux_silence(out)
    return path


def _empty_video_track(path: Path) -> Path:
    """A Matroska file with a video track that has no frames (and audio, so the file is valid)."""
    with av.open(str(path), "w", format="matroska") as out:
        picture = out.add_stream("libx264", rate=25)
        picture.width = picture.height = 64
        picture.pix_fmt = "yuv420p"
        _mux_silence(out)
    return path


def _mux_silence(out: av.container.OutputContainer) -> None:
    stream = out.add_stream("aac", rate=16000)
    silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    silence.sample_rate = 16000
    for packet in [*stream.encode(silence), *stream.encode(None)]:
        out.mux(packet)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def _cut_after_frame(src: Path, dst: Path, frame: int) -> Path:
    """Truncate exactly where a frame's data ends: every packet left reads cleanly, only the index knows."""
    with av.open(str(src)) as container:
        entry = container.streams.video[0].index_entries[frame]
    return _write(dst, src.read_bytes()[: entry.pos + entry.size])


def _scrambled_middle(src: Path, dst: Path) -> Path:
    data = bytearray(src.read_bytes())
    start, stop = len(data) * 2 // 10, len(data) * 5 // 10  # frame data (the index is at the end)
    data[start:stop] = np.random.default_rng(0).integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    dst.write_bytes(bytes(data))
    return dst


BAD_INPUTS = {
    "missing": lambda clips, tmp: tmp / "missing.mp4",
    "directory": lambda clips, tmp: tmp,
    "zero-byte": lambda clips, tmp: _write(tmp / "empty.mp4", b""),
    "garbage": lambda clips, tmp: _write(tmp / "noise.mp4", os.urandom(4096)),
    "no-video-stream": lambda clips, tmp: _audio_only(tmp / "audio.mp4"),
    "zero-frames": lambda clips, tmp: _empty_video_track(tmp / "empty-track.mkv"),
    "truncated": lambda clips, tmp: _cut(clips["ntsc"], tmp / "truncated.mp4", 0.6),
    "truncated-faststart": lambda clips, tmp: _cut(clips["faststart"], tmp / "truncated-fs.mp4", 0.6),
    "truncated-at-frame-end": lambda clips, tmp: _cut_after_frame(
        clips["faststart"], tmp / "cut-at-20.mp4", 20
    ),
    "corrupt-frames": lambda clips, tmp: _scrambled_middle(clips["ntsc"], tmp / "scrambled.mp4"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_naming_the_file(
    clips: dict[str, Path], tmp_path: Path, case: str, backend: str
) -> None:
    path = BAD_INPUTS[case](clips, tmp_path)
    with pytest.raises(VideoDecodeError) as caught:
        video.sample_frames(
            path, indices=list(range(45)) if case == "corrupt-frames" else None, backend=backend
        )
    assert path.name in str(caught.value)
    if case == "corrupt-frames":  # only decoding can find it, so the backend must be named
        assert f"backend {backend}" in str(caught.value)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("indices", [[0, 45], [-1], [3, 100]])
def test_out_of_range_indices_raise(clips: dict[str, Path], backend: str, indices: list[int]) -> None:
    with pytest.raises(VideoDecodeError, match="out of range") as caught:
        video.sample_frames(clips["ntsc"], indices=indices, backend=backend)
    assert "ntsc.mp4" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Choosing a backend
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def fresh_import_cache():
    video._import_error.cache_clear()
    yield
    video._import_error.cache_clear()


def test_unknown_backend_is_an_error_never_a_fallback(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="unknown video backend 'opencv'"):
        video.sample_frames(clips["ntsc"], backend="opencv")
    monkeypatch.setenv(video.BACKEND_ENV, "nope")
    with pytest.raises(ValueError, match=video.BACKEND_ENV):
        video.sample_frames(clips["ntsc"])


def test_environment_variable_chooses_and_argument_wins(
    clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(video.BACKEND_ENV, raising=False)
    assert video.resolve_backend() == BACKENDS[0]
    monkeypatch.setenv(video.BACKEND_ENV, "av")  # PyAV's import name is accepted too
    assert video.sample_frames(clips["five"]).backend == "pyav"
    other = next((name for name in BACKENDS if name != "pyav"), None)
    if other is not None:
        assert video.sample_frames(clips["five"], backend=other).backend == other


@pytest.mark.usefixtures("fresh_import_cache")
def test_uninstalled_backend_named_explicitly_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decord", None)  # what a missing package looks like to import
    with pytest.raises(ImportError, match="'decord'"):
        video.resolve_backend("decord")
    assert "decord" not in video.available_backends()
