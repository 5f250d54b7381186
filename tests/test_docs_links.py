"""Every relative reference in README.md and docs/ resolves, and ``.ci/run`` runs the
README's test command.

Two kinds of reference are walked in each Markdown file:

* links and images, ``[text](path#anchor)``: the path, relative to the file, must exist, and
  an anchor into a Markdown file must name one of its headings (GitHub's slugs);
* file names in code spans, ``\\`docs/system.md\\```: relative to the file or to the
  repository's root, and a bare name (``\\`fair-use.md\\```) anywhere in the repository.
  :data:`NOT_IN_REPOSITORY` lists the names that are, on purpose, not files of the
  repository (data the user brings, outputs of commands).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import REPO

#: File names in code spans that are not files of this repository, and why.
NOT_IN_REPOSITORY = {
    "apnea.csv": "the user's copy of the apnea data, never in the repository",
    "data/apnea/apnea_data.csv": "the apnea file's path in its source repository",
}

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`([^`\s<>*{}]+\.(?:md|py|csv|json|png|ipynb|toml|txt))`")
SKIP_DIRS = {"__pycache__", "fairuse_demo_output", "node_modules"}


def markdown_files() -> list[Path]:
    return [REPO / "README.md"] + sorted((REPO / "docs").rglob("*.md"))


def repository_names() -> set[str]:
    """Names of the files in the repository (hidden folders, such as .git and .venv, left out)."""
    names = set()
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS]
        names.update(files)
    return names


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # no headings inside code blocks
    return {slug(m) for m in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M)}


def references(path: Path) -> list[tuple[str, str]]:
    """``(kind, target)`` of every relative link and code-span file name of ``path``."""
    prose = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)  # not code blocks
    out = []
    for m in LINK.finditer(prose):
        target = m.group(1)
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # not http:, mailto:, ...
            out.append(("link", target))
    out += [("code", m.group(1)) for m in CODE_PATH.finditer(prose)]
    return out


def broken(path: Path, names: set[str]) -> list[str]:
    bad = []
    for kind, target in references(path):
        if kind == "link":
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                bad.append(f"link {target}: no {dest}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                bad.append(f"link {target}: no heading #{anchor} in {dest.name}")
        elif target not in NOT_IN_REPOSITORY:
            found = (path.parent / target).exists() or (REPO / target).exists() or (
                "/" not in target and target in names)
            if not found:
                bad.append(f"file name {target}: not in the repository")
    return bad


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_reference_resolves(path):
    assert broken(path, repository_names()) == []


def test_the_walker_finds_broken_references(tmp_path):
    """The check itself: each kind of broken reference is reported, good ones are not."""
    (tmp_path / "other.md").write_text("# A title\n\n## Second `part`\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md) [ok anchor](other.md#second-part) [web](https://example.org/x.md)\n"
        "![missing image](pics/none.png) [bad anchor](other.md#third) [gone](gone.md)\n"
        "`other.md` `fair-use.md` `no-such-file.md` `apnea.csv`\n"
        "```\n[in a code block](not-checked.md)\n```\n", encoding="utf-8")
    assert sorted(broken(doc, {"fair-use.md"})) == sorted([
        f"link pics/none.png: no {tmp_path / 'pics' / 'none.png'}",
        "link other.md#third: no heading #third in other.md",
        f"link gone.md: no {tmp_path / 'gone.md'}",
        "file name no-such-file.md: not in the repository",
    ])
    assert slug("## `check_estimator`: 63 checks") != "" and slug("Quick start") == "quick-start"


def test_ci_runs_the_readme_test_command():
    """.ci/run's install line and test line, joined by ' && ', are the README's command."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    command = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv") and "pytest" in line]
    assert len(command) == 1
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    install = [line for line in ci if line.startswith("python3 -m venv .venv")]
    test = [line for line in ci if line.startswith(".venv/bin/python -m pytest")]
    assert len(install) == 1 and len(test) == 1
    assert f"{install[0]} && {test[0]}" == command[0]
    assert "export FAIRUSE_REQUIRE_DATA=1" in ci
