"""The Qt binding the app runs on must not corrupt Python's reference counts.

PySide6 6.12.0 drops a reference to ``True`` on every ``Signal.emit``: after a few thousand
emits (a plot redrawn, a lot predicted) Python aborts with "bool_dealloc". pyproject excludes it;
this test catches any binding that brings the bug back.
"""

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    ping = Signal(object)


def test_signal_emit_keeps_reference_counts(qapp):
    e = _Emitter()
    got = []
    e.ping.connect(got.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for i in range(1000):
        e.ping.emit(i)
    assert len(got) == 1000
    assert (sys.getrefcount(True), sys.getrefcount(False)) == before
