"""--json documents scripts can compare: `format` is the bare name, the variant is `subformat`,
and docs/json.schema.json (the description in docs/json.md) rejects anything else."""

from __future__ import annotations

import subprocess

import jsonschema
import pytest
from conftest import validated

from vm2c_tui.source.identify import identify

# qemu-img convert -O FMT [options] -> (format, subformat) as vm2c must report them
VARIANTS = [
    ("raw", [], "raw", ""), ("qcow2", [], "qcow2", ""),
    ("vdi", [], "vdi", "dynamic"), ("vdi", ["-o", "static=on"], "vdi", "fixed"),
    ("vpc", [], "vhd", "dynamic"), ("vpc", ["-o", "subformat=fixed"], "vhd", "fixed"),
    ("vhdx", [], "vhdx", "dynamic"), ("vhdx", ["-o", "subformat=fixed"], "vhdx", "fixed"),
    ("vmdk", [], "vmdk", "monolithicSparse"), ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk", "streamOptimized"),
    ("vmdk", ["-o", "subformat=monolithicFlat"], "vmdk", "monolithicFlat"),
    ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"], "vmdk", "twoGbMaxExtentSparse"),
]


@pytest.mark.parametrize("qfmt,opts,name,sub", VARIANTS, ids=[f"{v[2]}-{v[3] or 'plain'}" for v in VARIANTS])
def test_format_and_subformat_apart(tmp_path, qfmt, opts, name, sub):
    raw = tmp_path / "src.raw"
    subprocess.run(["truncate", "-s", "8M", raw], check=True)
    img = tmp_path / f"disk.{qfmt}"
    if qfmt != "raw":
        subprocess.run(["qemu-img", "convert", "-O", qfmt, *opts, raw, img], check=True)
    info = identify(raw if qfmt == "raw" else img)
    assert (info.name, info.subformat) == (name, sub)
    assert info.display_format == (f"{name} ({sub})" if sub else name)  # what people read


def _inspect_doc(**changes) -> dict:
    doc = {"source": "/d.vmdk", "format": "vmdk", "subformat": "streamOptimized", "virtual_size": 1,
           "disk_size": 1, "table": "none", "backing_chain": [], "partitions": [], "root": None, "warnings": []}
    return {**doc, **changes}


def test_schema_takes_the_bare_name_and_refuses_the_combined_one():
    validated("inspect", _inspect_doc())
    validated("inspect", _inspect_doc(format="raw", subformat=None))
    for bad in ({"format": "vmdk (streamOptimized)"}, {"format": "vpc"}, {"subformat": ""},
                {"subformat": "stream optimized"}, {"extra": 1}):
        with pytest.raises(jsonschema.ValidationError):
            validated("inspect", _inspect_doc(**bad))
