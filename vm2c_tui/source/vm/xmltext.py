"""XML from elsewhere, read with defusedxml (no entities, no external references), by local
names so that namespace prefixes do not matter."""

from __future__ import annotations

from pathlib import Path

from vm2c_tui.errors import Vm2cError

MAX_XML = 16 << 20


def parse(path: Path, data: bytes | None = None):
    from defusedxml import ElementTree
    from defusedxml.common import DefusedXmlException

    try:
        if data is None:
            with open(path, "rb") as f:
                data = f.read(MAX_XML + 1)
        if len(data) > MAX_XML:
            raise Vm2cError(f"{path}: more than {MAX_XML >> 20} MiB of XML; not a VM definition")
        return ElementTree.fromstring(data)
    except DefusedXmlException as exc:
        raise Vm2cError(f"{path}: refusing XML with {type(exc).__name__} (entities or external references)") from None
    except ElementTree.ParseError as exc:
        raise Vm2cError(f"{path}: not well-formed XML ({exc})") from None


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def kids(el, name: str) -> list:
    return [c for c in el if local(c.tag) == name]


def kid(el, name: str):
    found = kids(el, name)
    return found[0] if found else None


def attr(el, name: str, default: str = "") -> str:
    for k, v in el.attrib.items():
        if local(k) == name:
            return v
    return default


def text(el, name: str) -> str:
    c = kid(el, name)
    return (c.text or "").strip() if c is not None else ""
