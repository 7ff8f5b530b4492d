"""The one vocabulary of the command line: each quantity has one option name, the same in
every command (a test reads every command's options and checks it). Two kinds of other
names are accepted for an option, and listed here, once:

- the paper's symbols, where users know them (``--xi`` for ``--corrupt``), accepted
  quietly;
- the names of earlier versions, accepted with a one-line note on stderr naming the
  current one; and ``--json`` without a value (``interp inspect``'s flag once), read as
  ``--json -``.

docs/cli.md lists the vocabulary and these aliases.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from interp.validate import PAPER_SYMBOLS

#: The paper's symbol for a quantity: option -> its alias.
PAPER = {f"--{name.replace('_', '-')}": f"--{symbol}" for name, symbol in PAPER_SYMBOLS.items()}
#: Names of earlier versions: old option -> the option that replaced it.
DEPRECATED = {"--wd": "--weight-decay", "--batch": "--cells-per-task",
              "--llc-batch": "--llc-batch-size"}


def names(option: str) -> tuple[str, ...]:
    """Every name of ``option``: itself, its paper symbol, its deprecated names."""
    return (option, *([PAPER[option]] if option in PAPER else []),
            *(old for old, new in DEPRECATED.items() if new == option))


def modernize(args: Sequence[str], known: Iterable[str]) -> list[str]:
    """The command line ``args`` with a bare ``--json`` (the last word, or followed by
    another option) as ``--json -``; says on stderr, one line each, which deprecated names
    of the command's options (``known``) it uses (before a ``--``)."""
    known, out = set(known), list(args)
    for i, arg in enumerate(args):
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if name in DEPRECATED and name in known:
            sys.stderr.write(f"note: {name} is deprecated; use {DEPRECATED[name]}.\n")
        bare = i + 1 == len(args) or (args[i + 1].startswith("-") and args[i + 1] != "-")
        if arg == "--json" and "--json" in known and bare:
            sys.stderr.write("note: --json alone is deprecated; use --json - (stdout) or "
                             "--json FILE.\n")
            out.insert(i + 1 + len(out) - len(args), "-")
    return out


def complete_op(incomplete: str) -> list[str]:
    """Shell completion of ``--op``: the operations."""
    from interp.config import OPERATIONS

    return [op for op in OPERATIONS if op.startswith(incomplete)]


def complete_model(incomplete: str) -> list[str]:
    """Shell completion of ``--model``: the registered families."""
    from interp.models import configs

    return [name for name in configs() if name.startswith(incomplete)]


def complete_act(incomplete: str) -> list[str]:
    """Shell completion of ``--act``: the named activations and x^2, x^3 (any x^K is
    accepted)."""
    from interp.validate import ACTIVATIONS

    return [act for act in ACTIVATIONS if act.startswith(incomplete)]


#: Value completion by option name, for every command that has the option.
COMPLETION = {"--op": complete_op, "--model": complete_model, "--act": complete_act}
