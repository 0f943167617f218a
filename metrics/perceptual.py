"""``lpips``: learned perceptual distance between original and reconstruction (Zhang et al. 2018, ``lpips``).

LPIPS compares deep features of a pretrained backbone (AlexNet or VGG-16, ImageNet weights) through linear
heads calibrated on human judgements. The ``lpips`` package ships the heads; the backbone weights come from
torchvision and must already be on disk — torchvision's checkpoint in ``$TORCH_HOME/hub/checkpoints/`` or a
file the user names (``weights``). Nothing is downloaded: without the backbone ``run`` and ``eval`` stop before
computing anything, saying where to put the file (:meth:`LPIPS.check`); it is never scored with a random
backbone (a random AlexNet gives numbers that look plausible and mean nothing).

Per image, on [0, 1] RGB (scaled to [-1, 1] as LPIPS expects), averaged over images with a normal interval.
Lower = more similar = more revealed.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
from torch import nn

from privbench.errors import PrivbenchError
from privbench.metrics.base import Metric, MetricContext, PrivacyInputs, RecognizerMissing, Remedy, Score
from privbench.registry import METRICS, Param
from privbench.split import batches
from privbench.weights import load_state_dict_file

#: torchvision checkpoint file names of the ImageNet backbones LPIPS uses
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def backbone_path(net: str, weights: str = "") -> Path:
    """The backbone checkpoint: the named file, else torchvision's file in ``$TORCH_HOME/hub/checkpoints``."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PrivbenchError(f"LPIPS backbone weights not found: {path}")
        return path
    path = Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]
    if not path.is_file():
        raise RecognizerMissing("lpips", f"the pretrained {net} backbone is not on disk ({path}; a random "
                                "backbone is never used)",
                                [Remedy({}, f"put {BACKBONE_FILES[net]} in {path.parent}"),
                                 Remedy({"weights": "PATH"}, f"PATH: torchvision's {BACKBONE_FILES[net]}")])
    return path


@functools.lru_cache(maxsize=2)
def _lpips_model(net: str, path: str, mtime: float) -> nn.Module:
    import lpips

    state = load_state_dict_file(path, "LPIPS backbone")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # pnet_rand=True: build the backbone without asking torchvision to download it; pretrained=True loads
        # the linear heads shipped inside the lpips package.
        model = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False)
    # torchvision's "features.<i>.<param>" -> lpips' "slice<k>.<i>.<param>"
    where = {name.split(".")[1]: name.split(".")[0] for name, _ in model.net.named_parameters()}
    backbone = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "features" and parts[1] in where:
            backbone[f"{where[parts[1]]}.{parts[1]}.{parts[2]}"] = value
    missing, _ = model.net.load_state_dict(backbone, strict=False)
    if missing:
        raise PrivbenchError(f"{path} is not a torchvision {net} checkpoint (missing {missing[:2]})")
    return model.eval()


@METRICS.register("lpips")
class LPIPS(Metric):
    """LPIPS distance between original and reconstruction (needs the backbone weights on disk)."""

    summary = "LPIPS perceptual distance (lpips package; needs the pretrained backbone on disk)"
    side = "privacy"
    higher_is_leakier = False
    params = (
        Param("net", str, "alex", "backbone", choices=("alex", "vgg")),
        Param("weights", str, "", "torchvision backbone checkpoint (default $TORCH_HOME/hub/checkpoints/"
              "alexnet-owt-7be5be79.pth or vgg16-397923af.pth)"),
    )

    def _check_params(self) -> None:
        if self.params["weights"]:
            backbone_path(self.params["net"], self.params["weights"])

    def check(self, probes: str, synthetic: bool) -> None:
        """The backbone must be on disk, whatever the probes (raises :class:`RecognizerMissing`)."""
        backbone_path(self.params["net"], self.params["weights"])

    def score(self, inputs: PrivacyInputs, context: MetricContext) -> Score:
        path = backbone_path(self.params["net"], self.params["weights"])
        model = _lpips_model(self.params["net"], str(path.resolve()), path.stat().st_mtime).to(context.device)
        x = inputs.originals.float().clamp(0, 1)
        y = inputs.reconstructions.float().clamp(0, 1)
        values = []
        with torch.no_grad():
            for part in batches(len(x), 128):
                a, b = x[part].to(context.device), y[part].to(context.device)
                values.append(model(a * 2 - 1, b * 2 - 1).flatten().cpu())
        return Score.from_values(torch.cat(values), context.ci_level)
