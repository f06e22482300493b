"""Property tests of the opcode walk: random and damaged input never crashes or hangs, and
is never called safe unless it really parses or no unpickler could get past its start."""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.models import ScanReport, scan_path
from mloop.models._scan._allowlist import is_allowed

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=5), children, max_size=5)
    | st.tuples(children, children),
    max_leaves=20,
)  # fmt: skip
_TRICKY_OPS = {
    "os": b"\x8c\x02os\x94", "system": b"\x8c\x06system\x94", "numpy": b"\x8c\x05numpy",
    "dtype": b"\x8c\x05dtype", "get0": b"h\x00", "get1": b"h\x01", "get2": b"h\x02",
    "put0": b"q\x00", "put1": b"q\x01", "stack_global": b"\x93", "reduce": b"R",
    "build": b"b", "tuple1": b"\x85", "tuple2": b"\x86", "mark": b"(", "tuple": b"t",
    "obj": b"o", "newobj": b"\x81", "pop": b"0", "dup": b"2", "none": b"N",
    "dict": b"}", "setitem": b"s", "global_set": b"cbuiltins\nset\n",
    "global_os": b"cos\nsystem\n", "int": b"K\x01", "pop_mark": b"1", "memoize": b"\x94",
}  # fmt: skip


class _Oracle(pickle.Unpickler):
    """CPython's own unpickler, with every import replaced: an allowed name by an inert
    stub, any other name by an exception. It answers "would CPython import something off
    the allow-list before it stops?" without running anything."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if not all(part.isidentifier() for part in module.split(".")):
            raise ImportError(module)  # no such module can be imported: the load stops
        self.imported = True
        if is_allowed(module, name):
            return _stub
        raise _Refused(module, name)

    def persistent_load(self, pid: object) -> object:
        return None

    imported = False


def _stub(*args: object, **kwargs: object) -> None:
    return None


class _Refused(Exception):
    pass


def _cpython(data: bytes) -> tuple[bool, bool]:
    """(imports anything, imports something refused) when CPython reads ``data``."""
    oracle = _Oracle(io.BytesIO(data))
    try:
        oracle.load()
    except _Refused:
        return True, True
    except Exception:
        pass
    return oracle.imported, False


def _scan(tmp_path: Path, data: bytes) -> ScanReport:
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    return scan_path(path)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_and_never_hide_an_import(tmp_path: Path, data: bytes) -> None:
    report = _scan(tmp_path, data)
    imports, refused = _cpython(data)
    if report.safe:
        assert not refused
        if report.files[0].format == "data":  # "not a pickle": CPython imports nothing
            assert not imports


@SETTINGS
@given(VALUES, st.integers(0, 5), st.data())
def test_truncated_pickles_are_rejected(
    tmp_path: Path, value: object, protocol: int, data: st.DataObject
) -> None:
    pickled = pickle.dumps(value, protocol=protocol)
    cut = data.draw(st.integers(0, len(pickled) - 1))
    report = _scan(tmp_path, pickled[:cut])
    if protocol >= 2 and cut >= 2:
        assert not report.safe
    else:  # protocols 0 and 1 have no signature: rejected, or data that imports nothing
        assert not report.safe or not _cpython(pickled[:cut])[0]


@SETTINGS
@given(VALUES, st.integers(0, 5), st.data())
def test_mutated_pickles_are_never_safe_when_cpython_would_import_a_refused_name(
    tmp_path: Path, value: object, protocol: int, data: st.DataObject
) -> None:
    pickled = bytearray(pickle.dumps(value, protocol=protocol))
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(pickled) - 1))
        pickled[position] = data.draw(st.integers(0, 255))
    mutated = bytes(pickled)
    report = _scan(tmp_path, mutated)
    if report.safe:
        assert not _cpython(mutated)[1]


@SETTINGS
@given(st.lists(st.sampled_from(sorted(_TRICKY_OPS)), min_size=1, max_size=12), st.data())
def test_opcode_soup_never_hides_a_refused_import(
    tmp_path: Path, names: list[str], data: st.DataObject
) -> None:
    soup = b"\x80\x04" + b"".join(_TRICKY_OPS[name] for name in names) + b"."
    report = _scan(tmp_path, soup)
    if report.safe:
        assert not _cpython(soup)[1]


@SETTINGS
@given(VALUES, st.integers(0, 5))
def test_every_plain_value_scans_clean(tmp_path: Path, value: object, protocol: int) -> None:
    report = _scan(tmp_path, pickle.dumps(value, protocol=protocol))
    assert report.safe, report.findings
