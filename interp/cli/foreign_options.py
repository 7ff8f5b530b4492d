"""The options of a foreign checkpoint: one set, declared once, for ``interp import`` and
``interp analyze FOREIGN`` (a wrong assumption is corrected the same way in both)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from interp.cli.common import FOREIGN, MAP_HELP, layout_help
from interp.cli.vocabulary import COMPLETION, names

#: Each option's parameter name -> (its flags, metavar, help); the default is None.
OPTIONS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "layout": ((), None, ""),  # help: layout_help(), which asks the registry
    "p": ((), None, "Modulus (default: the file's config, else inferred where the layout "
                    "allows, assumed)."),
    "op": ((), None, "Operation the network computes (default: the file's config, else add, "
                     "assumed)."),
    "mapping": (("--map",), "NAME=KEY", MAP_HELP),
    "act": ((), None, "Activation (default: the file's, else x^2 MLP, relu Transformer, "
                      "assumed)."),
    "loss": ((), None, "Loss the run was trained with, mse or ce (default: the file's config, "
                       "else assumed)."),
    "normalization": ((), None, "A Transformer's LayerNorm: none, LN or LNPre (default: the "
                                "weights and config, else none, assumed)."),
    "scaling": ((), None, "A Transformer's parametrization: lens (TransformerLens's) or paper "
                          "(the paper's code; default: the file's config, else lens, "
                          "assumed)."),
    "eq_token": ((), "ID", "A Transformer's '=' token id, its inputs m, n, = (default: the "
                           "file's config, else p, assumed); the residues are the p smallest "
                           "other ids."),
    "train_indices": ((), "FILE.npy", "The run's training pairs as indices m*p+n (default: "
                                      "the file's train_indices; must agree with them)."),
    "test_indices": ((), "FILE.npy", "Its test pairs (default: the file's, else every pair "
                                     "not trained on)."),
    "steps": ((), "S1,S2,..", "The checkpoints' steps (default: the file's epochs or steps; "
                              "must agree with them)."),
    "train_frac": (names("--train-frac"), None, "Without the run's own split: the train "
                                                "fraction of ours (default 0.5)."),
    "corrupt": (names("--corrupt"), None, "Corrupted fraction of our split's labels "
                                          "(default 0)."),
    "split_seed": ((), None, "Seed of our split and corruption (default 0)."),
}
#: Config fields of a foreign import named after their option (as_options' errors).
FOREIGN_OPTIONS = tuple(name for name in OPTIONS if name != "mapping")
UNSAFE_HELP = ("Let torch.load unpickle arbitrary objects: ONLY for files you trust (it can "
               "run code).")


def option(name: str) -> Any:
    """The typer option ``name`` of :data:`OPTIONS` (``unsafe_pickle``: the flag)."""
    if name == "unsafe_pickle":
        return typer.Option(False, "--unsafe-pickle", help=UNSAFE_HELP, rich_help_panel=FOREIGN)
    flags, metavar, text = OPTIONS[name]
    return typer.Option(None, *flags, metavar=metavar, help=text or layout_help(),
                        rich_help_panel=FOREIGN,
                        autocompletion=COMPLETION.get("--" + name.replace("_", "-")))


def foreign_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of :func:`interp.import_checkpoint` (and ``interp.Run``) from a
    command's parameters ``values`` (its ``locals()``)."""
    from interp.models.layout import parse_map

    out = {k: values[k] for k in OPTIONS if k not in ("mapping", "split_seed", "steps")}
    return out | {"layout": values["layout"] or "auto", "mapping": parse_map(values["mapping"]),
                  "seed": values["split_seed"], "steps": parse_steps(values["steps"]),
                  "allow_pickle": values["unsafe_pickle"]}


def parse_steps(text: str | None, option: str = "--steps") -> list[int] | None:
    """``--steps 0,100,200`` as a list (None when not given); a bad entry is a ValueError
    naming ``option``."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"{option} must be integers separated by commas, got {text!r}.") \
            from None
