"""WaferSeg Studio's PySide6 GUI: a thin view over ``waferseg_core`` objects."""
