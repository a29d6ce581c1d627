"""tests/project.py: a copy of the project as a fresh clone has it, and the built plots page the
tests that draw DVC plots need (they skip without it, unless CI requires it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tests.project import PLOTS_PAGE, project_copy, require_plots_page


def clone_source(root: Path, *, plots_page: bool) -> Path:
    """A project root as a developer has it: a tracked file, and the page if `make plots-page` ran."""
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    (root / ".gitignore").write_text(f"/{PLOTS_PAGE}/\n")  # built, not tracked, as in the project
    (root / "dvc.yaml").write_text("stages: {}\n")
    if plots_page:
        (root / PLOTS_PAGE).mkdir(parents=True)
        (root / PLOTS_PAGE / "template.html").write_text("<html>{plot_divs}</html>")
    return root


def test_without_the_plots_page_a_test_that_needs_it_skips_naming_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("REPROVISION_REQUIRE_PLOTS_PAGE", raising=False)
    root = clone_source(tmp_path / "root", plots_page=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_plots_page(root)
    reason = str(skipped.value)
    assert reason == f"{root / PLOTS_PAGE} is missing: install npm, then run `make plots-page` (it builds it)"
    # The rest of the project still copies: only the tests that draw plots need the page.
    work = project_copy(root, tmp_path / "copy")
    assert (work / "dvc.yaml").is_file() and not (work / PLOTS_PAGE).exists()


def test_ci_makes_a_missing_plots_page_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROVISION_REQUIRE_PLOTS_PAGE", "1")
    root = clone_source(tmp_path / "root", plots_page=False)
    with pytest.raises(pytest.fail.Exception, match=r"`make plots-page`.*REPROVISION_REQUIRE_PLOTS_PAGE=1 requires it"):
        require_plots_page(root)


def test_a_built_plots_page_is_required_silently_and_copied(tmp_path, monkeypatch):
    monkeypatch.setenv("REPROVISION_REQUIRE_PLOTS_PAGE", "1")
    root = clone_source(tmp_path / "root", plots_page=True)
    require_plots_page(root)  # neither skips nor fails
    work = project_copy(root, tmp_path / "copy")
    assert (work / PLOTS_PAGE / "template.html").read_text() == "<html>{plot_divs}</html>"
    # Copied beside the clone, not committed into it: the page stays an ignored build output.
    tracked = subprocess.run(["git", "ls-files"], cwd=work, capture_output=True, text=True, check=True).stdout
    assert tracked.split() == [".gitignore", "dvc.yaml"]
