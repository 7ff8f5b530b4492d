"""Validation helpers shared by the configs: each failure is one sentence naming the field,
what was expected and what was found."""

from __future__ import annotations

import functools
import math
import os
import re
import stat
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

#: The paper's symbol of each data quantity: interp's name (the ``DataConfig`` field) ->
#: symbol. Every option, file key, column and label uses interp's name; the command line
#: accepts the symbol quietly, and files written before interp used one name (sweep
#: configs, sweep folders) are read with the symbol as the key. (Here, not in
#: ``interp.config``, so that the command line reads it without loading torch.)
PAPER_SYMBOLS = {"corrupt": "xi", "train_frac": "alpha"}
F = TypeVar("F", bound=Callable[..., Any])


def paper_keywords(fn: F) -> F:
    """``fn``, whose arguments use interp's names (``corrupt``), also called with the
    paper's symbols as keywords (``xi=``), their names before interp used one name: with a
    DeprecationWarning naming the current one."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for name, symbol in PAPER_SYMBOLS.items():
            if symbol in kwargs:
                if name in kwargs:
                    raise TypeError(f"{fn.__name__}() got both {name}= and {symbol}=, "
                                    "its earlier name; give one.")
                warnings.warn(f"{fn.__name__}(): {symbol}= is deprecated; use {name}=.",
                              DeprecationWarning, stacklevel=2)
                kwargs[name] = kwargs.pop(symbol)
        return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]


#: Activation names: ``relu``, ``gelu`` (exact, erf), ``gelu_new`` (tanh approximation, as
#: TransformerLens names it), ``silu``, ``tanh`` or ``x^K`` with K a positive integer.
ACT_RE = re.compile(r"^(relu|gelu|gelu_new|silu|tanh|x\^([1-9][0-9]*))$")
#: The named activations and the powers the paper uses, as shell completion offers them.
ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu", "tanh", "x^2", "x^3")


def fail(name: str, expected: str, found: Any) -> None:
    raise ValueError(f"{name} must be {expected}, got {found!r}.")


#: The largest seed torch's generators take (an unsigned 64-bit integer).
MAX_SEED = 2**64 - 1


def check_int(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(name, f"an integer >= {minimum}", value)
    if maximum is not None and value > maximum:
        fail(name, f"an integer in [{minimum}, {maximum}]", value)


def check_seed(name: str, value: Any) -> None:
    check_int(name, value, 0, MAX_SEED)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if isinstance(value, bool) or value not in choices:
        fail(name, "one of " + ", ".join(str(c) for c in choices), value)


def is_finite_number(value: Any) -> bool:
    """A real number (int or float, not bool) that is neither NaN nor infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def check_range(name: str, value: Any, lo: float, hi: float, *, hi_open: bool) -> None:
    ok = is_finite_number(value) and lo <= value and (value < hi if hi_open else value <= hi)
    if not ok:
        fail(name, f"a number in [{lo}, {hi}{')' if hi_open else ']'}", value)


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        fail(name, "true or false", value)


def check_positive(name: str, value: Any) -> None:
    if not is_finite_number(value) or not value > 0:
        fail(name, "a positive finite number", value)


def check_finite(name: str, value: Any) -> None:
    if not is_finite_number(value):
        fail(name, "a finite number", value)


def check_nonnegative(name: str, value: Any) -> None:
    if not is_finite_number(value) or not value >= 0:
        fail(name, "a finite number >= 0", value)


def check_act(value: Any) -> None:
    if not isinstance(value, str) or not ACT_RE.match(value):
        fail("act", "'relu', 'gelu', 'gelu_new', 'silu', 'tanh' or 'x^K' with K a positive "
             "integer", value)


def act_power(act: str) -> int | None:
    """The exponent K of an ``x^K`` activation, else None."""
    match = ACT_RE.match(act)
    return int(match.group(2)) if match and match.group(2) else None


def file_kind(mode: int) -> str:
    """What a ``stat`` mode says a path is, in words ("a FIFO", "a character device")."""
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISLNK, "a symbolic link"))
    return next((word for test, word in kinds if test(mode)), "not a regular file")


def check_regular_input(path: Any, what: str) -> None:
    """Refuse an input that exists but is neither a regular file nor a folder (a FIFO, a
    device, a socket), which reading could block on or never finish; missing paths and
    folders are left to the caller's own message. A link to a regular file is fine."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{what} {str(path)!r} must be a regular file, but it is "
                         f"{file_kind(mode)}.")
