"""Bad input, everywhere (issue 12 item 5): the CSV parser on random files.

Any file is either a CsvFormatError (no usable header) or a parse whose every
rejected row carries a line number and a reason -- never another exception.
WATTLINE_FUZZ_EXAMPLES raises the example count for a longer local run.
"""
from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, given, settings, strategies as st

from wattline.sources.csv_import import CsvFormatError, read_csv

EXAMPLES = int(os.environ.get("WATTLINE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", '"', '""', '"a\nb"', "nan", "inf", "-inf", "1e309", "9" * 400,
                     "2026-12-02T23:50:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                     "-99999999999999", "W", "kWh", "Wh", "power", "energy", "\x00", "\ufeff"]),
    st.text(alphabet=string.printable, max_size=8),
)
_header = st.sampled_from(["asset,point,ts,value,unit", "asset,point,ts,value,unit,type",
                           "\ufeffasset,point,ts,value,unit", "asset,point,ts,value", ""])


def _check(path):
    try:
        out = read_csv(path)
    except CsvFormatError as exc:
        assert str(exc)
        return
    for err in out.rejected:
        assert err.line >= 2 and err.reason
    assert out.rows_read >= len(out.rows)
    for row in out.rows:
        assert row.asset and row.point and row.line >= 2


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes_never_raise_anything_else(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_bytes(data)
    _check(path)


@FUZZ
@given(header=_header, rows=st.lists(st.lists(_cell, max_size=8), max_size=6),
       sep=st.sampled_from(["\n", "\r\n", "\r"]))
def test_random_csv_text_is_rejected_by_line_or_imported(tmp_path_factory, header, rows, sep):
    text = sep.join([header] + [",".join(r) for r in rows])
    path = tmp_path_factory.mktemp("csv") / "f.csv"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    _check(path)
