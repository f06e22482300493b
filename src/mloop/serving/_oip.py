"""The Open Inference Protocol (KServe V2) codec: request bodies to NumPy and back.

Tensors go straight from the JSON parser (orjson) into NumPy arrays, one conversion per
tensor: nothing is validated element by element in Python, so a 1,000-row request costs
about what parsing its JSON costs. The binary tensor data extension (what
``tritonclient.http`` sends by default) is read zero-copy with ``np.frombuffer``.

Every refusal is an :class:`~mloop.errors.InvalidInput` naming the field
(``inputs[0].shape``), so a client sees a 400 telling it what to fix. This module knows
nothing of models: :mod:`._validation` checks the decoded tensors against a signature.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from mloop.errors import InvalidInput

HEADER_LENGTH = "inference-header-content-length"
"""The binary extension's header: byte length of the JSON part of the body."""

# Little-endian on the wire whatever the machine is.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
DATATYPES: tuple[str, ...] = tuple(DTYPES)
_BY_KIND = {
    np.dtype(t).str.lstrip("<|="): name
    for name, t in DTYPES.items()
    if name not in ("BYTES", "BOOL")
}
_MAX_ELEMENTS = 1 << 31  # a shape claiming more is a mistake or an attack, never a request
_LENGTH = struct.Struct("<I")


@dataclass(slots=True)
class Tensor:
    """One named tensor of a request or response."""

    name: str
    datatype: str
    data: np.ndarray[Any, Any]
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request. ``outputs`` is None when the client named none (it
    then gets every default output); ``binary_output`` is the request-level wish."""

    inputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None
    binary_output: bool = False

    def output_binary(self, name: str) -> bool:
        for wanted in self.outputs or ():
            if wanted.name == name:
                return wanted.binary
        return self.binary_output


def datatype_of(array: np.ndarray[Any, Any]) -> str:
    """The OIP datatype for a NumPy array (strings and objects are ``BYTES``)."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "OUSM":
        return "BYTES"
    name = _BY_KIND.get(array.dtype.newbyteorder("<").str.lstrip("<|="))
    if name is None:
        raise InvalidInput(f"arrays of dtype {array.dtype} have no OIP datatype")
    return name


# -- decoding ---------------------------------------------------------------------------------


def decode_request(body: bytes, header_length: str | int | None = None) -> InferRequest:
    """Decode an inference request body (JSON, or JSON + binary tensors when
    ``header_length``, the ``Inference-Header-Content-Length`` header, is given)."""
    binary = b""
    if header_length is not None:
        size = _header_length(header_length, len(body))
        body, binary = body[:size], body[size:]
    document = _loads(body)
    if not isinstance(document, dict):
        raise InvalidInput("the request body must be a JSON object with an 'inputs' list")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = _parameters(document.get("parameters"), "parameters")
    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    view = memoryview(binary)
    offset = 0
    inputs: list[Tensor] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_inputs):
        where = f"inputs[{index}]"
        tensor, used = _decode_input(raw, where, view, offset)
        if tensor.name in seen:
            raise InvalidInput(f"{where}.name: input {tensor.name!r} is given twice")
        seen.add(tensor.name)
        offset += used
        inputs.append(tensor)
    if offset != len(binary):
        raise InvalidInput(
            f"the body has {len(binary)} bytes after the JSON header but the inputs' "
            f"binary_data_size add up to {offset}"
        )
    outputs = _requested_outputs(document.get("outputs"))
    binary_output = _flag(
        parameters.get("binary_data_output", False), "parameters.binary_data_output"
    )
    return InferRequest(inputs, request_id, parameters, outputs, binary_output)


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None


def _header_length(value: str | int, body_size: int) -> int:
    try:
        size = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"Inference-Header-Content-Length must be a byte count, got {value!r}"
        ) from None
    if not 0 < size <= body_size:
        raise InvalidInput(
            f"Inference-Header-Content-Length is {size} but the body has {body_size} bytes"
        )
    return size


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be an object of name → value")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} must be true or false, got {value!r}")
    return value


def _requested_outputs(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput("'outputs' must be a list of {\"name\": …} objects")
    found = []
    for index, raw in enumerate(value):
        where = f"outputs[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise InvalidInput(f"{where} must be an object with a string 'name'")
        parameters = _parameters(raw.get("parameters"), f"{where}.parameters")
        binary = _flag(parameters.get("binary_data", False), f"{where}.parameters.binary_data")
        found.append(RequestedOutput(raw["name"], binary))
    return found


def _decode_input(raw: Any, where: str, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where} must be an object with name, shape, datatype and data")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"{where}.name must be a non-empty string")
    where = f"{where} ({name!r})"
    datatype = raw.get("datatype")
    if not isinstance(datatype, str) or datatype not in DTYPES:
        raise InvalidInput(
            f"{where}.datatype {datatype!r} is not an OIP datatype; use one of "
            f"{', '.join(DATATYPES)}"
        )
    shape = _shape(raw.get("shape"), f"{where}.shape")
    parameters = _parameters(raw.get("parameters"), f"{where}.parameters")
    size = parameters.get("binary_data_size")
    count = math.prod(shape)
    if size is not None:
        if "data" in raw:
            raise InvalidInput(f"{where} has both 'data' and parameters.binary_data_size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"{where}.parameters.binary_data_size must be a byte count")
        if offset + size > len(binary):
            raise InvalidInput(
                f"{where}.parameters.binary_data_size is {size} but only "
                f"{len(binary) - offset} bytes of binary data are left"
            )
        chunk = binary[offset : offset + size]
        array = _from_binary(chunk, datatype, count, where)
        return Tensor(name, datatype, array.reshape(shape), parameters), size
    if "data" not in raw:
        raise InvalidInput(f"{where} has no 'data' (nor parameters.binary_data_size)")
    array = _from_json(raw["data"], datatype, where)
    if array.size != count:
        raise InvalidInput(
            f"{where}.data has {array.size} elements but shape {shape} needs {count}"
        )
    return Tensor(name, datatype, array.reshape(shape), parameters), 0


def _shape(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise InvalidInput(f"{where} must be a list of non-negative integers, got {value!r}")
    if math.prod(value) > _MAX_ELEMENTS:
        raise InvalidInput(f"{where} {value} has more than {_MAX_ELEMENTS} elements")
    return value


def _from_json(data: Any, datatype: str, where: str) -> np.ndarray[Any, Any]:
    where = f"{where}.data"
    if not isinstance(data, list):
        data = [data]  # a scalar for a shape-[1] or shape-[] tensor
    if datatype == "BYTES":
        return _bytes_from_json(data, where)
    try:
        found = np.asarray(data)
    except ValueError:
        raise InvalidInput(
            f"{where} is ragged: nested lists must all have the same length"
        ) from None
    kind = found.dtype.kind
    if found.size == 0:
        return np.empty(found.shape, dtype=DTYPES[datatype])
    if kind == "O" and datatype.startswith("FP"):
        found = _with_nulls(found, where)  # JSON has no NaN: null stands for a missing value
        kind = "f"
    if kind not in "biuf":
        raise InvalidInput(f"{where} must hold only {_json_kind(datatype)} for datatype {datatype}")
    target = DTYPES[datatype]
    if datatype == "BOOL":
        if kind != "b":
            raise InvalidInput(f"{where} must hold only true/false for datatype BOOL")
        return found
    if target.kind in "iu":
        info = np.iinfo(target)
        outside = InvalidInput(
            f"{where} holds values outside the {datatype} range [{info.min}, {info.max}]"
        )
        if kind == "f":
            if not np.all(np.isfinite(found)) or not np.array_equal(found, np.trunc(found)):
                raise InvalidInput(f"{where} holds non-integer numbers for datatype {datatype}")
            if found.min() < info.min or found.max() > info.max:
                raise outside
        try:  # from the parsed Python ints again: exact where a float64 view would round
            return np.array(data, dtype=target)
        except (OverflowError, ValueError):
            raise outside from None
    if target.kind == "f" and target.itemsize < found.dtype.itemsize:
        with np.errstate(over="ignore"):
            narrowed = found.astype(target)
        if (np.isinf(narrowed) & np.isfinite(found)).any():  # would round to ±inf
            top = np.finfo(target).max
            raise InvalidInput(f"{where} holds values beyond the {datatype} range (±{top:g})")
        return narrowed
    return found.astype(target, copy=False)


def _with_nulls(found: np.ndarray[Any, Any], where: str) -> np.ndarray[Any, Any]:
    flat = found.reshape(-1).tolist()
    if not all(v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in flat):
        raise InvalidInput(f"{where} must hold only numbers (or null for a missing value)")
    return np.array([math.nan if v is None else v for v in flat], dtype=np.float64).reshape(
        found.shape
    )


def _json_kind(datatype: str) -> str:
    return "true/false" if datatype == "BOOL" else "numbers"


def _bytes_from_json(data: list[Any], where: str) -> np.ndarray[Any, Any]:
    flat: list[Any] = []
    _flatten_strings(data, flat, where)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array


def _flatten_strings(data: list[Any], out: list[Any], where: str) -> None:
    for item in data:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, list):
            _flatten_strings(item, out, where)
        else:
            raise InvalidInput(f"{where} must hold only strings for datatype BYTES")


def _from_binary(chunk: memoryview, datatype: str, count: int, where: str) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        return _bytes_from_binary(chunk, count, where)
    dtype = DTYPES[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise InvalidInput(
            f"{where}.parameters.binary_data_size is {len(chunk)} but shape needs "
            f"{count} × {dtype.itemsize} = {count * dtype.itemsize} bytes for {datatype}"
        )
    if datatype == "BOOL":
        flags: np.ndarray[Any, Any] = np.frombuffer(chunk, dtype=np.uint8) != 0
        return flags
    array = np.frombuffer(chunk, dtype=dtype)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def _bytes_from_binary(chunk: memoryview, count: int, where: str) -> np.ndarray[Any, Any]:
    items: list[bytes] = []
    offset, end = 0, len(chunk)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInput(f"{where}: a BYTES element's 4-byte length is cut off")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInput(f"{where}: a BYTES element says {length} bytes but fewer remain")
        items.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise InvalidInput(f"{where} holds {len(items)} BYTES elements but its shape needs {count}")
    array = np.empty(count, dtype=object)
    array[:] = items
    return array


# -- encoding ---------------------------------------------------------------------------------


def tensor_json(tensor: Tensor) -> dict[str, Any]:
    """A tensor as OIP JSON (flat row-major ``data``)."""
    found: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": tensor.shape,
        "data": _json_data(tensor.data, tensor.datatype),
    }
    if tensor.parameters:
        found["parameters"] = tensor.parameters
    return found


def _json_data(array: np.ndarray[Any, Any], datatype: str) -> Any:
    flat = array.reshape(-1)
    if datatype == "BYTES":
        return [_text(v) for v in flat.tolist()]
    if datatype == "FP16":
        return flat.astype(np.float32)  # orjson writes float16 too, but not every version
    return np.ascontiguousarray(flat)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                "a BYTES output is not UTF-8 text and cannot go in JSON; ask for it with "
                "parameters.binary_data = true"
            ) from None
    return value if isinstance(value, str) else str(value)


def binary_bytes(array: np.ndarray[Any, Any], datatype: str) -> bytes:
    """A tensor's bytes under the binary extension: little-endian, row-major; BYTES as
    4-byte-length-prefixed elements."""
    if datatype == "BYTES":
        parts = []
        for value in array.reshape(-1).tolist():
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()


def _dumps(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def _with_binary(
    document: dict[str, Any], key: str, tensors: Sequence[tuple[Tensor, bool]]
) -> tuple[bytes, int | None]:
    parts: list[bytes] = []
    entries = []
    for tensor, binary in tensors:
        if binary:
            raw = binary_bytes(tensor.data, tensor.datatype)
            parts.append(raw)
            entry: dict[str, Any] = {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": tensor.shape,
                "parameters": {**tensor.parameters, "binary_data_size": len(raw)},
            }
        else:
            entry = tensor_json(tensor)
        entries.append(entry)
    document[key] = entries
    header = _dumps(document)
    if not parts:
        return header, None
    return header + b"".join(parts), len(header)


def encode_response(
    model_name: str,
    model_version: str | None,
    request_id: str,
    outputs: Sequence[tuple[Tensor, bool]],
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when some output is binary (send
    it as ``Inference-Header-Content-Length``). ``outputs`` pairs each tensor with
    whether it goes as binary."""
    document: dict[str, Any] = {"model_name": model_name}
    if model_version is not None:
        document["model_version"] = model_version
    document["id"] = request_id
    if parameters:
        document["parameters"] = dict(parameters)
    return _with_binary(document, "outputs", outputs)


def encode_request(
    inputs: Sequence[Tensor],
    *,
    binary: bool = False,
    request_id: str | None = None,
    outputs: Sequence[RequestedOutput] | None = None,
    binary_output: bool = False,
) -> tuple[bytes, int | None]:
    """A request body as a client builds it (the tests and the benchmark use this)."""
    document: dict[str, Any] = {}
    if request_id is not None:
        document["id"] = request_id
    if binary_output:
        document["parameters"] = {"binary_data_output": True}
    if outputs is not None:
        document["outputs"] = [
            {"name": o.name, **({"parameters": {"binary_data": True}} if o.binary else {})}
            for o in outputs
        ]
    return _with_binary(document, "inputs", [(t, binary) for t in inputs])


def decode_response(body: bytes, header_length: str | int | None = None) -> dict[str, Any]:
    """A response body with each output's ``data`` as a NumPy array of its shape (the
    client side of :func:`encode_response`, for tests and the benchmark)."""
    binary = b""
    if header_length is not None:
        size = _header_length(header_length, len(body))
        body, binary = body[:size], body[size:]
    document = _loads(body)
    offset = 0
    view = memoryview(binary)
    for output in document.get("outputs", []):
        shape = output["shape"]
        found = (output.get("parameters") or {}).get("binary_data_size")
        if found is None:
            data = _from_json(output["data"], output["datatype"], output["name"])
        else:
            size = int(found)
            data = _from_binary(
                view[offset : offset + size], output["datatype"], math.prod(shape), output["name"]
            )
            offset += size
        output["data"] = data.reshape(shape)
    return dict(document)


__all__ = [
    "DATATYPES",
    "DTYPES",
    "HEADER_LENGTH",
    "InferRequest",
    "RequestedOutput",
    "Tensor",
    "binary_bytes",
    "datatype_of",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "tensor_json",
]
