"""vfio-pci variants (pyvfio/lab/vfio_build.py) without a build: their spelling,
the checks on a patch, and the one-line reason a patch does not apply, on a small
tree made here (the Kbuild itself runs in the lab tests: tests/test_lab_vms.py)."""
import pathlib
import re
import shutil

import pytest

from pyvfio.errors import UsageError
from pyvfio.lab import vfio_build

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "vfio-unlazy-by-hand.patch"


def test_variant_spellings():
    assert vfio_build.parse("shipped") == vfio_build.Variant("shipped")
    assert not vfio_build.parse("shipped").rebuilt and vfio_build.parse("prefix").rebuilt
    v = vfio_build.parse(f"prefix+patch:{FIXTURE}")
    assert v.base == "prefix" and v.patch == str(FIXTURE)
    assert v.name == f"prefix+patch:vfio-unlazy-by-hand.patch@{v.patch_sha[:8]}"
    assert vfio_build.parse(f"patch:{FIXTURE}").name.startswith("patch:vfio-unlazy-by-hand.patch@")


@pytest.mark.parametrize("text, message", [
    ("sloppy", "unknown vfio-pci variant 'sloppy'"),
    ("prefix+fix", "unknown vfio-pci variant 'prefix+fix'"),
    ("patch:", "names no patch file"),
    ("patch:/nonexistent.patch", "cannot read the patch /nonexistent.patch"),
])
def test_bad_variants_are_one_line_errors(text, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        vfio_build.parse(text)


def test_a_patch_outside_drivers_vfio_or_not_a_diff_is_refused(tmp_path):
    p = tmp_path / "irq.patch"
    p.write_text("--- a/kernel/irq/chip.c\n+++ b/kernel/irq/chip.c\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(UsageError, match="patches kernel/irq/chip.c: only drivers/vfio/ is rebuilt"):
        vfio_build.parse(f"patch:{p}")
    p.write_text("not a diff\n")
    with pytest.raises(UsageError, match="is not a unified diff"):
        vfio_build.parse(f"patch:{p}")


def _tree(tmp_path, text):
    f = tmp_path / "tree" / "drivers/vfio/pci/vfio_pci_intrs.c"
    f.parent.mkdir(parents=True)
    f.write_text(text)
    return tmp_path / "tree", f


def test_apply_and_revert_the_fix_and_name_the_hunk_that_fails(tmp_path):
    if shutil.which("patch") is None:
        pytest.skip("GNU patch is not installed (tools/packages.txt)")
    # the context of the upstream fix's hunks, as in Debian's 6.12 source, before the fix
    fix = vfio_build.FIX.read_text()
    before = "".join(line[1:] for line in fix.splitlines(True) if line[:1] in (" ", "-") and
                     not line.startswith("---"))
    tree, f = _tree(tmp_path, before)
    # hunks of a diff with its context only: a file made from them takes the patch
    assert vfio_build.apply(tree, vfio_build.FIX) is None
    assert f.read_text().count("IRQ_DISABLE_UNLAZY") == 3
    assert vfio_build.apply(tree, vfio_build.FIX) == "drivers/vfio/pci/vfio_pci_intrs.c: already applied, or reversed"
    assert vfio_build.apply(tree, vfio_build.FIX, reverse=True) is None
    assert "IRQ_DISABLE_UNLAZY" not in f.read_text()
    f.write_text(before.replace("free_irq(pdev->irq, ctx);", "free_irq(pdev->irq, vdev);"))
    why = vfio_build.apply(tree, vfio_build.FIX)    # patch names the line its hunk header says
    assert why == "hunk #2 of drivers/vfio/pci/vfio_pci_intrs.c does not apply (at line 357)", why


def test_iommufd_build_takes_lib_interval_trees_span_iterator_unexported(tmp_path):
    """Debian's vmlinux has no interval_tree_span_iter_* (CONFIG_INTERVAL_TREE_SPAN_ITER
    unset): iommufd.ko carries that part of lib/interval_tree.c, unexported (only
    iommufd calls it), and none of the rest (vmlinux exports that)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/interval_tree.c").write_text(
        "INTERVAL_TREE_DEFINE(...)\nEXPORT_SYMBOL_GPL(interval_tree_insert);\n"
        "#ifdef CONFIG_INTERVAL_TREE_SPAN_ITER\nvoid interval_tree_span_iter_first(void) {}\n"
        "EXPORT_SYMBOL_GPL(interval_tree_span_iter_first);\n#endif\n")
    text = vfio_build._span_iter(tmp_path)
    assert "void interval_tree_span_iter_first(void) {}" in text
    assert "EXPORT_SYMBOL" not in text and "INTERVAL_TREE_DEFINE" not in text and "#endif" not in text
