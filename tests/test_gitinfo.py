"""The repository and branch of a working directory, read through the one git runner."""

from __future__ import annotations

from pathlib import Path

from helpers import git

from planeteer_action.gitinfo import GitContext, git_context


def test_a_checkout_names_its_github_repository_and_branch(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet", "--initial-branch=work")
    git(tmp_path, "remote", "add", "upstream", "https://example.com/not/github.git")
    git(tmp_path, "remote", "add", "origin", "git@github.com:octo/planets.git")
    git(tmp_path, "commit", "--quiet", "--allow-empty", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    (tmp_path / "sub").mkdir()
    assert git_context(tmp_path / "sub") == GitContext(tmp_path.resolve(), "octo/planets", "work", head)
    git(tmp_path, "checkout", "--quiet", "--detach")
    assert git_context(tmp_path).branch == f"detached@{head}"


def test_a_folder_outside_any_repository_has_no_context(tmp_path: Path) -> None:
    assert git_context(tmp_path) == GitContext(None, None, None, None)
