"""--json documents scripts can compare: `format` is the bare name, the variant is `subformat`,
and docs/json.schema.json (the description in docs/json.md) rejects anything else."""

from __future__ import annotations

import subprocess

import pytest

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




