"""HEVC-Intra (H.265, one intra picture) with x265, through ffmpeg or through pillow-heif (libheif).

**Quality axis** ``qp`` 0–51: the HEVC quantization parameter of the picture (``higher_is_better=False``: a larger
QP means fewer bits and more distortion; +6 QP doubles the quantizer step). Both backends code at **constant QP**
(x265 ``--qp``, the rate-control mode CQP) with ``ipratio=1``: x265 derives the I-slice QP as
``qp − 6·log2(ipratio)`` (``RateControl::init``), so without it an intra picture would be coded about 3 QP finer
than asked; in CQP x265 also turns adaptive quantization off (``x265_check_params``), so every CU uses that QP.
Both backends use ``tune=psnr`` (no psycho-visual rate-distortion, whose chroma QP offset of +6 in 4:4:4 and
texture bias would blur a PSNR comparison) and the x265 ``preset`` (default ``medium``).

**Backends** (a fixed default, never picked by what is installed, so results never silently depend on it):

- ``ffmpeg`` (default): Debian's ffmpeg with libx265, through stdin/stdout pipes, no temporary files. The
  bitstream is the raw Annex-B elementary stream (VPS, SPS, PPS, one IDR slice) with x265's version/options SEI
  string turned off (``info=0``; it is about 2.2 kB that is not picture data). Gray frames are coded ``-pix_fmt
  gray``: true 4:0:0 (``chroma_format_idc`` 0, checked with ffprobe: pix_fmt gray). RGB frames are converted
  here to YCbCr 4:4:4, BT.709 matrix, full range (as paper 000 codes its input baseline, yuv444p full range), coded
  ``yuv444p`` and converted back; the colour conversion alone costs 0.57 LSB RMS, at most 1 (53 dB). ffmpeg's libx265
  wrapper refuses pictures under 16 pixels on a side, so smaller frames are padded (edge pixels repeated) to 16
  and cropped after decoding; their bits include the padding. The QP is honoured exactly: x265's log reports
  ``Avg QP:<qp>.00`` for the frame (checked in the tests). Overhead: a 1×1 frame (coded as 16×16) is 87 bytes
  gray, 92 bytes RGB (VPS 24 + SPS ~40 + PPS ~7 bytes with start codes, and the slice). Frames are coded in
  batches, one ffmpeg process to encode a batch and one to decode it (below).
- ``pillow-heif``: libheif's x265 plugin in-process, the bitstream being the whole HEIF file. The QP is forced
  through ``enc_params={"x265:qp": ..., "x265:ipratio": "1"}`` (checked: it overrides the ``quality``/CRF setting,
  bits fall as the QP rises, and the PSNR at a QP is that of the ffmpeg backend within 0.2 dB on most frames, 1 dB
  at worst); libheif's own x265 defaults (preset ``slow``, tune ``ssim``, psy-rd 1) are replaced by ``preset``,
  ``tune=psnr`` and ``x265:psy-rd=0``/``psy-rdoq=0``. Gray frames are saved as mode ``L``: monochrome HEVC (4:0:0).
  RGB frames are coded ``chroma=444`` with an nclx box saying BT.709 matrix, full range, and libheif converts both
  ways. Costs: libheif pads every picture to at least 64×64 (``rounded_size`` in its x265 plugin) and the HEIF
  boxes (ftyp, meta: hdlr, pitm, iloc, iinf, iprp with hvcC, ispe, clap, pixi, colr) add about 300 bytes: a 1×1
  frame is a 418-byte file gray, 446 bytes RGB.

**Batches** (:meth:`Hevc.roundtrip_batch`, which the codec stage calls with one chunk of frames per core; backend
``ffmpeg``). N frames of one shape are coded as one all-intra stream by one ffmpeg process and decoded by one more,
instead of two processes per frame (ffmpeg takes ~90 ms to start, as it links ~200 shared libraries). x265
options: every picture is an IDR (``keyint=1:min-keyint=1:scenecut=0:open-gop=0:bframes=0``; with ``keyint=1``
x265 runs no lookahead, and in CQP it turns AQ, cutree and rate control off) preceded by its own VPS/SPS/PPS
(``repeat-headers=1``, which ffmpeg's wrapper also sets for raw output), so no picture depends on another.
:func:`split_access_units` cuts the stream into access units, and a picture's bits are 8 × the bytes of its access
unit, start codes and parameter sets included: exactly the length of the stream of that frame coded alone, and
the decoded pixels are bit-identical to those of coding it alone (tested on batches of 64×128 and 17×30 gray,
32×32 and 30×17 RGB; checked too at QP 12 and 45 and on 192×256 gray and 200×300 RGB, where WPP is on). The
bytes are not all identical, by one bit: x265 (``DPB::prepareEncode``) sets the slice header's
``slice_loop_filter_across_slices_enabled_flag`` to bit ``POC % 31`` of the constant ``0x5f4e4a53``, so alone (POC
0) the flag is 1, and picture i of a batch (POC i) has it 0 in 14 of every 31 pictures (i = 2, 3, 5, 7, 8, 10,
…): a 1-bit field either way, and of no effect on decoding with one slice per picture (no slice boundary to
filter across). Threading does not change the stream (checked: ``frame-threads`` 1–4, ``pools`` 1 or 4 give the
same bytes), so none is pinned; WPP, which x265 uses for frames of ≥ 2 CTU rows and ≥ 3 columns when it has a
thread pool, is a coding tool chosen the same way alone and in a batch. The encode call's wall time and the
decode call's (ffmpeg's start included) are each shared equally over the N pictures. :meth:`Hevc.roundtrip` is a
batch of one; :meth:`Hevc.encode`/:meth:`Hevc.decode` code one frame, one process each.

Why ffmpeg is the default (``benchmarks/bench_codecs.py``, 64 frames, 2 cores): at ~35 dB a 64×128 feature frame
costs 1355 bytes with ffmpeg (QP 30) against 1625 with pillow-heif (+20 %), a 32×32 RGB input image 625 bytes
(QP 23, 35.6 dB) against 990 (QP 24, 35.0 dB; +58 %): the container and the padding would be counted as
transmitted bits. Batched, ffmpeg is now as fast as pillow-heif or faster: a chunk of 64 feature frames codes at
105 frames/s on 1 thread and 153 on 2 threads (two chunks of 32), 32×32 RGB images at 168 and 249, against
pillow-heif's 96 and 153 (features), 98 and 151 (images); frame by frame (two processes per frame) ffmpeg
managed 5.1 frames/s on 1 thread and 8–10 on 2, so batching is 20–33× faster.

Frames of any size from 1×1 work with both backends (odd sizes included). ``check_available`` raises one line
naming what to install (``apt-get install ffmpeg``, or ``pip install pillow-heif``).

Relies on: x265's documentation (``--qp``, ``--ipratio``, ``--info``, ``--tune psnr``, ``--keyint``,
``--repeat-headers``, presets) and its sources named above (``SLFASE_CONSTANT``; WPP conditions in
``Encoder::create``); H.265 §7.3.1 (NAL unit header), §7.4.2.4.4 (order of NAL units; first NAL unit of an access
unit) and Annex B (byte stream, start codes); ffmpeg's libx265 wrapper (``-x265-params``, ``-preset``, ``-tune``;
minimum picture size 16) and ``-fps_mode passthrough`` (ffmpeg ≥ 5.1: every decoded picture written once);
libheif's ``encoder_x265.cc`` (parameter names, ``x265:`` pass-through, padding); pillow-heif's
``from_bytes``/``open_heif``/``save`` (``enc_params``, ``save_nclx_profile``, ``matrix_coefficients``);
ITU-R BT.709 luma coefficients (Kr = 0.2126, Kb = 0.0722).
"""

from __future__ import annotations

import functools
import io
import re
import shutil
import subprocess
import time

import numpy as np

from privbench.codecs.base import Codec, check_frame
from privbench.errors import PrivbenchError
from privbench.registry import CODECS, Param

X265_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
#: ffmpeg's libx265 wrapper refuses pictures smaller than this on either side
FFMPEG_MIN_SIDE = 16

# ITU-R BT.709 luma coefficients; full-range YCbCr: Y in [0, 255], Cb/Cr centred on 128
_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def rgb_to_yuv444(rgb: np.ndarray) -> np.ndarray:
    """``H×W×3`` uint8 RGB → ``3×H×W`` uint8 planar Y, Cb, Cr (BT.709 matrix, full range), rounded."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = _KR * r + _KG * g + _KB * b
    cb = (b - y) / (2.0 * (1.0 - _KB)) + 128.0
    cr = (r - y) / (2.0 * (1.0 - _KR)) + 128.0
    return np.clip(np.rint(np.stack([y, cb, cr])), 0, 255).astype(np.uint8)


def yuv444_to_rgb(yuv: np.ndarray) -> np.ndarray:
    """``3×H×W`` uint8 planar Y, Cb, Cr (BT.709, full range) → ``H×W×3`` uint8 RGB, rounded and clipped."""
    y, cb, cr = (yuv[i].astype(np.float64) for i in range(3))
    cb, cr = cb - 128.0, cr - 128.0
    r = y + 2.0 * (1.0 - _KR) * cr
    b = y + 2.0 * (1.0 - _KB) * cb
    g = (y - _KR * r - _KB * b) / _KG
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def pad_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """``frame`` padded at the bottom and right to at least ``height × width`` by repeating its edge pixels."""
    pad_h, pad_w = max(0, height - frame.shape[0]), max(0, width - frame.shape[1])
    if not pad_h and not pad_w:
        return frame
    spec = ((0, pad_h), (0, pad_w)) + (((0, 0),) if frame.ndim == 3 else ())
    return np.ascontiguousarray(np.pad(frame, spec, mode="edge"))


def last_line(text: bytes | str) -> str:
    """The last non-blank line of a tool's output (for one-line errors)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


#: H.265 NAL unit types (Table 7-1) that, after a picture's slices, begin the next access unit (§7.4.2.4.4):
#: VPS, SPS, PPS, access unit delimiter, prefix SEI, and the reserved/unspecified types 41–44 and 48–55
AU_PREFIX_NAL_TYPES = frozenset({32, 33, 34, 35, 39, *range(41, 45), *range(48, 56)})


def split_access_units(stream: bytes) -> list[bytes]:
    """An H.265 Annex-B byte stream cut into its access units (one coded picture each), bytes kept in order.

    NAL units follow start codes ``00 00 01`` (a ``00`` before one — the 4-byte form — belongs to it); the NAL
    type is ``(byte0 >> 1) & 0x3f`` of the 2-byte NAL header, types 0–31 being slices (VCL). A new access unit
    begins, once the current one holds a slice, at a VPS/SPS/PPS/AUD/prefix SEI (:data:`AU_PREFIX_NAL_TYPES`)
    or at a slice whose ``first_slice_segment_in_pic_flag`` (the first bit after the NAL header) is 1. Suffix
    SEI, end of sequence/bitstream and filler data stay with the picture they follow. The pieces concatenate
    to ``stream``: their lengths are each picture's bytes with its parameter sets and start codes, what the
    stream of that picture alone would count. Raises :class:`PrivbenchError` for bytes that are not such a
    stream (no start code, a truncated NAL header, parameter sets after the last picture)."""
    units: list[bytes] = []
    begin, has_slice = 0, False
    pos = stream.find(b"\x00\x00\x01")
    if pos < 0:
        raise PrivbenchError("codec 'hevc': not an Annex-B stream (no start code)")
    while pos >= 0:
        header = pos + 3
        if header + 2 > len(stream):
            raise PrivbenchError(f"codec 'hevc': truncated NAL unit header at byte {pos}")
        nal_type = (stream[header] >> 1) & 0x3F
        is_slice = nal_type < 32
        first_slice = is_slice and header + 2 < len(stream) and stream[header + 2] >> 7 == 1
        if has_slice and (nal_type in AU_PREFIX_NAL_TYPES or first_slice):
            cut = pos - 1 if stream[pos - 1] == 0 else pos  # the zero_byte of a 4-byte start code
            units.append(stream[begin:cut])
            begin, has_slice = cut, False
        has_slice = has_slice or is_slice
        pos = stream.find(b"\x00\x00\x01", header)
    if not has_slice:
        raise PrivbenchError("codec 'hevc': the stream ends with NAL units of no picture")
    units.append(stream[begin:])
    return units


@functools.cache
def _ffmpeg_has_libx265(ffmpeg: str) -> bool:
    try:
        listed = subprocess.run([ffmpeg, "-hide_banner", "-nostdin", "-encoders"], capture_output=True, check=False,
                                timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"libx265" in listed.stdout


#: ffmpeg path -> the version of the libx265 it links (found once per process)
_X265_VERSIONS: dict[str, str] = {}


@functools.cache
def _tool_version(tool: str) -> str:
    """The first line of ``tool -version`` (ffmpeg) or ``tool --version`` (x265, via ffmpeg's libx265 build)."""
    try:
        out = subprocess.run([tool, "-hide_banner", "-version"] if tool.endswith("ffmpeg") else [tool, "--version"],
                             capture_output=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).decode(errors="replace").strip().splitlines()
    return text[0] if text else "unknown"


@functools.cache
def _pillow_heif_problem() -> str | None:
    try:
        import pillow_heif
    except ImportError:
        return "codec 'hevc' backend=pillow-heif needs pillow-heif (pip install pillow-heif)"
    info = pillow_heif.libheif_info()
    if "x265" not in (info.get("encoders") or {}):
        return ("codec 'hevc' backend=pillow-heif needs pillow-heif with libheif's x265 encoder "
                "(pip install pillow-heif)")
    if not info.get("decoders"):
        return "codec 'hevc' backend=pillow-heif needs pillow-heif with an HEVC decoder (pip install pillow-heif)"
    return None


@CODECS.register("hevc")
class Hevc(Codec):
    summary = ("HEVC-Intra with x265 at constant QP (tune psnr); backend ffmpeg (raw Annex-B, default) or pillow-heif "
               "(HEIF file); gray native 4:0:0, RGB as yuv444 BT.709 full range")
    quality_param = "qp"
    higher_is_better = False
    native_gray = True
    requires = "backend=ffmpeg: ffmpeg with libx265 (apt-get install ffmpeg); backend=pillow-heif: pillow-heif"
    quality_meaning = "HEVC quantization parameter 0-51 of the intra picture (higher = fewer bits, more distortion)"
    params = (
        Param("qp", int, 32, "HEVC QP of the intra picture (constant QP; higher = fewer bits)", low=0, high=51),
        Param("backend", str, "ffmpeg", "ffmpeg: Debian ffmpeg + libx265, raw Annex-B bitstream, exact size; "
              "pillow-heif: libheif + x265 in-process, HEIF file (≥64×64 padding, ~300 container bytes)",
              choices=("ffmpeg", "pillow-heif")),
        Param("preset", str, "medium", "x265 speed/efficiency preset", choices=X265_PRESETS),
    )

    def check_available(self) -> None:
        if self.params["backend"] == "ffmpeg":
            ffmpeg = shutil.which("ffmpeg")
            if ffmpeg is None or not _ffmpeg_has_libx265(ffmpeg):
                what = "ffmpeg is not on PATH" if ffmpeg is None else f"{ffmpeg} has no libx265 encoder"
                raise PrivbenchError(f"codec 'hevc' backend=ffmpeg needs ffmpeg with libx265 ({what}): "
                                     "apt-get install ffmpeg, or use backend=pillow-heif")
        else:
            problem = _pillow_heif_problem()
            if problem:
                raise PrivbenchError(problem)

    def version(self) -> str:
        if self.params["backend"] == "ffmpeg":
            ffmpeg = shutil.which("ffmpeg")
            if ffmpeg is None:
                return "no ffmpeg"
            if ffmpeg not in _X265_VERSIONS:  # the libx265 ffmpeg links, as x265 logs it: one tiny encode per process
                _, log = self._ffmpeg_encode(np.zeros((16, 16), np.uint8), log_level="info")
                found = re.search(r"HEVC encoder version (\S+)", log)
                _X265_VERSIONS[ffmpeg] = found.group(1) if found else "unknown"
            return f"{_tool_version(ffmpeg)}; x265 {_X265_VERSIONS[ffmpeg]}"
        import pillow_heif

        return f"pillow-heif {pillow_heif.__version__}, {pillow_heif.libheif_info().get('HEIF')}"

    def encode(self, frame: np.ndarray) -> bytes:
        check_frame(frame, self.name)
        self.check_available()
        if self.params["backend"] == "ffmpeg":
            return self._ffmpeg_encode(frame)[0]
        return self._heif_encode(frame)

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        self.check_available()
        if self.params["backend"] == "ffmpeg":
            return self._ffmpeg_decode(data, shape)
        return self._heif_decode(data, shape)

    # --- ffmpeg + libx265 -------------------------------------------------------------------------------------

    def roundtrip(self, frame: np.ndarray) -> tuple[np.ndarray, int, float, float]:
        if self.params["backend"] == "ffmpeg":
            return self.roundtrip_batch([frame])[0]
        return super().roundtrip(frame)

    def roundtrip_batch(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, int, float, float]]:
        """backend=ffmpeg: the frames (one shape) are coded as one all-intra stream in one ffmpeg process and
        decoded in one more; each picture is an IDR access unit with its own VPS/SPS/PPS, whose bits
        (:func:`split_access_units`) and decoded pixels are those of coding the frame alone (see the module
        docstring). The two calls' wall times are shared equally over the frames."""
        if self.params["backend"] != "ffmpeg" or not frames:
            return super().roundtrip_batch(frames)
        shape = frames[0].shape
        for frame in frames:
            check_frame(frame, self.name)
            if frame.shape != shape:
                raise PrivbenchError(f"codec 'hevc': a batch holds frames of one shape, got {shape} and {frame.shape}")
        self.check_available()
        start = time.perf_counter()
        stream, units, _ = self._ffmpeg_encode_batch(frames)
        encoded = time.perf_counter()
        decoded = self._ffmpeg_decode_batch(stream, shape, len(frames))
        done = time.perf_counter()
        encode_s, decode_s = (encoded - start) / len(frames), (done - encoded) / len(frames)
        return [(picture, 8 * len(unit), encode_s, decode_s) for picture, unit in zip(decoded, units, strict=True)]

    def _x265_params(self, log_level: str) -> str:
        # every picture an IDR with its own parameter sets, nothing carried from one picture to the next
        return (f"qp={int(self.params['qp'])}:ipratio=1:aq-mode=0:keyint=1:min-keyint=1:scenecut=0:open-gop=0:"
                f"bframes=0:repeat-headers=1:info=0:log-level={log_level}")

    def ffmpeg_encode_args(self, height: int, width: int, rgb: bool, log_level: str = "error",
                           frames: int = 1) -> list[str]:
        """The ffmpeg command that codes ``frames`` raw ``width×height`` pictures from stdin to one Annex-B stream
        on stdout (``log_level`` other than ``error`` also shows ffmpeg's warnings, e.g. an unknown x265 option)."""
        pix_fmt = "yuv444p" if rgb else "gray"
        colour = ["-color_range", "pc"] + (["-colorspace", "bt709"] if rgb else [])
        ffmpeg_log = "error" if log_level == "error" else "warning"
        return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", ffmpeg_log, "-f", "rawvideo", "-pix_fmt", pix_fmt,
                "-s", f"{width}x{height}", "-r", "1", "-i", "pipe:0", "-frames:v", str(frames), "-an",
                "-c:v", "libx265", "-preset", self.params["preset"], "-tune", "psnr", *colour,
                "-x265-params", self._x265_params(log_level), "-f", "hevc", "pipe:1"]

    def _ffmpeg_encode(self, frame: np.ndarray, log_level: str = "error") -> tuple[bytes, str]:
        """(Annex-B bitstream, x265/ffmpeg log) of one frame; ``log_level="info"`` makes x265 report the QP."""
        stream, _, log = self._ffmpeg_encode_batch([frame], log_level)
        return stream, log

    def _ffmpeg_encode_batch(self, frames: list[np.ndarray],
                             log_level: str = "error") -> tuple[bytes, list[bytes], str]:
        """(Annex-B stream, its access units — one per frame, in order —, log) of frames of one shape."""
        rgb = frames[0].ndim == 3
        padded = [pad_frame(frame, FFMPEG_MIN_SIDE, FFMPEG_MIN_SIDE) for frame in frames]
        raw = b"".join(rgb_to_yuv444(p).tobytes() if rgb else p.tobytes() for p in padded)
        args = self.ffmpeg_encode_args(padded[0].shape[0], padded[0].shape[1], rgb, log_level, len(frames))
        done = self._run(args, raw, "encoding")
        if not done.stdout:
            raise PrivbenchError(f"codec 'hevc' (ffmpeg) produced no bitstream: {last_line(done.stderr)}")
        units = split_access_units(done.stdout)
        if len(units) != len(frames):
            raise PrivbenchError(f"codec 'hevc' (ffmpeg) coded {len(frames)} frames into {len(units)} pictures")
        return done.stdout, units, done.stderr.decode("utf-8", "replace")

    def _ffmpeg_decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        return self._ffmpeg_decode_batch(data, shape, 1)[0]

    def _ffmpeg_decode_batch(self, data: bytes, shape: tuple[int, ...], count: int) -> list[np.ndarray]:
        """The ``count`` pictures of an Annex-B stream, decoded in one ffmpeg call, cropped to ``shape``."""
        rgb = len(shape) == 3
        height, width = max(shape[0], FFMPEG_MIN_SIDE), max(shape[1], FFMPEG_MIN_SIDE)
        args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "hevc", "-i", "pipe:0",
                "-frames:v", str(count), "-fps_mode", "passthrough", "-f", "rawvideo",
                "-pix_fmt", "yuv444p" if rgb else "gray", "pipe:1"]
        done = self._run(args, data, "decoding")
        planes = 3 if rgb else 1
        size = planes * height * width
        if len(done.stdout) != count * size:
            raise PrivbenchError(f"codec 'hevc' (ffmpeg) decoded {len(done.stdout)} bytes, expected {count} "
                                 f"{width}×{height} pictures ({count * size} bytes): {last_line(done.stderr)}")
        pictures = np.frombuffer(done.stdout, dtype=np.uint8).reshape(count, planes, height, width)
        if rgb:
            return [np.ascontiguousarray(yuv444_to_rgb(p)[: shape[0], : shape[1]]) for p in pictures]
        return [np.ascontiguousarray(p[0, : shape[0], : shape[1]]) for p in pictures]

    def _run(self, args: list[str], stdin: bytes, what: str) -> subprocess.CompletedProcess:
        try:
            done = subprocess.run(args, input=stdin, capture_output=True, check=False)
        except OSError as exc:
            raise PrivbenchError(f"codec 'hevc' cannot run ffmpeg ({exc.strerror or exc}): "
                                 "apt-get install ffmpeg") from None
        if done.returncode != 0:
            raise PrivbenchError(f"codec 'hevc' (ffmpeg) failed {what} (exit {done.returncode}): "
                                 f"{last_line(done.stderr)}")
        return done

    # --- pillow-heif (libheif + x265) -------------------------------------------------------------------------

    def heif_enc_params(self) -> dict[str, str]:
        return {"x265:qp": str(int(self.params["qp"])), "x265:ipratio": "1", "preset": self.params["preset"],
                "tune": "psnr", "x265:psy-rd": "0", "x265:psy-rdoq": "0", "chroma": "444"}

    def _heif_encode(self, frame: np.ndarray) -> bytes:
        import pillow_heif

        rgb = frame.ndim == 3
        image = pillow_heif.from_bytes("RGB" if rgb else "L", (frame.shape[1], frame.shape[0]), frame.tobytes())
        # RGB: an nclx box says BT.709 matrix, full range, and libheif converts with that matrix both ways
        colour = dict(save_nclx_profile=True, color_primaries=1, transfer_characteristics=13, matrix_coefficients=1,
                      full_range_flag=1) if rgb else dict(save_nclx_profile=False)
        buffer = io.BytesIO()
        try:
            image.save(buffer, format="HEIF", enc_params=self.heif_enc_params(), **colour)
        except (ValueError, RuntimeError) as exc:
            raise PrivbenchError(f"codec 'hevc' (pillow-heif) failed encoding: {last_line(str(exc))}") from None
        return buffer.getvalue()

    def _heif_decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        import pillow_heif

        try:
            image = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
            pixels = np.asarray(image)
        except (ValueError, RuntimeError) as exc:
            raise PrivbenchError(f"codec 'hevc' (pillow-heif) failed decoding: {last_line(str(exc))}") from None
        if len(shape) == 2 and pixels.ndim == 3:  # a decoder that returned RGB for a monochrome picture
            pixels = pixels[..., 0]
        if pixels.shape != tuple(shape):
            raise PrivbenchError(f"codec 'hevc' (pillow-heif) decoded a {pixels.shape} picture, "
                                 f"expected {tuple(shape)}")
        return np.ascontiguousarray(pixels, dtype=np.uint8)
