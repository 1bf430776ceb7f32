"""WaferSeg core: wafer maps, formats, geometry, synthesis, COCO, store and inference.

Nothing in this package imports Qt, and only ``waferseg_core.ml`` imports torch.
"""

__version__ = "0.1.0"
