"""Meshes and layouts written on the command line (rule V-LY-2).

::

    --mesh x=2,y=4                    a 2x4 mesh of simulated devices, dimensions x and y
    --mesh '|x=2,y=4|0,...|...|...'   TensorFlow's mesh string, as Mesh.to_string writes it
    --layout kernel=x,unsharded       one sharding spec per tensor dimension ("-": unsharded)
    --layout step=                    a scalar (no dimensions)

A variable is named by its checkpoint key, by the key without the
``/.ATTRIBUTES/VARIABLE_VALUE`` ending, or by the last part of that when only
one key has it (``kernel`` for ``model/kernel/.ATTRIBUTES/VARIABLE_VALUE``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..mesh import Mesh

__all__ = ["MAX_DEVICES", "VALUE_SUFFIX", "parse_mesh", "parse_layouts", "match_variables"]

#: The most devices a mesh given on the command line may have: building a mesh costs one
#: device name per device, so a typo such as ``x=2000000`` is refused before any is made.
MAX_DEVICES = 1 << 16
#: The ending of a variable's value key in an object-based checkpoint (O-GR-3).
VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
_DIM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=([0-9]{1,9})", re.ASCII)


def parse_mesh(text: str) -> Mesh:
    """``x=2,y=4`` (or TensorFlow's mesh string) -> a single-client mesh of CPU devices."""
    from ..mesh import Mesh, create_mesh

    text = text.strip()
    if "|" in text:
        mesh = Mesh.from_string(text)
        _check_size(mesh.size, text)
        return mesh
    dims: list[tuple[str, int]] = []
    for item in text.split(","):
        match = _DIM.fullmatch(item.strip())
        if match is None:
            raise InvalidArgumentError(
                f"--mesh {text!r}: {item.strip()!r} is not NAME=SIZE (write e.g. --mesh x=2,y=4)"
            )
        name, size = match.group(1), int(match.group(2))
        if size < 1:
            raise InvalidArgumentError(f"--mesh {text!r}: dimension {name} has size 0")
        if any(name == n for n, _ in dims):
            raise InvalidArgumentError(f"--mesh {text!r}: dimension {name} is named twice")
        dims.append((name, size))
    _check_size(math.prod(s for _, s in dims), text)
    return create_mesh(dims, device_type="CPU")


def _check_size(devices: int, text: str) -> None:
    if devices > MAX_DEVICES:
        raise InvalidArgumentError(
            f"--mesh {text!r} has {devices:,} devices; pictures are drawn for at most "
            f"{MAX_DEVICES:,}"
        )


def parse_layouts(items: Iterable[str], mesh: Mesh | None) -> dict[str, list[str]]:
    """``["kernel=x,y", "step="]`` -> ``{"kernel": ["x", "y"], "step": []}``.

    Each spec must be ``unsharded`` or a dimension of ``mesh`` (checked again, with
    TensorFlow's message, when the layout is built).
    """
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, spec = item.rpartition("=")  # a key may hold "=", a spec never does
        if not sep or not name:
            raise InvalidArgumentError(
                f"--layout {item!r} is not VAR=SPEC (write e.g. --layout kernel=x,unsharded)"
            )
        if mesh is None:
            raise InvalidArgumentError(f"--layout {item!r} needs --mesh: the mesh it lays out on")
        if name in out:
            raise InvalidArgumentError(f"--layout gives {name!r} twice")
        specs = [s.strip() for s in spec.split(",")] if spec.strip() else []
        specs = ["unsharded" if s == "-" else s for s in specs]
        for s in specs:
            if s != "unsharded" and s not in mesh.dim_names:
                raise InvalidArgumentError(
                    f"--layout {item!r}: {s!r} is neither 'unsharded' nor a dimension of the "
                    f"mesh ({', '.join(mesh.dim_names)})"
                )
        out[name] = specs
    return out


def match_variables(names: Sequence[str], keys: Sequence[str]) -> dict[str, str]:
    """Each name given on the command line -> the one checkpoint key it means.

    One pass over the keys builds the lookup tables, so matching costs
    O(keys + names) whatever the number of names.
    """
    exact = set(keys)
    stripped: dict[str, list[str]] = {}
    last: dict[str, list[str]] = {}
    for key in keys:
        base = key.removesuffix(VALUE_SUFFIX)
        stripped.setdefault(base, []).append(key)
        last.setdefault(base.rsplit("/", 1)[-1], []).append(key)
    out: dict[str, str] = {}
    for name in names:
        if name in exact:
            out[name] = name
            continue
        found = stripped.get(name) or last.get(name) or []
        if len(found) == 1:
            out[name] = found[0]
        elif not found:
            raise InvalidArgumentError(
                f"--layout names {name!r}, which is not a tensor of the checkpoint "
                "(dtckpt inspect lists their keys)"
            )
        else:
            shown = ", ".join(found[:5]) + (
                f", ... ({len(found)} in all)" if len(found) > 5 else ""
            )
            raise InvalidArgumentError(
                f"--layout names {name!r}, which fits several keys ({shown}): give more of the key"
            )
    return out
