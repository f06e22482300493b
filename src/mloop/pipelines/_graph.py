"""Steps, pipelines and the DAG their calls build.

Calling steps inside a pipeline function does not run them: each call records a node and
returns an :class:`Output`, a lazy reference to what the step will produce. Passing an
``Output`` to another step is an edge. A step can only consume outputs that already
exist when it is called, so the graph is acyclic by construction, and its order of calls
is a valid order of execution.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import json
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from mloop.errors import InvalidInput

P = ParamSpec("P")
R = TypeVar("R")


class StopPipeline(Exception):
    """Raise inside a step to end the pipeline on purpose, e.g. when a gate refuses.

    The execution ends ``stopped`` with ``str(exc)`` as its reason; the step is not retried
    and nothing downstream of it runs.
    """


@dataclass(frozen=True)
class Resources:
    """What one execution of a step needs: the Ray executor reserves it for the step's
    task (``memory_mb`` in MiB); the in-process and process executors do not enforce it."""

    cpus: float = 1
    gpus: float = 0
    memory_mb: int | None = None

    def __post_init__(self) -> None:
        if self.cpus < 0 or self.gpus < 0 or (self.memory_mb is not None and self.memory_mb <= 0):
            raise InvalidInput(
                f"step resources must be positive, got cpus={self.cpus} gpus={self.gpus} "
                f"memory_mb={self.memory_mb}"
            )


class Step(Generic[P, R]):
    """A typed function that runs as one tracked, cached unit of a pipeline.

    Called inside a pipeline it returns an :class:`Output`; called anywhere else it is the
    plain function.
    """

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        cache: bool = True,
        retries: int = 0,
        backoff_s: float = 1.0,
        resources: Resources | None = None,
    ) -> None:
        if retries < 0 or backoff_s < 0:
            raise InvalidInput(f"retries ({retries}) and backoff_s ({backoff_s}) must be >= 0")
        self.fn = fn
        self.name = name or fn.__name__
        self.cache = cache
        self.retries = retries
        self.backoff_s = backoff_s
        self.resources = resources or Resources()
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @functools.cached_property
    def hints(self) -> dict[str, Any]:
        """The function's type hints, resolved (``from __future__ import annotations``)."""
        try:
            return typing.get_type_hints(self.fn)
        except Exception as exc:  # a hint naming something the module cannot resolve
            raise InvalidInput(
                f"the type hints of step {self.name!r} do not resolve: {exc}; import the "
                "types the hints name at module level"
            ) from None

    @property
    def ref(self) -> str:
        """``module:qualname``: how another process imports this step."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    @functools.cached_property
    def arity(self) -> int | None:
        """The number of outputs when the return hint is a fixed ``tuple[...]``."""
        returned = self.hints.get("return")
        if typing.get_origin(returned) is tuple:
            args = typing.get_args(returned)
            if args and args[-1] is not Ellipsis:
                return len(args)
        return None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        graph = _building.get()
        if graph is None:
            return self.fn(*args, **kwargs)
        return graph.add(self, args, kwargs)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Step {self.name} ({self.ref})>"


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    backoff_s: float = 1.0,
    resources: Resources | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    backoff_s: float = 1.0,
    resources: Resources | None = None,
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Make ``fn`` a pipeline step: ``@step`` or ``@step(retries=2, resources=...)``.

    ``cache=False`` runs it every time; ``retries`` re-runs a failed execution after
    ``backoff_s``, then twice that, and so on.
    """

    def wrap(f: Callable[P, R]) -> Step[P, R]:
        return Step(
            f, name=name, cache=cache, retries=retries, backoff_s=backoff_s, resources=resources
        )

    return wrap if fn is None else wrap(fn)


class Pipeline(Generic[P]):
    """A function whose step calls define a DAG. Calling it runs it (in-process by
    default); :func:`mloop.pipelines.run` takes options."""

    def __init__(self, fn: Callable[P, Any], *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.signature = inspect.signature(fn)
        functools.update_wrapper(self, fn)

    @property
    def ref(self) -> str:
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        graph = _building.get()
        if graph is not None:  # a pipeline inside a pipeline: its steps join the graph
            return self.fn(*args, **kwargs)
        from mloop.pipelines._runner import run

        bound = self.signature.bind(*args, **kwargs)
        return run(self, dict(bound.arguments))

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} ({self.ref})>"


@overload
def pipeline(fn: Callable[P, Any], /) -> Pipeline[P]: ...
@overload
def pipeline(*, name: str | None = None) -> Callable[[Callable[P, Any]], Pipeline[P]]: ...
def pipeline(
    fn: Callable[P, Any] | None = None, /, *, name: str | None = None
) -> Pipeline[P] | Callable[[Callable[P, Any]], Pipeline[P]]:
    """Make ``fn`` a pipeline: its parameters are the pipeline's parameters (plain JSON
    values), its step calls the DAG, and what it returns (an output or a dict of them)
    the execution's outputs."""

    def wrap(f: Callable[P, Any]) -> Pipeline[P]:
        return Pipeline(f, name=name)

    return wrap if fn is None else wrap(fn)


# -- the graph --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """What step ``node`` will return (``index`` picks one of a tuple's items, ``keys``
    items of a dict). Pass it to another step; it is resolved just before that step runs."""

    node: str
    index: int | None = None
    keys: tuple[str | int, ...] = ()

    def __getitem__(self, key: str | int) -> Output:
        return Output(self.node, self.index, (*self.keys, key))

    def __iter__(self) -> Iterator[Output]:
        raise InvalidInput(
            f"the output of step {self.node!r} is one value; to unpack it, annotate the "
            "step's return as a fixed tuple, e.g. -> tuple[pd.DataFrame, pd.DataFrame]"
        )

    def __bool__(self) -> bool:
        raise InvalidInput(
            f"the output of step {self.node!r} is not known while the pipeline is built; "
            "branch inside a step, or raise StopPipeline there to end the run"
        )

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "index": self.index, "keys": list(self.keys)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Output:
        return cls(data["node"], data.get("index"), tuple(data.get("keys", ())))


@dataclass
class Node:
    """One call of a step: constant arguments (``params``) and lazy ones (``inputs``)."""

    name: str
    step: Step[Any, Any]
    params: dict[str, Any]
    inputs: dict[str, Output]

    @property
    def upstream(self) -> list[str]:
        return sorted({o.node for o in self.inputs.values()})


@dataclass
class Graph:
    """The nodes of one pipeline, in call order."""

    nodes: dict[str, Node] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)

    def add(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidInput(
                f"step {step.name!r} called with the wrong arguments: {exc}"
            ) from None
        bound.apply_defaults()
        name = step.name
        n = 2
        while name in self.nodes:
            name, n = f"{step.name}_{n}", n + 1
        params: dict[str, Any] = {}
        inputs: dict[str, Output] = {}
        for key, value in bound.arguments.items():
            kind = step.signature.parameters[key].kind
            if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                raise InvalidInput(
                    f"step {step.name!r} takes *args/**kwargs; name each parameter so it can "
                    "be cached and passed by reference"
                )
            if isinstance(value, Output):
                if value.node not in self.nodes:
                    raise InvalidInput(f"{key!r} of step {name!r} refers to an unknown step")
                inputs[key] = value
            else:
                params[key] = _constant(name, key, value)
        self.nodes[name] = Node(name, step, params, inputs)
        arity = step.arity
        out = Output(name)
        return tuple(Output(name, i) for i in range(arity)) if arity is not None else out

    def downstream(self, name: str) -> set[str]:
        """Every node that (transitively) consumes ``name``'s outputs."""
        found: set[str] = set()
        for node in self.nodes.values():  # call order is topological
            if any(up == name or up in found for up in node.upstream):
                found.add(node.name)
        return found


def _constant(node: str, key: str, value: Any) -> Any:
    """A step argument that is not an output must be a plain JSON value: it is part of the
    cache key and is stored with the execution."""
    ref = getattr(value, "ref", None)
    if type(value).__name__ == "DatasetVersion" and isinstance(ref, str):
        return ref  # a dataset version is passed by its name@version
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise InvalidInput(
            f"argument {key!r} of step {node!r} is a {type(value).__name__}, not a plain JSON "
            "value; pass data as a dataset reference ('name@version') or as another step's "
            "output"
        ) from None


_building: contextvars.ContextVar[Graph | None] = contextvars.ContextVar(
    "mloop_pipeline_graph", default=None
)


def build(pipe: Pipeline[Any], params: dict[str, Any]) -> Graph:
    """Call the pipeline function with ``params`` and collect the DAG its step calls make."""
    unknown = set(params) - set(pipe.signature.parameters)
    if unknown and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in pipe.signature.parameters.values()
    ):
        raise InvalidInput(
            f"pipeline {pipe.name!r} has no parameter {', '.join(sorted(unknown))}; it takes "
            f"{', '.join(pipe.signature.parameters) or 'none'}"
        )
    try:
        bound = pipe.signature.bind(**params)
    except TypeError as exc:
        raise InvalidInput(f"pipeline {pipe.name!r}: {exc}; pass it with --param") from None
    graph = Graph()
    token = _building.set(graph)
    try:
        returned = pipe.fn(*bound.args, **bound.kwargs)
    finally:
        _building.reset(token)
    graph.outputs = _outputs_of(pipe.name, returned)
    if not graph.nodes:
        raise InvalidInput(f"pipeline {pipe.name!r} calls no step; decorate its steps with @step")
    return graph


def _outputs_of(name: str, returned: Any) -> dict[str, Output]:
    if returned is None:
        return {}
    if isinstance(returned, Output):
        return {"output": returned}
    if isinstance(returned, tuple) and all(isinstance(o, Output) for o in returned):
        return {str(i): o for i, o in enumerate(returned)}
    if isinstance(returned, dict) and all(isinstance(o, Output) for o in returned.values()):
        return {str(k): o for k, o in returned.items()}
    raise InvalidInput(
        f"pipeline {name!r} returned a {type(returned).__name__}; return a step's output, a "
        "tuple or a dict of them, or nothing"
    )


def import_ref(ref: str, kind: type[Any]) -> Any:
    """The object ``ref`` ("package.module:function") names, checked to be a ``kind``."""
    module_name, sep, qualname = ref.partition(":")
    if not sep or not module_name or not qualname:
        raise InvalidInput(f"{ref!r} is not a reference like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(
            f"cannot import {module_name!r} for {ref!r}: {exc}; check PYTHONPATH"
        ) from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise InvalidInput(f"module {module_name!r} has no {qualname!r} (from {ref!r})")
        obj = getattr(obj, part)
    if not isinstance(obj, kind):
        raise InvalidInput(
            f"{ref!r} is a {type(obj).__name__}, not a {kind.__name__}; decorate it with "
            f"@mloop.{kind.__name__.lower()}"
        )
    return obj
