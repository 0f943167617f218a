"""Recognizers that read private information out of images: face embedders, licence-plate readers, PAR.

One module per recognizer (``face``, ``lpr``, ``par``) plus ``base`` (training sets derived from a probe set,
cached training, batched inference). The metrics in ``privbench.metrics`` (``face-id``, ``plate``, ``par-ma``,
``attack-acc``) import them lazily, so importing this package never imports the metric registry.
"""
