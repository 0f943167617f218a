"""Real image codecs (issue 13): round trips, rate axes, errors, and the VVenC wrapper's plumbing.

Every codec available on this machine is run for real on small synthetic frames; one that is not (the ``vvc``
codec needs a VVenC binary, named here by ``PRIVBENCH_VVENC`` and optionally ``PRIVBENCH_VVDEC``) is skipped
with the reason. The ``vvc`` plumbing tests use fake encoder/decoder scripts written by the test: they exercise
the wrapper's argument lists, files and bit counting, not VVC.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import privbench.codecs  # noqa: F401  (registrations)
from privbench.cli import cli
from privbench.codecs.jpeg2000 import strip_comments
from privbench.errors import PrivbenchError
from privbench.registry import CODECS

VVENC = os.environ.get("PRIVBENCH_VVENC", "")
VVDEC = os.environ.get("PRIVBENCH_VVDEC", "")

#: (id, codec name, params, qualities from best to worst spanning the range)
CASES = [
    ("jpeg", "jpeg", {}, [90, 60, 30, 10]),
    ("jpeg2000", "jpeg2000", {}, [50, 40, 30, 20]),
    ("webp", "webp", {}, [95, 60, 30, 5]),
    ("avif", "avif", {}, [95, 70, 40, 10]),
    ("hevc-ffmpeg", "hevc", {"backend": "ffmpeg"}, [15, 25, 35, 45]),
    ("hevc-pillow-heif", "hevc", {"backend": "pillow-heif"}, [15, 25, 35, 45]),
    ("vvc", "vvc", {"encoder": VVENC, "decoder": VVDEC}, [22, 32, 42, 52]),
]


def _blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Three passes of a separable box blur (≈ Gaussian), reflecting at the edges."""
    for _ in range(3):
        for axis in (0, 1):
            padded = np.pad(a, [(radius, radius) if i == axis else (0, 0) for i in range(a.ndim)], mode="reflect")
            c = np.cumsum(padded, axis=axis)
            n = a.shape[axis]
            a = (np.take(c, range(2 * radius, 2 * radius + n), axis=axis)
                 - np.take(c, range(0, n), axis=axis)) / (2 * radius)
    return a


def gray_frame(height: int = 64, width: int = 128, seed: int = 0) -> np.ndarray:
    """2×4 tiles of blurred noise of different smoothness, some with fine grain: a feature-frame stand-in."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width))
    th, tw = max(1, height // 2), max(1, width // 4)
    for i in range(2):
        for j in range(4):
            tile = rng.standard_normal((th, tw))
            tile = _blur(tile, 1 + (i * 4 + j) % 4) if min(th, tw) > 8 else tile
            tile = (tile - tile.mean()) / (tile.std() + 1e-9)
            grain = 10 * rng.standard_normal((th, tw)) * (j % 2)
            out[i * th:(i + 1) * th, j * tw:(j + 1) * tw] = 60 + 40 * tile + grain
    return np.clip(out, 0, 255).astype(np.uint8)


def rgb_frame(size: int = 32, seed: int = 1) -> np.ndarray:
    """A 32×32 RGB image: colour gradients, smooth noise texture and a saturated rectangle."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    texture = np.stack([_blur(rng.standard_normal((size, size)), 2) for _ in range(3)], axis=-1)
    image = np.stack([200 * xx + 20, 180 * yy + 30, 120 + 80 * np.sin(6 * xx)], axis=-1) + 25 * texture / texture.std()
    image[size // 4:size * 5 // 8, size // 3:size * 3 // 4] = (230, 40, 60)
    return np.clip(image, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def available(name: str, params: dict):
    """The codec, or skip with the reason it cannot run here."""
    codec = CODECS.create(name, **params)
    try:
        codec.check_available()
    except PrivbenchError as exc:
        if name == "vvc":
            pytest.skip("vvc: no VVenC binary on this machine (set PRIVBENCH_VVENC=PATH to test it)")
        pytest.skip(f"{name}: {exc}")
    return codec


@pytest.fixture(scope="module")
def gray() -> np.ndarray:
    return gray_frame()


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return rgb_frame()


# --- every available codec, for real -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_roundtrip_keeps_shape_and_dtype(name, params, gray, rgb):
    codec = available(name, params)
    frames = [gray, rgb, gray_frame(17, 30), gray_frame(64, 128).T.copy(), rgb_frame(7)[:5, :3].copy(),
              np.full((1, 1), 77, np.uint8)]
    for frame in frames:
        if frame.ndim == 3 and name == "vvc" and not codec.full_app:
            continue  # vvencapp codes 4:2:0 only: RGB is refused (tested with the fake tools below)
        decoded, bits, encode_s, decode_s = codec.roundtrip(frame)
        assert decoded.shape == frame.shape and decoded.dtype == np.uint8
        assert bits > 0 and bits % 8 == 0 and encode_s >= 0 and decode_s >= 0
        assert psnr(decoded, frame) > 15, (name, frame.shape)  # WebP 4:2:0 on a 5×3 colour patch: ~17 dB


@pytest.mark.parametrize(("name", "params", "qualities"), [(c[1], c[2], c[3]) for c in CASES], ids=[c[0] for c in CASES])
def test_bits_and_psnr_fall_with_quality(name, params, qualities, gray, rgb):
    cls = available(name, params)
    for frame in (gray, rgb):
        if frame.ndim == 3 and name == "vvc" and not cls.full_app:
            continue
        rows = []
        for quality in qualities:  # best first
            codec = CODECS.create(name, **params, **{cls.quality_param: quality})
            decoded, bits, _, _ = codec.roundtrip(frame)
            rows.append((bits, psnr(decoded, frame)))
        for (bits_hi, psnr_hi), (bits_lo, psnr_lo) in zip(rows, rows[1:], strict=False):
            assert bits_lo < bits_hi, (name, frame.shape, rows)
            assert psnr_lo < psnr_hi, (name, frame.shape, rows)


def test_quality_direction_is_declared():
    for name in ("jpeg", "jpeg2000", "webp", "avif"):
        assert CODECS.get(name).higher_is_better
    for name in ("hevc", "vvc"):
        assert not CODECS.get(name).higher_is_better and CODECS.get(name).quality_param == "qp"


def test_list_codecs_shows_each():
    out = CliRunner().invoke(cli, ["list", "codecs"])
    assert out.exit_code == 0, out.output
    for name in ("jpeg", "jpeg2000", "webp", "avif", "hevc", "vvc"):
        assert f"  {name} [quality = " in out.output
    assert "qp (int [0, 51]" in out.output and "qp (int [0, 63]" in out.output


@pytest.mark.parametrize("name", ["jpeg", "jpeg2000", "webp", "avif", "hevc", "vvc"])
def test_quality_out_of_range_names_the_parameter(name):
    cls = CODECS.get(name)
    param = next(p for p in cls.params if p.name == cls.quality_param)
    for bad in (param.high + 1, param.low - 1):
        with pytest.raises(PrivbenchError, match=f"parameter '{cls.quality_param}'"):
            CODECS.create(name, **{cls.quality_param: bad})


def test_unknown_codec_is_one_clear_error():
    with pytest.raises(PrivbenchError, match=r"unknown codec 'h266' \(choose from: .*hevc.*\)"):
        CODECS.create("h266")


def test_bad_frames_are_refused():
    codec = CODECS.create("jpeg")
    for frame in (np.zeros((8, 8), np.float32), np.zeros((8, 8, 4), np.uint8), np.zeros(8, np.uint8)):
        with pytest.raises(PrivbenchError, match="codes uint8"):
            codec.encode(frame)


# --- codec specifics -----------------------------------------------------------------------------------------


def test_jpeg2000_codestream_is_raw_without_comment(gray):
    data = CODECS.create("jpeg2000").encode(gray)
    assert data[:2] == b"\xff\x4f" and b"OpenJPEG" not in data  # SOC first (no JP2 box), COM removed
    assert strip_comments(b"not a codestream") == b"not a codestream"


def test_gray_coded_as_rgb_returns_the_luma(gray):
    codec = CODECS.create("webp", quality=90)
    assert not codec.native_gray
    decoded, _, _, _ = codec.roundtrip(gray)
    assert decoded.ndim == 2 and psnr(decoded, gray) > 30


def test_hevc_ffmpeg_honours_the_qp_and_codes_gray_as_400(gray):
    codec = available("hevc", {"backend": "ffmpeg", "qp": 37})
    data, log = codec._ffmpeg_encode(gray, log_level="info")
    assert "Avg QP:37.00" in log  # x265's own report: the intra picture is coded at exactly the QP asked
    assert "Unknown option" not in log  # ffmpeg only warns about an x265 option it does not know: none here
    assert b"x265 (build" not in data  # info=0: no version/options SEI string
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-hide_banner", "-loglevel", "error", "-f", "hevc", "-show_entries",
                                "stream=pix_fmt", "-of", "csv=p=0", "pipe:0"], input=data, capture_output=True, check=False)
        assert probe.stdout.decode().strip() == "gray"


def _nal(nal_type: int, payload: bytes, long_start: bool = False) -> bytes:
    """One Annex-B NAL unit: start code, 2-byte header (layer 0, temporal id 0), payload."""
    return (b"\x00" if long_start else b"") + b"\x00\x00\x01" + bytes([nal_type << 1, 0x01]) + payload


def test_hevc_access_unit_parser_on_a_hand_made_stream():
    from privbench.codecs.hevc import split_access_units

    vps, sps, pps = _nal(32, b"\x0c\x01", True), _nal(33, b"\x01\x01", True), _nal(34, b"\xc1\x73", True)
    first, second = b"\xaf\x12\x00\x00\x03\x01", b"\x40\x34"  # first_slice_segment_in_pic_flag 1, then 0
    units = [
        vps + sps + pps + _nal(20, first) + _nal(20, second) + _nal(40, b"\x05\x02"),  # 2 slices, suffix SEI
        _nal(1, b"\x80\x99"),  # a slice with no parameter sets before it: the flag starts the picture
        _nal(35, b"\x50", True) + _nal(39, b"\x01\x02") + _nal(21, b"\xa0\x01"),  # AUD, prefix SEI, CRA
        vps + sps + pps + _nal(19, b"\x80") + _nal(36, b""),  # end of sequence stays with its picture
    ]
    stream = b"".join(units)
    assert split_access_units(stream) == units
    assert split_access_units(units[0]) == [units[0]]
    for bad in (b"", b"\x40\x01\x0c", vps + sps, units[1] + vps + sps, b"\x00\x00\x01\x40"):
        with pytest.raises(PrivbenchError, match="codec 'hevc'"):
            split_access_units(bad)


def _odd_rgb(seed: int) -> np.ndarray:
    return np.ascontiguousarray(rgb_frame(32, seed)[:30, :17])


#: x265 (``DPB::prepareEncode``) sets slice_loop_filter_across_slices_enabled_flag to bit (POC % 31) of this
SLFASE_CONSTANT = 0x5F4E4A53


@pytest.mark.parametrize("kind", ["gray 64x128", "rgb 32x32", "gray 17x30", "rgb 30x17"])
def test_hevc_ffmpeg_batch_codes_each_picture_as_alone(kind):
    """One stream for the batch: every access unit decodes to the single-frame path's pixels and costs its bits."""
    from privbench.codecs.base import Codec
    from privbench.codecs.hevc import split_access_units

    codec = available("hevc", {"backend": "ffmpeg", "qp": 30})
    make = {"gray 64x128": lambda s: gray_frame(seed=s), "rgb 32x32": lambda s: rgb_frame(seed=s),
            "gray 17x30": lambda s: gray_frame(17, 30, seed=s), "rgb 30x17": _odd_rgb}[kind]
    frames = [make(seed) for seed in range(6)]
    assert len({frame.tobytes() for frame in frames}) == 6
    batch = codec.roundtrip_batch(frames)
    stream, units, _ = codec._ffmpeg_encode_batch(frames)
    assert b"".join(units) == stream and [8 * len(u) for u in units] == [r[1] for r in batch]
    for i, (frame, unit, (decoded, bits, encode_s, decode_s)) in enumerate(zip(frames, units, batch, strict=True)):
        alone = codec.encode(frame)  # a one-picture stream, from its own ffmpeg process
        assert np.array_equal(decoded, codec.decode(alone, frame.shape))  # pixels: bit-exact
        assert bits == 8 * len(alone)  # bits: exact
        assert split_access_units(unit) == [unit]  # each picture: VPS, SPS, PPS, one IDR slice
        starts = [j for j in range(len(unit) - 3) if unit[j:j + 3] == b"\x00\x00\x01"]
        assert [(unit[j + 3] >> 1) & 0x3F for j in starts] == [32, 33, 34, 20]
        # the bytes are those of the picture alone but for x265's slice_loop_filter_across_slices_enabled_flag,
        # drawn from the POC (0 alone, i in the batch): one bit, of no effect with one slice per picture
        flipped = sum(bin(a ^ b).count("1") for a, b in zip(unit, alone, strict=True))
        assert flipped == (0 if SLFASE_CONSTANT >> (i % 31) & 1 else 1), i
        assert encode_s == batch[0][2] > 0 and decode_s == batch[0][3] > 0  # the calls' times, shared equally
    one = codec.roundtrip_batch(frames[:1])[0]
    for reference in (codec.roundtrip(frames[0]), Codec.roundtrip(codec, frames[0])):  # batch of 1 == single
        assert np.array_equal(one[0], reference[0]) and one[1] == reference[1] == batch[0][1]


def test_hevc_batch_refuses_mixed_shapes_and_keeps_pillow_heif_per_frame(gray, rgb):
    codec = available("hevc", {"backend": "ffmpeg"})
    with pytest.raises(PrivbenchError, match="frames of one shape"):
        codec.roundtrip_batch([gray, gray[:, :64].copy()])
    assert codec.roundtrip_batch([]) == []
    heif = available("hevc", {"backend": "pillow-heif"})
    for (a, bits_a, _, _), frame in zip(heif.roundtrip_batch([rgb, rgb[::-1].copy()]), (rgb, rgb[::-1].copy()), strict=True):
        b, bits_b, _, _ = heif.roundtrip(frame)
        assert np.array_equal(a, b) and bits_a == bits_b


def test_hevc_backends_agree_at_equal_qp(gray, rgb):
    """pillow-heif's QP forcing (enc_params x265:qp, ipratio=1) works: same QP, same distortion as ffmpeg."""
    ffmpeg = available("hevc", {"backend": "ffmpeg", "qp": 30})
    heif = available("hevc", {"backend": "pillow-heif", "qp": 30})
    for frame in (gray, rgb):
        a, bits_ffmpeg, _, _ = ffmpeg.roundtrip(frame)
        b, bits_heif, _, _ = heif.roundtrip(frame)
        assert abs(psnr(a, frame) - psnr(b, frame)) < 0.5
        assert bits_heif > bits_ffmpeg  # the HEIF container and libheif's 64×64 padding cost bits


def test_hevc_without_ffmpeg_says_what_to_install(monkeypatch):
    import privbench.codecs.hevc as hevc

    monkeypatch.setattr(hevc.shutil, "which", lambda name: None)
    codec = CODECS.create("hevc")
    with pytest.raises(PrivbenchError, match=r"apt-get install ffmpeg") as info:
        codec.check_available()
    assert "\n" not in str(info.value)
    with pytest.raises(PrivbenchError, match=r"apt-get install ffmpeg"):
        codec.encode(np.zeros((16, 16), np.uint8))


def test_yuv444_conversion_round_trips_closely(rgb):
    from privbench.codecs.hevc import rgb_to_yuv444, yuv444_to_rgb

    yuv = rgb_to_yuv444(rgb)
    assert yuv.shape == (3, 32, 32) and yuv.dtype == np.uint8
    assert psnr(yuv444_to_rgb(yuv), rgb) > 45
    gray = np.full((2, 2, 3), 100, np.uint8)
    assert np.array_equal(rgb_to_yuv444(gray)[1:], np.full((2, 2, 2), 128, np.uint8))  # neutral chroma


# --- vvc: missing binary, and the wrapper's plumbing with fake tools -----------------------------------------


def test_vvc_needs_an_encoder_path():
    with pytest.raises(PrivbenchError) as info:
        CODECS.create("vvc").check_available()
    assert str(info.value) == "codec 'vvc' needs encoder=PATH (vvencFFapp from VVenC; no registry here ships it)"


def test_vvc_missing_binary_is_one_clear_line():
    codec = CODECS.create("vvc", encoder="/nonexistent/vvencFFapp")
    with pytest.raises(PrivbenchError, match=r"encoder=/nonexistent/vvencFFapp is not an executable file") as info:
        codec.encode(np.zeros((8, 8), np.uint8))
    assert "\n" not in str(info.value)


FAKE_TOOL = """#!{python}
# A fake {role} for privbench's tests: it logs its arguments and copies its input file to its outputs.
import json, shutil, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
def value(*names):
    for name in names:
        if name in args:
            return args[args.index(name) + 1]
    return None
if {fail!r}:
    sys.stderr.write("starting\\nerror: unknown option --bogus\\n")
    sys.exit(3)
if "{role}" == "decoder":
    shutil.copyfile(value("-b"), value("-o"))
else:
    source = value("-i", "--input")
    shutil.copyfile(source, value("-b", "--output"))
    if value("-o"):
        shutil.copyfile(source, value("-o"))
"""


def fake_tool(folder: Path, name: str, role: str, fail: bool = False) -> tuple[Path, Path]:
    path, log = folder / name, folder / f"{name}.log"
    path.write_text(FAKE_TOOL.format(python=sys.executable, role=role, log=str(log), fail=fail))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path, log


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch) -> Path:
    """tempfile's folder for the test, to check that the wrapper leaves nothing behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_vvc_plumbing_vvencffapp_with_reconstruction(tmp_path, private_tmp, gray, rgb):
    """Plumbing, not VVC: the fake vvencFFapp copies the YUV it is given to the bitstream and the reconstruction."""
    import json

    encoder, log = fake_tool(tmp_path, "vvencFFapp", "encoder")
    codec = CODECS.create("vvc", encoder=str(encoder), qp=37, preset="fast")
    codec.check_available()
    odd = gray_frame(17, 30)
    decoded, bits, _, _ = codec.roundtrip(odd)
    assert np.array_equal(decoded, odd)
    assert bits == 8 * 24 * 32  # the 8-bit 4:0:0 picture, padded to multiples of 8
    args = json.loads(log.read_text().splitlines()[-1])
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["-q"] == "37" and pairs["--InputChromaFormat"] == "400" and pairs["--preset"] == "fast"
    assert (pairs["--SourceWidth"], pairs["--SourceHeight"]) == ("32", "24") and pairs["-f"] == "1"
    assert pairs["--PerceptQPA"] == "0" and pairs["--InternalBitDepth"] == "8"

    decoded, bits, _, _ = codec.roundtrip(rgb)
    assert bits == 8 * 3 * 32 * 32 and psnr(decoded, rgb) > 45  # yuv444 BT.709 full range and back
    assert json.loads(log.read_text().splitlines()[-1])[args.index("--InputChromaFormat") + 1] == "444"
    with pytest.raises(PrivbenchError, match="decodes only bitstreams it encoded"):
        codec.decode(b"\x00\x00\x01 never encoded", (8, 8))
    assert list(private_tmp.iterdir()) == []


def test_vvc_plumbing_vvencapp_with_decoder(tmp_path, private_tmp, gray, rgb):
    """Plumbing, not VVC: fake vvencapp (--input → --output) and fake vvdecapp (-b → -o)."""
    import json

    encoder, encoder_log = fake_tool(tmp_path, "vvencapp", "encoder")
    decoder, decoder_log = fake_tool(tmp_path, "vvdecapp", "decoder")
    with pytest.raises(PrivbenchError, match="writes no reconstruction"):
        CODECS.create("vvc", encoder=str(encoder)).check_available()
    codec = CODECS.create("vvc", encoder=str(encoder), decoder=str(decoder), qp=27)
    decoded, bits, _, _ = codec.roundtrip(gray)
    assert np.array_equal(decoded, gray)
    assert bits == 8 * (64 * 128 + 2 * 32 * 64)  # 4:2:0 with flat chroma
    args = json.loads(encoder_log.read_text().splitlines()[-1])
    assert args[args.index("--size") + 1] == "128x64" and args[args.index("--format") + 1] == "yuv420"
    assert args[args.index("--qp") + 1] == "27" and args[args.index("--qpa") + 1] == "0"
    assert "-d" in json.loads(decoder_log.read_text().splitlines()[-1])
    with pytest.raises(PrivbenchError, match="vvencapp codes 4:2:0 only"):
        codec.encode(rgb)
    assert list(private_tmp.iterdir()) == []


def test_vvc_tool_failure_is_one_line_with_its_last_message(tmp_path, private_tmp, gray):
    encoder, _ = fake_tool(tmp_path, "vvencFFapp", "encoder", fail=True)
    expected = r"vvencFFapp failed encoding \(exit 3\): error: unknown option --bogus"
    with pytest.raises(PrivbenchError, match=expected) as info:
        CODECS.create("vvc", encoder=str(encoder)).encode(gray)
    assert "\n" not in str(info.value)
    assert list(private_tmp.iterdir()) == []
