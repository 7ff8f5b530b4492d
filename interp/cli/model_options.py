"""The model options of ``interp train`` and ``interp sweep``, generated from the
registered families' config fields (:func:`interp.models.setting` gives each its help):
both commands offer the same, and a new family's fields become options with no CLI code.

A field that several families share (``act``, ``width``, ``bias``, ...) is one option; its
help names the families and their defaults. Every option defaults to None: the chosen
family's own default applies, and an option the family lacks is refused in one sentence
(:func:`model_config`). Loads no torch (the configs are plain dataclasses).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import typer

from interp.cli.vocabulary import COMPLETION

MODEL = "Model"
#: Config fields every command sets from another option (``--seed``).
FROM_OTHER_OPTIONS = ("init_seed",)


@dataclass
class FieldOption:
    """One model option: the field's Python type, help, and each family's default."""

    kind: Any
    help: str
    defaults: dict[str, Any]
    n_families: int = 0

    def cli_type(self) -> Any:
        """The option's type on the command line (a tuple is typed as 'a,b,c')."""
        return self.kind if self.kind in (int, float, bool, str) else str

    def option(self, name: str) -> Any:
        flag = "--" + name.replace("_", "-")
        names = [f"{flag}/--no-{flag[2:]}"] if self.kind is bool else [flag]
        return typer.Option(None, *names, help=f"{self.help} {self._defaults_text()}",
                            rich_help_panel=MODEL, show_default=False,
                            autocompletion=COMPLETION.get(flag))

    def _defaults_text(self) -> str:
        by_value: dict[str, list[str]] = {}
        for family, value in self.defaults.items():
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            by_value.setdefault(repr(shown) if shown == "" else str(shown), []).append(family)
        if len(by_value) == 1 and len(self.defaults) == self.n_families:
            return f"[default: {next(iter(by_value))}]"
        parts = [f"{v} ({', '.join(f)})" for v, f in by_value.items()]
        return "[default: " + "; ".join(parts) + "]"


def field_options() -> dict[str, FieldOption]:
    """Every registered family's config fields as options, by field name."""
    from interp.models import configs

    out: dict[str, FieldOption] = {}
    for family, config in configs().items():
        hints = typing.get_type_hints(config)
        for f in dataclasses.fields(config):
            if f.name in FROM_OTHER_OPTIONS or not f.init:
                continue
            kind = hints[f.name]
            kind = tuple if typing.get_origin(kind) is tuple else kind
            default = f.default if f.default is not dataclasses.MISSING else None
            known = out.get(f.name)
            if known is None:
                out[f.name] = FieldOption(kind, f.metadata.get("help", f.name), {})
            elif known.kind != kind:
                raise TypeError(f"model option --{f.name.replace('_', '-')} has type "
                                f"{known.kind} in one family and {kind} in {family!r}; a "
                                "shared field must have one type.")
            out[f.name].defaults[family] = default
    for opt in out.values():
        opt.n_families = len(configs())
    return out


def with_model_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give command ``fn`` (whose signature ends in ``**model_options``) one keyword
    option per model field, right after its ``model`` option."""
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD]
    at = next(i for i, p in enumerate(params) if p.name == "model") + 1
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt.option(name),
                               annotation=opt.cli_type() | None)
             for name, opt in field_options().items()]
    keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params[at:]]
    fn.__signature__ = sig.replace(parameters=params[:at] + added + keyword)  # type: ignore
    return fn


def model_help() -> str:
    """The ``--model`` option's help: the registered families."""
    from interp.models import configs

    return f"Network family: {', '.join(configs())} (their options below)."


def model_config(name: str, options: Mapping[str, Any], seed: int | None = None) -> Any:
    """The config of family ``name`` from the model options given (not None), with
    ``init_seed`` from ``seed``; an option the family lacks is refused in one sentence."""
    from interp.models import config_class

    config = config_class(name)
    hints = typing.get_type_hints(config)
    fields = {f.name for f in dataclasses.fields(config)}
    given = {k: v for k, v in options.items() if v is not None}
    extra = sorted(set(given) - fields)
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise ValueError(f"{flag} must not be given for --model {name} (it has no such "
                         f"setting), got {given[extra[0]]!r}.")
    for key, value in given.items():
        if typing.get_origin(hints[key]) is tuple and isinstance(value, str):
            given[key] = _tuple(key, value, typing.get_args(hints[key])[0])
    if seed is not None and "init_seed" in fields:
        given["init_seed"] = seed
    return config(**given)


def _tuple(key: str, text: str, item: type) -> tuple[Any, ...]:
    try:
        return tuple(item(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"--{key.replace('_', '-')} must be values separated by commas, "
                         f"got {text!r}.") from None
