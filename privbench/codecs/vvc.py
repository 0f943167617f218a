"""VVC-Intra (H.266, one intra picture) with an external VVenC encoder the user names by path.

No package registry reachable here ships VVenC (Debian 12's ffmpeg 5.1 has no libvvenc either), so, as
CompressAI's ``bench`` wraps VTM/HM, this codec runs a binary the user built: ``encoder=PATH`` (``vvencFFapp`` or
``vvencapp`` from Fraunhofer HHI's VVenC) and optionally ``decoder=PATH`` (``vvdecapp`` from VVdeC).

- **Quality axis** ``qp`` 0–63 (VVC's QP range for 8/10-bit video; ``higher_is_better=False``), at constant QP:
  perceptual QP adaptation is turned off (``--PerceptQPA 0`` / ``--qpa 0``), so the picture is coded at that QP.
- **vvencFFapp** (chosen when the encoder's file name contains ``FFapp``): paper 000's protocol, ``-i in.yuv -b
  out.bin -o rec.yuv -q QP --SourceWidth W --SourceHeight H -f 1 -fr 1``, 8-bit in, internal and out
  (``--InputBitDepth/--InternalBitDepth/--OutputBitDepth 8``), ``--preset``, ``--Threads 1``. Gray frames are
  YUV 4:0:0 (``--InputChromaFormat 400``: native, no chroma); RGB frames are converted here to YCbCr 4:4:4 (BT.709
  matrix, full range, as paper 000's input baseline codes yuv444p full range; :func:`privbench.codecs.hevc.
  rgb_to_yuv444`) with ``--InputChromaFormat 444`` and back. ``config=PATH`` adds ``-c PATH`` first (paper 000
  passes its own .cfg), the explicit options above still win.
- **vvencapp** (any other file name): the simple app's options ``--input --size WxH --format yuv420 --framerate 1
  --frames 1 --qp --qpa 0 --preset --threads 1 --output``. Its ``--format`` takes only ``yuv420``/``yuv420_10``
  (VVenC's ``VVEncAppCfg.h``, easy mode) and it writes no reconstruction, so with vvencapp a gray frame is coded
  4:2:0 with flat chroma (128; a few bits) and the luma plane of the decoded picture is returned, RGB frames are
  refused (use vvencFFapp), and ``decoder=`` is required.
- **Decoding**: with ``decoder=PATH`` the bitstream is decoded by ``vvdecapp -b out.bin -o dec.yuv -d 8``.
  Without it (vvencFFapp only) the encoder's reconstruction is returned: VVC specifies the decoding process
  exactly (ITU-T H.266 §8), and an encoder's reconstruction is bit-exact with the output of every conforming
  decoder — it is what the encoder predicts from. That reconstruction is kept in memory from :meth:`encode` for
  the bitstream it belongs to (looked up by content), so decoding a bitstream this process did not encode needs
  ``decoder=``.
- **Frame sizes**: frames are padded here (edge pixels repeated) to multiples of 8 — VVC's minimum coding block
  — and cropped after decoding, so any size from 1×1 works; the bits include the padding.
- **Bits**: the length of the bitstream file VVenC writes (NAL units with start codes: VPS/SPS/PPS, the slice).
- Every run uses a ``tempfile.TemporaryDirectory`` (removed afterwards, also on failure), argument lists (no
  shell), and a failing tool raises one :class:`PrivbenchError` line with the last line of its output.

Relies on VVenC's command-line options (``VVEncAppCfg.h``; the VVenC wiki "Usage" page), VVdeC's ``vvdecapp``
options (``-b``, ``-o``, ``-d``), and paper 000's coding command (see ``REFERENCES.md``).
"""

from __future__ import annotations

import collections
import hashlib
import os
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

from privbench.codecs.base import Codec, check_frame
from privbench.codecs.hevc import last_line, pad_frame, rgb_to_yuv444, yuv444_to_rgb
from privbench.errors import PrivbenchError
from privbench.registry import CODECS, Param

VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")
#: reconstructions kept for decoding without a decoder (popped when decoded)
_KEEP_RECONSTRUCTIONS = 512
_BLOCK = 8


def _padded_size(size: int) -> int:
    return max(_BLOCK, -(-size // _BLOCK) * _BLOCK)


@CODECS.register("vvc")
class Vvc(Codec):
    summary = ("VVC-Intra with an external VVenC binary named by path (vvencFFapp: gray 4:0:0, RGB yuv444 BT.709 "
               "full range); QP axis")
    quality_param = "qp"
    higher_is_better = False
    native_gray = True
    requires = "a VVenC encoder binary named by encoder=PATH (vvencFFapp; built from Fraunhofer HHI's VVenC), " \
               "optionally vvdecapp as decoder=PATH"
    quality_meaning = "VVC quantization parameter 0-63 of the intra picture (higher = fewer bits, more distortion)"
    params = (
        Param("qp", int, 32, "VVC QP of the intra picture (constant QP; higher = fewer bits)", low=0, high=63),
        Param("encoder", str, "", "path to vvencFFapp (or vvencapp, which then needs decoder=)"),
        Param("decoder", str, "", "optional path to vvdecapp; empty: use the encoder's reconstruction (bit-exact)"),
        Param("preset", str, "medium", "VVenC preset", choices=VVENC_PRESETS),
        Param("config", str, "", "optional VVenC .cfg file passed first as -c (vvencFFapp only)"),
    )

    def __init__(self, **values) -> None:
        super().__init__(**values)
        self._recon: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()

    # --- availability -----------------------------------------------------------------------------------------

    @property
    def full_app(self) -> bool:
        """True for vvencFFapp's option syntax, False for vvencapp's (decided by the encoder's file name)."""
        return "ffapp" in Path(self.params["encoder"]).name.lower()

    def check_available(self) -> None:
        encoder, decoder, config = self.params["encoder"], self.params["decoder"], self.params["config"]
        if not encoder:
            raise PrivbenchError("codec 'vvc' needs encoder=PATH (vvencFFapp from VVenC; no registry here ships it)")
        for what, path in (("encoder", encoder), ("decoder", decoder)):
            if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
                raise PrivbenchError(f"codec 'vvc': {what}={path} is not an executable file")
        if not self.full_app and not decoder:
            raise PrivbenchError(f"codec 'vvc': {Path(encoder).name} (vvencapp) writes no reconstruction; give "
                                 "decoder=PATH to vvdecapp, or use vvencFFapp")
        if config and not os.path.isfile(config):
            raise PrivbenchError(f"codec 'vvc': config={config} is not a file")
        if config and not self.full_app:
            raise PrivbenchError("codec 'vvc': config= is read by vvencFFapp only")

    def version(self) -> str:
        """The encoder's (and decoder's) content hash: a rebuilt VVenC at the same path is another encoder."""
        from privbench.fingerprint import file_digest

        return " ".join(f"{what}:{file_digest(path)[:16]}" for what, path in
                        (("encoder", self.params["encoder"]), ("decoder", self.params["decoder"])) if path)

    # --- command lines ----------------------------------------------------------------------------------------

    def encoder_args(self, source: Path, bitstream: Path, recon: Path, height: int, width: int, chroma: str) -> list[str]:
        """The encoder's argument list for one ``width×height`` 8-bit picture in ``chroma`` (400, 420 or 444)."""
        qp, preset = str(int(self.params["qp"])), self.params["preset"]
        encoder = self.params["encoder"]
        if self.full_app:
            config = ["-c", self.params["config"]] if self.params["config"] else []
            return [encoder, *config, "-i", str(source), "-b", str(bitstream), "-o", str(recon), "-q", qp,
                    "--SourceWidth", str(width), "--SourceHeight", str(height), "-f", "1", "-fr", "1",
                    "--InputChromaFormat", chroma, "--InputBitDepth", "8", "--InternalBitDepth", "8",
                    "--OutputBitDepth", "8", "--PerceptQPA", "0", "--preset", preset, "--Threads", "1"]
        return [encoder, "--input", str(source), "--size", f"{width}x{height}", "--format", "yuv420",
                "--framerate", "1", "--frames", "1", "--qp", qp, "--qpa", "0", "--preset", preset, "--threads", "1",
                "--output", str(bitstream)]

    def decoder_args(self, bitstream: Path, output: Path) -> list[str]:
        return [self.params["decoder"], "-b", str(bitstream), "-o", str(output), "-d", "8"]

    # --- coding -----------------------------------------------------------------------------------------------

    def encode(self, frame: np.ndarray) -> bytes:
        check_frame(frame, self.name)
        self.check_available()
        rgb = frame.ndim == 3
        if rgb and not self.full_app:
            raise PrivbenchError("codec 'vvc': vvencapp codes 4:2:0 only; RGB frames (yuv444) need encoder=PATH to "
                                 "vvencFFapp")
        height, width = _padded_size(frame.shape[0]), _padded_size(frame.shape[1])
        padded = pad_frame(frame, height, width)
        if rgb:
            raw, chroma = rgb_to_yuv444(padded).tobytes(), "444"
        elif self.full_app:
            raw, chroma = padded.tobytes(), "400"
        else:  # vvencapp: 4:2:0 with flat chroma planes
            raw, chroma = padded.tobytes() + bytes([128]) * (2 * (height // 2) * (width // 2)), "420"
        with tempfile.TemporaryDirectory(prefix="privbench-vvc-") as folder:
            source, bitstream, recon = Path(folder, "in.yuv"), Path(folder, "out.266"), Path(folder, "rec.yuv")
            source.write_bytes(raw)
            self._run(self.encoder_args(source, bitstream, recon, height, width, chroma), "encoding")
            if not bitstream.is_file() or bitstream.stat().st_size == 0:
                raise PrivbenchError(f"codec 'vvc': {Path(self.params['encoder']).name} wrote no bitstream")
            data = bitstream.read_bytes()
            if not self.params["decoder"]:
                picture = self._read_picture(recon, height, width, rgb, "reconstruction")
                with self._lock:
                    self._recon[hashlib.sha256(data).hexdigest()] = picture
                    while len(self._recon) > _KEEP_RECONSTRUCTIONS:
                        self._recon.popitem(last=False)
        return data

    def decode(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        self.check_available()
        rgb = len(shape) == 3
        height, width = _padded_size(shape[0]), _padded_size(shape[1])
        if self.params["decoder"]:
            with tempfile.TemporaryDirectory(prefix="privbench-vvc-") as folder:
                bitstream, output = Path(folder, "in.266"), Path(folder, "dec.yuv")
                bitstream.write_bytes(data)
                self._run(self.decoder_args(bitstream, output), "decoding")
                picture = self._read_picture(output, height, width, rgb, "decoded picture")
        else:
            with self._lock:
                picture = self._recon.pop(hashlib.sha256(data).hexdigest(), None)
            if picture is None:
                raise PrivbenchError("codec 'vvc': without decoder= it decodes only bitstreams it encoded in this "
                                     "process (give decoder=PATH to vvdecapp)")
        if picture.shape[:2] != (height, width):
            raise PrivbenchError(f"codec 'vvc': decoded a {picture.shape} picture, expected {height}×{width}")
        return np.ascontiguousarray(picture[: shape[0], : shape[1]])

    def _read_picture(self, path: Path, height: int, width: int, rgb: bool, what: str) -> np.ndarray:
        """An 8-bit planar YUV file as a gray ``H×W`` (its luma) or RGB ``H×W×3`` frame.

        A gray picture may come back 4:0:0 (luma only) or with 4:2:0 / 4:4:4 chroma planes (some decoders write
        them for 4:0:0 streams); its luma is the first ``H·W`` bytes either way.
        """
        if not path.is_file():
            raise PrivbenchError(f"codec 'vvc': the {what} file was not written")
        raw = np.fromfile(path, dtype=np.uint8)
        plane = height * width
        if rgb:
            if raw.size != 3 * plane:
                raise PrivbenchError(f"codec 'vvc': the {what} has {raw.size} bytes, expected a {width}×{height} "
                                     f"8-bit 4:4:4 picture ({3 * plane} bytes)")
            return yuv444_to_rgb(raw.reshape(3, height, width))
        chroma = 2 * (height // 2) * (width // 2)
        if raw.size not in (plane, plane + chroma, 3 * plane):
            raise PrivbenchError(f"codec 'vvc': the {what} has {raw.size} bytes, expected a {width}×{height} 8-bit "
                                 f"picture ({plane} bytes of luma, plus chroma or not)")
        return raw[:plane].reshape(height, width).copy()

    def _run(self, args: list[str], what: str) -> None:
        try:
            done = subprocess.run(args, capture_output=True, check=False, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise PrivbenchError(f"codec 'vvc' cannot run {args[0]}: {exc.strerror or exc}") from None
        if done.returncode != 0:
            output = done.stderr if done.stderr.strip() else done.stdout
            raise PrivbenchError(f"codec 'vvc' {Path(args[0]).name} failed {what} (exit {done.returncode}): "
                                 f"{last_line(output)}")
