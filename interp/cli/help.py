"""How ``interp --help`` and ``interp COMMAND --help`` look: typer's rich help with a
plain usage line (``RUN``, ``RUN...``; not ``{RUN}``), no type beside a flag (it takes no
value) and ``<path>...`` rather than ``<list[Path]>`` beside an argument of several
values. The app registers its commands with :class:`Command` and is a :class:`Group`."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup

from interp.cli.vocabulary import modernize


def _no_flag_types(params: Iterable[Any], ctx: Any) -> None:
    """Show no type (``<bool>``) beside flags, which take no value, and ``<path>...``
    rather than ``<list[Path]>`` beside an argument that takes several values."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        if isinstance(param, TyperArgument) and param.nargs != 1:
            shown = re.sub(r"<list\[(\w+)\]>", lambda m: f"<{m[1].lower()}>...",
                           str(param.display_type(ctx)))
            param.display_type_rich = _fixed_type(shown)


def _fixed_type(text: str) -> Callable[..., str]:
    return lambda ctx=None: text


class Group(TyperGroup):
    """typer's group (``interp`` itself) without types beside its flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _no_flag_types(params, ctx)
        return params


class Command(TyperCommand):
    """typer's command with a plain usage line (``RUN`` and ``RUN...``, not ``{RUN}``),
    no type shown beside a flag, which takes no value, and a note for each deprecated
    option name used (:mod:`interp.cli.vocabulary`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:  # not while completing
            args = modernize(args, (name for param in self.params for name in param.opts))
        return super().parse_args(ctx, args)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _no_flag_types(params, ctx)
        return params

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "").upper()
                if param.nargs != 1 and not name.endswith("..."):
                    name += "..."
                pieces.append(name if param.required else f"[{name}]")
        return pieces
