import io
import os
import pickle

import numpy as np
import pandas as pd
import pytest

from waferseg_core import formats
from waferseg_core.errors import WaferFileError


def _frame():
    return pd.DataFrame(
        {
            "waferMap": [np.array([[0, 1, 2], [1, 1, 0]], np.uint8), np.ones((2, 2), np.uint8)],
            "dieSize": [3.0, 4.0],
            "lotName": ["lot7", "lot7"],
            "waferIndex": [1.0, 2.0],
            "trianTestLabel": [np.array([["Training"]]), np.array([])],
            "failureType": [np.array([["Edge-Ring"]]), np.array([])],
        }
    )


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_a_wm811k_dataframe(tmp_path, protocol):
    p = tmp_path / "LSWMD.pkl"
    p.write_bytes(pickle.dumps(_frame(), protocol=protocol))
    a, b = formats.read(p)
    assert a.grid.tolist() == [[0, 1, 2], [1, 1, 0]] and (a.lot, a.wafer_id) == ("lot7", "1")
    assert a.extra["label"] == "Edge-Ring" and b.extra["label"] == ""
    assert a.source_format == "wm811k-pkl"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/waferseg-pwned",))


def test_refuses_code_in_a_pickle(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises(WaferFileError, match=r"refusing to load (posix|os)\.system"):
        formats.read(p)
    assert not os.path.exists("/tmp/waferseg-pwned")


def test_refuses_pandas_functions_that_load_files(tmp_path):
    buf = io.BytesIO()
    pickle.Pickler(buf, protocol=2).dump(pd.read_pickle)
    p = tmp_path / "sneaky.pkl"
    p.write_bytes(buf.getvalue())
    with pytest.raises(WaferFileError, match="refusing to load pandas"):
        formats.read(p)


def test_truncated_pickle(tmp_path):
    data = pickle.dumps(_frame(), protocol=4)
    p = tmp_path / "t.pkl"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(WaferFileError, match="could not unpickle"):
        formats.read(p)
