"""The --json schema itself: the bare format name and its subformat, the combined one refused."""

from __future__ import annotations

import jsonschema
import pytest
from conftest import validated


def _inspect_doc(**changes) -> dict:
    doc = {"source": "/d.vmdk", "format": "vmdk", "subformat": "streamOptimized", "virtual_size": 1,
           "disk_size": 1, "table": "none", "backing_chain": [], "partitions": [], "root": None, "warnings": [],
           "machine": None, "disks": [{"id": "d1", "slot": "disk", "path": "/d.vmdk"}], "snapshots": []}
    return {**doc, **changes}


def test_schema_takes_the_bare_name_and_refuses_the_combined_one():
    validated("inspect", _inspect_doc())
    validated("inspect", _inspect_doc(format="raw", subformat=None))
    for bad in ({"format": "vmdk (streamOptimized)"}, {"format": "vpc"}, {"subformat": ""},
                {"subformat": "stream optimized"}, {"extra": 1}, {"disks": []},
                {"machine": {"kind": "hyperv", "definition": "/x", "name": "x", "state": "current"}}):
        with pytest.raises(jsonschema.ValidationError):
            validated("inspect", _inspect_doc(**bad))
