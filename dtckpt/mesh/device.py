"""Device names, parsed as TensorFlow's ``DeviceSpec`` parses them (rule M-DV-1).

A device name is ``/``-separated parts; each part is one of::

    job:<name>   replica:<int>   task:<int>   device:<TYPE>:<index|*>   <type>:<index|*>

so ``/job:localhost/replica:0/task:0/device:CPU:3``, ``/cpu:3`` and ``CPU:3``
all name CPU 3 (the short ``<type>:<index>`` form upper-cases a known type).
``tensorflow/python/framework/device_spec.py`` is the authority.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InvalidArgumentError

__all__ = ["DeviceSpec", "KNOWN_DEVICE_TYPES"]

#: The types the short ``<type>:<index>`` form accepts (TensorFlow's registered device types).
KNOWN_DEVICE_TYPES = frozenset({"CPU", "GPU", "TPU", "EPU", "CUSTOM"})
#: Longer names are refused before any parsing work: no device name is this long.
_MAX_NAME = 4096


@dataclass(frozen=True)
class DeviceSpec:
    """``DeviceSpec(job=None, replica=None, task=None, device_type=None, device_index=None)``."""

    job: str | None = None
    replica: int | None = None
    task: int | None = None
    device_type: str | None = None
    device_index: int | None = None

    @classmethod
    def from_string(cls, spec: str) -> DeviceSpec:
        """Parse a device name; a malformed one is an :class:`InvalidArgumentError`."""
        text = str(spec)
        if len(text) > _MAX_NAME:
            raise InvalidArgumentError(f"device name of {len(text)} characters is too long")
        job: str | None = None
        replica = task = index = None
        kind: str | None = None
        for part in text.split("/"):
            fields = part.split(":")
            count = len(fields)
            if count == 2 and fields[0] == "job":
                job = fields[1]
            elif count == 2 and fields[0] == "replica":
                replica = _number(fields[1], text)
            elif count == 2 and fields[0] == "task":
                task = _number(fields[1], text)
            elif count in (1, 2) and fields[0].upper() in KNOWN_DEVICE_TYPES:
                kind = _one_type(kind, fields[0].upper(), text)
                index = _number(fields[1], text) if count == 2 and fields[1] != "*" else None
            elif count == 3 and fields[0] == "device":
                kind = _one_type(kind, fields[1], text)
                index = _number(fields[2], text) if fields[2] != "*" else None
            elif fields[0]:
                raise InvalidArgumentError(
                    f"Unknown attribute '{fields[0]}' is encountered while parsing the device "
                    f"spec: '{text}'."
                )
        return cls(job, replica, task, kind, index)

    def to_string(self) -> str:
        """TensorFlow's spelling, e.g. ``/job:localhost/replica:0/task:0/device:CPU:0``."""
        out = ""
        if self.job is not None:
            out += f"/job:{self.job}"
        if self.replica is not None:
            out += f"/replica:{self.replica}"
        if self.task is not None:
            out += f"/task:{self.task}"
        if self.device_type is not None:
            index = "*" if self.device_index is None else str(self.device_index)
            out += f"/device:{self.device_type}:{index}"
        return out

    def make_merged_spec(self, other: DeviceSpec) -> DeviceSpec:
        """This spec with every field ``other`` sets replaced by ``other``'s value."""
        return replace(
            self,
            **{k: v for k, v in vars(other).items() if v is not None},
        )

    def __str__(self) -> str:
        return self.to_string()


def _number(text: str, whole: str) -> int:
    # TensorFlow calls int(); only plain ASCII decimal numbers of a sane length pass here.
    body = text[1:] if text[:1] in "+-" else text
    if not body.isascii() or not body.isdigit() or len(body) > 19:
        raise InvalidArgumentError(f"invalid number {text!r} in device spec {whole!r}")
    return int(text)


def _one_type(current: str | None, new: str, whole: str) -> str:
    if current is not None:
        raise InvalidArgumentError(
            f"Multiple device types are not allowed while parsing the device spec: {whole}."
        )
    return new
