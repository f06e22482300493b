"""What the demo prints: a header per stage, one line per fact, progress bars for the long
parts. Without a console the demo is silent (library use and tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType


class Narrator:
    """Prints the demo's story on ``console`` (or nothing when it is ``None``)."""

    def __init__(self, console: Console | None) -> None:
        self.console = console

    def stage(self, number: int, title: str, why: str) -> None:
        """Start a stage: a rule with its number and title, then one line on its purpose."""
        if self.console is None:
            return
        from rich.rule import Rule

        self.console.print()
        self.console.print(Rule(f"[bold]{number}. {title}", align="left", style="cyan"))
        self.console.print(f"[dim]{why}[/]")

    def say(self, text: str, *, style: str = "") -> None:
        """One fact, indented under the stage."""
        if self.console is not None:
            self.console.print(f"  {text}", style=style, highlight=False, soft_wrap=True)

    def show(self, renderable: RenderableType) -> None:
        """A table or tree, as it is."""
        if self.console is not None:
            self.console.print(renderable)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A progress bar for ``total`` units of work; yields ``advance(n)``."""
        if self.console is None:
            yield _ignore
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        progress = Progress(
            SpinnerColumn(),
            TextColumn("  {task.description:<34}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        with progress:
            task = progress.add_task(description, total=total)

            def advance(n: int = 1) -> None:
                progress.advance(task, n)

            yield advance
            progress.update(task, completed=total)


def _ignore(_n: int = 1, *_args: Any) -> None:
    return None
