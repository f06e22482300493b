"""The known tricks, each written opcode by opcode or by pickling a __reduce__ (never by
unpickling), must be found; every finding names what would have been imported."""

from __future__ import annotations

import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scan_crafting import Ops, reduce_to

from conftest import refused, scan_bytes
from mloop.models import scan_path


class Reduces:
    """Pickles as a call of ``func(*args)``; pickling it never calls anything."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


DANGEROUS = [
    (os.system, ("echo pwned",), {os.system.__module__}, "system"),
    (subprocess.Popen, (["echo", "pwned"],), {"subprocess"}, "Popen"),
    (eval, ("1+1",), {"builtins"}, "eval"),
    (exec, ("pass",), {"builtins"}, "exec"),
    (getattr, (str, "join"), {"builtins"}, "getattr"),
]


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize(("func", "args", "modules", "name"), DANGEROUS)
def test_reduce_to_a_dangerous_callable_is_found_in_every_protocol(
    tmp_path: Path, protocol: int, func: Any, args: Any, modules: set[str], name: str
) -> None:
    report = scan_bytes(tmp_path, pickle.dumps(Reduces(func, *args), protocol=protocol))
    assert not report.safe
    assert any(
        f.kind == "global" and f.module in modules and f.name == name for f in report.findings
    ), report.findings


@pytest.mark.parametrize("protocol", [0, 1, 2])
def test_python2_names_are_mapped_as_the_unpickler_maps_them(tmp_path: Path, protocol: int) -> None:
    evil = Ops(protocol).call("__builtin__", "eval", "1").STOP().bytes()
    benign = Ops(protocol).call("copy_reg", "_reconstructor").STOP().bytes()
    assert refused(scan_bytes(tmp_path, evil, "evil")) == {("global", "builtins", "eval")}
    report = scan_bytes(tmp_path, benign, "benign")
    assert report.safe
    assert report.files[0].globals == ["copyreg._reconstructor"]


def test_python2_names_are_not_mapped_from_protocol_3(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, Ops(3).call("__builtin__", "set").STOP().bytes())
    assert refused(report) == {("global", "__builtin__", "set")}


def test_stack_global_built_from_memoized_strings(tmp_path: Path) -> None:
    ops = Ops(4).SHORT_BINUNICODE("numpy").MEMOIZE().SHORT_BINUNICODE("os").MEMOIZE()
    ops.SHORT_BINUNICODE("system").MEMOIZE().POP().POP().POP()
    ops.raw(b"h\x01h\x02").STACK_GLOBAL().UNICODE("echo pwned").TUPLE1().REDUCE().STOP()
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, ops.bytes()))


def test_stack_global_from_binput_strings(tmp_path: Path) -> None:
    ops = Ops(2).UNICODE("subprocess").BINPUT(7).UNICODE("getoutput").BINPUT(9).POP().POP()
    ops.BINGET(7).BINGET(9).STACK_GLOBAL().UNICODE("id").TUPLE1().REDUCE().STOP()
    assert ("global", "subprocess", "getoutput") in refused(scan_bytes(tmp_path, ops.bytes()))


def test_stack_global_operands_written_with_string_opcodes(tmp_path: Path) -> None:
    ops = Ops(None).STRING("os").STRING("system").STACK_GLOBAL()
    ops.STRING("ls").TUPLE1().REDUCE().STOP()
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, ops.bytes()))


def test_stack_global_whose_operands_cannot_be_known_is_unsafe(tmp_path: Path) -> None:
    ops = Ops(4).GLOBAL("collections", "OrderedDict").EMPTY_TUPLE().REDUCE()
    ops.BINPERSID().SHORT_BINUNICODE("system").STACK_GLOBAL().STOP()
    report = scan_bytes(tmp_path, ops.bytes())
    assert ("unresolved", None, None) in refused(report)


def test_inst_obj_and_newobj_ex(tmp_path: Path) -> None:
    inst = Ops(None).MARK().STRING("echo pwned").INST("os", "system").STOP()
    obj = Ops(1).MARK().GLOBAL("subprocess", "Popen").STRING("ls").OBJ().STOP()
    newobj_ex = Ops(4).GLOBAL("webbrowser", "Mozilla").EMPTY_TUPLE().EMPTY_DICT()
    newobj_ex.NEWOBJ_EX().STOP()
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, inst.bytes(), "a"))
    assert ("global", "subprocess", "Popen") in refused(scan_bytes(tmp_path, obj.bytes(), "b"))
    assert ("global", "webbrowser", "Mozilla") in refused(
        scan_bytes(tmp_path, newobj_ex.bytes(), "c")
    )


def test_calling_the_result_of_an_allowed_call_is_unsafe(tmp_path: Path) -> None:
    ops = Ops(2).call("collections", "OrderedDict").UNICODE("x").TUPLE1().REDUCE().STOP()
    assert ("call", None, None) in refused(scan_bytes(tmp_path, ops.bytes()))


def test_build_on_an_imported_module_or_class_is_unsafe(tmp_path: Path) -> None:
    ops = Ops(2).GLOBAL("collections", "OrderedDict").EMPTY_DICT().UNICODE("__reduce__")
    ops.UNICODE("eval").SETITEM().BUILD().STOP()
    assert ("build", "collections", "OrderedDict") in refused(scan_bytes(tmp_path, ops.bytes()))


def test_extension_codes_are_refused(tmp_path: Path) -> None:
    ops = Ops(2).EXT1(1).EMPTY_TUPLE().REDUCE().STOP()
    assert ("extension", None, None) in refused(scan_bytes(tmp_path, ops.bytes()))


def test_a_second_pickle_after_a_benign_one_is_scanned(tmp_path: Path) -> None:
    data = pickle.dumps([1, 2], protocol=4) + reduce_to("os", "system", "id", proto=4)
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, data))


def test_a_global_before_a_truncation_is_reported_and_the_file_rejected(tmp_path: Path) -> None:
    data = reduce_to("builtins", "exec", "print(1)", proto=4)[:-3]
    kinds = refused(scan_bytes(tmp_path, data))
    assert ("global", "builtins", "exec") in kinds
    assert ("parse-error", None, None) in kinds


@pytest.mark.parametrize("protocol", range(2, 6))
def test_truncated_valid_pickles_are_rejected(tmp_path: Path, protocol: int) -> None:
    data = pickle.dumps({"a": [1, 2, 3], "b": "text"}, protocol=protocol)
    for cut in (len(data) // 3, len(data) - 1):
        report = scan_bytes(tmp_path, data[:cut], f"cut{cut}")
        assert refused(report) == {("parse-error", None, None)}


def test_trailing_garbage_after_a_pickle_is_rejected(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, pickle.dumps([1], protocol=4) + b"\x00\x01garbage")
    assert ("parse-error", None, None) in refused(report)


def test_memo_reference_never_stored_is_rejected(tmp_path: Path) -> None:
    ops = Ops(4).SHORT_BINUNICODE("os").MEMOIZE().raw(b"h\x03").STOP()
    assert ("parse-error", None, None) in refused(scan_bytes(tmp_path, ops.bytes()))


def test_a_file_that_is_not_a_pickle_is_data(tmp_path: Path) -> None:
    for name, data in {
        "m.json": b'{"flavor": "sklearn"}',
        "m.png": b"\x89PNG\r\n\x1a\n" + os.urandom(64),
        "conda.yaml": b"channels:\n  - conda-forge\n",
        "requirements.txt": b"scikit-learn==1.5.2\nnumpy==2.1\n",
        "code.py": b"import numpy\n\ndef predict(x):\n    return x\n",
        "tree.txt": b"tree\nversion=v4\n",
    }.items():
        report = scan_bytes(tmp_path, data, name)
        assert report.safe, (name, report.findings)
        assert report.files[0].format == "data"


def test_folders_are_scanned_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "model.json").write_text("{}")
    (tmp_path / "pkg" / "sub" / "weights.pkl").write_bytes(reduce_to("os", "system", "x"))
    report = scan_path(tmp_path / "pkg")
    assert [f.file for f in report.findings] == ["sub/weights.pkl"]
    assert {f.file for f in report.files} == {"model.json", "sub/weights.pkl"}
