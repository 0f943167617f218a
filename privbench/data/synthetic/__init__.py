"""Procedurally generated synthetic datasets: the embedded, offline default of privbench.

Four datasets carry the same *kinds* of private information as the real datasets used by the papers, so
every privacy metric means something without downloading anything. One module per family:

- ``scenes`` — ``synth-scenes``, the utility task (coarse shapes that survive blur);
- ``faces`` — ``synth-faces``, identities in fine facial geometry and texture (LFW stand-in);
- ``plates`` — ``synth-plates``, random strings in a TrueType font (CCPD stand-in);
- ``pedestrians`` — ``synth-pedestrians``, coarse and fine binary attributes (PA-100K stand-in);
- ``detection_scenes`` — ``synth-detection``, street scenes for detection with faces and plates inside;

plus ``common`` (splits, RNG streams, rendering helpers, :func:`generate_items` and the dataset base class;
its docstring describes determinism, splits and rendering) and ``contact_sheet`` (:func:`preview`).
Importing this package registers the four datasets and re-exports the public names of every module.
"""

from __future__ import annotations

from privbench.data.synthetic.common import (  # noqa: F401  (re-exports)
    FACE_KIND,
    FONT_PATH,
    IDENTITY_OFFSETS,
    PARALLEL_MIN_ITEMS,
    PEDESTRIAN_KIND,
    PLATE_KIND,
    SCENE_KIND,
    SUBSET_CODES,
    SUBSET_PARAM,
    SUBSETS,
    generate_items,
)
from privbench.data.synthetic.contact_sheet import preview
from privbench.data.synthetic.detection_scenes import SyntheticDetection  # noqa: F401  (registration)
from privbench.data.synthetic.faces import (  # noqa: F401  (re-exports)
    HAIR_COLOURS,
    IRIS_COLOURS,
    SKIN_TONES,
    FaceIdentity,
    SyntheticFaces,
)
from privbench.data.synthetic.pedestrians import (  # noqa: F401  (re-exports)
    DARK_CLOTHES,
    FINE_ATTRIBUTES,
    LIGHT_CLOTHES,
    PEDESTRIAN_ATTRIBUTES,
    RED_CLOTHES,
    SyntheticPedestrians,
)
from privbench.data.synthetic.plates import (  # noqa: F401  (re-exports)
    CAR_COLOURS,
    PLATE_ALPHABET,
    PLATE_LETTERS,
    PLATE_STYLES,
    SyntheticPlates,
    random_plate_text,
)
from privbench.data.synthetic.scenes import SCENE_CLASSES, SyntheticScenes

__all__ = [
    "FINE_ATTRIBUTES", "IDENTITY_OFFSETS", "PEDESTRIAN_ATTRIBUTES", "PLATE_ALPHABET", "PLATE_LETTERS",
    "SCENE_CLASSES", "SUBSETS", "SyntheticFaces", "SyntheticPedestrians", "SyntheticPlates",
    "SyntheticScenes", "preview", "random_plate_text",
]
