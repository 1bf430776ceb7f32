"""Fuzzing budget: WAFERSEG_FUZZ=10 ./test.sh -k "mutated or garbage" runs ten times more examples."""

import os


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled by the WAFERSEG_FUZZ factor (default 1)."""
    return n * int(os.environ.get("WAFERSEG_FUZZ", "1"))
