"""How ``--help`` shows what an option takes: flags nothing, repeatable options one value.

Typer's Rich help (0.29) prints a type beside every option, flags included: ``--quiet <bool>``
reads as if it took a value, and a repeatable ``--action <list[str]>`` as if it took a list.
Its plain help already leaves flags bare; this gives the Rich help the same rule, for every
command at once (the type column is Typer's, so there is no per-option setting for it).
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperOption

_LIST = re.compile(r"^<list\[(.*)\]>$")
_typer_display_type_rich = TyperOption.display_type_rich


def display_type_rich(self: TyperOption, ctx: Any) -> str | None:  # Typer's own click Context
    """The value an option takes as help shows it: none for a flag or a counter, the type of
    one value for an option given once per value."""
    if self.is_flag or self.count:
        return None
    shown = _typer_display_type_rich(self, ctx)
    if shown is None:
        return None
    return _LIST.sub(r"<\1>", shown)


TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
