"""The repository's citations of its own documentation hold.

Comments and docs cite pages of docs/ (docs/README.md is the index), never a
document outside the repository: the design notes it was built from are not
shipped, so a reader could not follow such a citation.  Every `docs/...` path cited
anywhere exists, a section named beside it (`docs/model.md, "XIVE"`) is in that
page, and the relative links between docs/ pages resolve."""

import functools
import re
import subprocess
from pyvfio.checkout import CHECKOUT

ROOT = CHECKOUT
# Spelt in pieces so that this file does not cite them itself.
OUTSIDE = re.compile(r"(?<![\w/.-])(?:" + "|".join(["MODEL", "LAB", "ARCHITECTURE", "STYLE"]) + r")\.md\b"
                     + r"|\.\./" + "shared" + r"\b|/work/" + "shared" + r"\b")
CITED = re.compile(r"(?<![\w/.-])(docs/[A-Za-z0-9_./-]*[A-Za-z0-9_])")
# a section named right after the page: PAGE, "Name" or PAGE ("Name")
SECTION = re.compile(r"(?<![\w/.-])(docs/[A-Za-z0-9_./-]*\.md)(?:, | \()\"([^\"\n]+)\"")
MD_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SKIP_DIRS = {".git", ".venv", ".cache", "build", "dist", "__pycache__"}


@functools.cache
def _files():
    """The repository's text files, (name, text): git's list in a checkout, else a walk
    of the tree."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True, timeout=60).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
                 and not any(part.endswith(".egg-info") for part in p.parts)]
    files = []
    for name in sorted(names):
        try:
            files.append((name, (ROOT / name).read_text(encoding="utf-8")))
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            pass                        # binary, or deleted from the work tree
    return tuple(files)


def _where(text, match):
    return text.count("\n", 0, match.start()) + 1


def test_nothing_cites_a_document_outside_the_repository():
    found = [f"{name}:{_where(text, m)}: {m.group(0)}"
             for name, text in _files() for m in OUTSIDE.finditer(text)]
    assert found == [], "cite the docs/ page that holds the fact instead:\n" + "\n".join(found)


def test_every_cited_docs_path_exists():
    cited, missing = 0, []
    for name, text in _files():
        for m in CITED.finditer(text):
            cited += 1
            if not (ROOT / m.group(1)).exists():
                missing.append(f"{name}:{_where(text, m)}: {m.group(1)}")
    assert missing == [], "cited but not in the repository:\n" + "\n".join(missing)
    # the scanner must see the citations it guards (the sim's modules cite docs/model.md)
    assert cited > 20, f"only {cited} docs/ citations found: the scanner is broken"


def test_every_cited_section_is_in_its_page():
    checked, missing = 0, []
    for name, text in _files():
        for m in SECTION.finditer(text):
            page = ROOT / m.group(1)
            if not page.is_file():
                continue                # test_every_cited_docs_path_exists says so
            checked += 1
            if m.group(2) not in page.read_text(encoding="utf-8"):
                missing.append(f"{name}:{_where(text, m)}: {m.group(1)} has no \"{m.group(2)}\"")
    assert missing == [], "a section was renamed or never written:\n" + "\n".join(missing)
    assert checked > 10, f"only {checked} cited sections found: the scanner is broken"


def test_links_between_docs_pages_resolve():
    broken = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        # code spans are not links (`vfio-msi[0](BDF)`): blanked, their offsets kept
        prose = re.sub(r"`[^`\n]*`", lambda c: " " * len(c.group()), text)
        for m in MD_LINK.finditer(prose):
            target = m.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}:{_where(text, m)}: {target}")
    assert broken == [], "\n".join(broken)


def test_the_scanners_catch_what_they_guard():
    # a citation of a design note, a missing page and a missing section are all seen
    assert OUTSIDE.search("see " + "MODEL" + ".md §2") and OUTSIDE.search("(../" + "shared/seed)")
    assert not OUTSIDE.search("docs/model.md and pyvfio/lab/README.md")
    assert CITED.findall("(docs/model.md, and docs/lab.md)") == ["docs/model.md", "docs/lab.md"]
    assert SECTION.findall('(docs/model.md, "XIVE"): x') == [("docs/model.md", "XIVE")]
    assert SECTION.findall('docs/lab.md ("Kernels")') == [("docs/lab.md", "Kernels")]
