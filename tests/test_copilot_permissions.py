"""Planeteer's permission handler as pure functions: the pattern matchers, the judgement of whole requests under
a task's rules, and write confinement. The expectations marked "measured" are what the Copilot CLI 1.0.102's own
`--deny-tool` / `--allow-tool` did with the same pattern and command (see copilot/patterns.py).

The requests are the SDK's own permission request types, as the CLI sends them (shapes seen on CLI 1.0.102).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest
from copilot.rpc import PermissionDecisionApproveOnce, PermissionDecisionReject
from copilot.session import PermissionNoResult
from copilot.session_events import (
    PermissionRequest,
    PermissionRequestMcp,
    PermissionRequestMemory,
    PermissionRequestRead,
    PermissionRequestShell,
    PermissionRequestShellCommand,
    PermissionRequestShellCommandSegment,
    PermissionRequestShellPossibleUrl,
    PermissionRequestUrl,
    PermissionRequestWrite,
    PermissionWriteFileContent,
    PermissionWriteFileEdit,
)

from planeteer_action.action.inputs import DEFAULT_DENIED_TOOLS
from planeteer_action.copilot.patterns import mcp_tool_matches, path_matches, shell_matches, url_matches
from planeteer_action.copilot.permissions import PermissionPolicy, judge
from planeteer_action.engine.rules import SessionRules, ToolPattern
from planeteer_action.redaction import mask


def rules(allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), writable: tuple[Path, ...] = ()) -> SessionRules:
    return SessionRules(
        allow_tools=tuple(map(ToolPattern.parse, allow)),
        deny_tools=tuple(map(ToolPattern.parse, deny)),
        writable_directories=writable,
    )


def shell(*segments: tuple[str, str], urls: tuple[str, ...] = ()) -> PermissionRequestShell:
    """A shell request of (identifier, text) segments, as the CLI parses `a && b`."""
    line = " && ".join(text for _, text in segments)
    return PermissionRequestShell(
        can_offer_session_approval=False,
        commands=[PermissionRequestShellCommand(identifier=line, read_only=False)],
        full_command_text=line,
        has_write_file_redirection=False,
        intention="Run a command",
        possible_paths=[],
        possible_urls=[PermissionRequestShellPossibleUrl(url=url) for url in urls],
        command_segments=[PermissionRequestShellCommandSegment(full_command_text=t, identifier=i) for i, t in segments],
    )


def write(path: str | Path, moved_from: str | Path | None = None) -> PermissionRequestWrite:
    edits = None
    if moved_from is not None:
        before = PermissionWriteFileContent(content="x", path=str(moved_from))
        edits = [PermissionWriteFileEdit(after=PermissionWriteFileContent(content="x", path=str(path)), before=before)]
    return PermissionRequestWrite(
        can_offer_session_approval=True, diff="", file_name=str(path), intention="Create file", file_edits=edits
    )


def mcp(server: str, registered: str) -> PermissionRequestMcp:
    return PermissionRequestMcp(
        read_only=False, server_name=server, tool_name=f"{server}-{registered}", tool_title=registered, args={}
    )


# --- the matchers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argument", "identifier", "text", "expected"),
    [
        (None, "rm", "rm -rf /", True),
        ("git push", "git push", "git push origin main", True),  # any arguments
        ("git push", "git push", "GIT_DIR=x git push --force", True),
        ("git", "git status", "git status", False),  # measured: a bare `git` is not every git command
        ("git:*", "git status", "git status", True),  # measured
        ("git:*", "git", "git", True),
        ("git:*", "gitea", "gitea serve", False),  # the stem is a whole word
        ("echo hi", "echo", "echo hi", True),  # measured: the exact command text matches too
        ("echo hi", "echo", "echo hi there", False),  # measured
        ("echo hi", "echo", "echo hip", False),  # measured
        ("echo", "echo", "echo hi there", True),  # measured
        ("npm:*", "npm --version", "npm --version", True),  # measured
        ("git  push", "git push", "git\tpush", True),  # spacing does not matter
        ("rm", "rmdir", "rmdir x", False),
    ],
)
def test_shell_patterns(argument: str | None, identifier: str, text: str, expected: bool) -> None:
    assert shell_matches(argument, identifier, text) is expected


@pytest.mark.parametrize(
    ("argument", "path", "expected"),
    [
        (None, "/w/anything", True),
        (".env", "/w/a/.env", True),  # trailing components: in any directory
        (".env", "/w/.envrc", False),
        ("c.txt", "/w/sub/c.txt", True),  # measured
        ("sub", "/w/sub/a.txt", False),  # measured: a directory's name alone is not its files
        ("sub/*", "/w/sub/d.txt", True),  # measured
        ("sub/*", "/w/sub/deep/e.txt", False),
        ("sub/**", "/w/sub/deep/e.txt", True),
        ("*.txt", "/w/sub/g.txt", True),  # measured
        ("/tmp/abs/*", "/tmp/abs/h.txt", True),  # measured
        ("/tmp/abs", "/tmp/abs/h.txt", False),  # measured
        ("/tmp/abs/h.txt", "/tmp/abs/h.txt", True),
        ("/abs/h.txt", "/tmp/abs/h.txt", False),  # an absolute pattern is the whole path
        (".github/workflows/*", "/w/.github/workflows/ci.yml", True),
        (".github/workflows/*", "/w/x/workflows/ci.yml", False),
        ("**/secrets/**", "/w/a/secrets/b/c.key", True),
    ],
)
def test_path_patterns(argument: str | None, path: str, expected: bool) -> None:
    assert path_matches(argument, PurePosixPath(path)) is expected


@pytest.mark.parametrize(
    ("argument", "url", "expected"),
    [
        (None, "http://anything/", True),
        ("example.com", "https://example.com/x", True),  # measured, through web_fetch and curl alike
        ("example.com", "http://example.com/x", False),  # no scheme means https
        ("http://example.com", "http://example.com/x", True),
        ("EXAMPLE.com", "https://example.COM/", True),
        ("https://*.github.com", "https://api.github.com/repos", True),
        ("https://*.github.com", "https://github.com.evil.io/", False),
        ("*.github.com", "https://evilgithub.com/", False),
        ("https://example.com/api", "https://example.com/api/v1", True),
        ("https://example.com/api", "https://example.com/apix", False),
        ("example.com:8443", "https://example.com:8443/", True),
        ("example.com:8443", "https://example.com/", False),
    ],
)
def test_url_patterns(argument: str | None, url: str, expected: bool) -> None:
    assert url_matches(argument, url) is expected


def test_mcp_tool_patterns_name_the_tool_as_its_server_registered_it() -> None:
    assert mcp_tool_matches("shout", "tiny", "tiny-shout")  # measured
    assert not mcp_tool_matches("tiny-shout", "tiny", "tiny-shout")  # measured
    assert not mcp_tool_matches("whisper", "tiny", "tiny-shout")
    assert mcp_tool_matches(None, "tiny", "tiny-shout")


# --- whole requests under rules ---------------------------------------------------------------------------


def test_default_rules_approve_everything_inside_the_working_directory(tmp_path: Path) -> None:
    default = SessionRules()
    for request in (
        shell(("git push", "git push origin main"), ("rm", "rm -rf build")),
        write(tmp_path / "new.txt"),
        write("relative/new.txt"),
        PermissionRequestRead(intention="Read", path="/etc/hostname"),
        PermissionRequestUrl(intention="Fetch", url="https://example.com/"),
        mcp("tiny", "shout"),
        PermissionRequestMemory(fact="x"),
    ):
        assert judge(request, default, tmp_path) is None, request


def test_deny_wins_over_allow_and_one_denied_command_denies_the_line(tmp_path: Path) -> None:
    line = shell(("ls", "ls"), ("git push", "git push origin main"), ("echo", "echo done"))
    both = rules(allow=("shell",), deny=("shell(git push)",))
    denial = judge(line, both, tmp_path)
    assert denial is not None
    assert denial.description == "shell(git push origin main)"
    assert "`shell(git push)`" in denial.reason
    assert judge(shell(("git status", "git status")), both, tmp_path) is None


def test_with_an_allow_list_only_what_it_matches_is_approved(tmp_path: Path) -> None:
    allowed = rules(allow=("shell(git:*)", "shell(ls)"))
    assert judge(shell(("ls", "ls -la"), ("git commit", "git commit -m x")), allowed, tmp_path) is None
    denial = judge(shell(("ls", "ls"), ("rm", "rm -rf x"), ("curl", "curl -s x")), allowed, tmp_path)
    assert denial is not None and denial.description == "shell(rm -rf x), shell(curl -s x)"
    assert "shell(git:*), shell(ls)" in denial.reason
    other = judge(write(tmp_path / "a.txt"), allowed, tmp_path)
    assert other is not None and other.description == f"write({tmp_path.resolve()}/a.txt)"
    assert judge(PermissionRequestMemory(fact="x"), allowed, tmp_path) is not None


def test_urls_a_command_may_reach_are_judged_as_urls(tmp_path: Path) -> None:
    curl = shell(("curl", "curl -s https://example.com/x"), urls=("https://example.com/x?token=abc",))
    denial = judge(curl, rules(deny=("url(example.com)",)), tmp_path)
    assert denial is not None and denial.description == "url(https://example.com/x?<redacted>)"
    assert judge(curl, rules(allow=("shell(curl)",)), tmp_path) is None, "no url(...) allowed: URLs not gated"
    assert judge(curl, rules(allow=("shell(curl)", "url(github.com)")), tmp_path) is not None
    assert judge(curl, rules(allow=("shell(curl)", "url(example.com)")), tmp_path) is None
    fetch = PermissionRequestUrl(intention="Fetch", url="https://example.com/")
    assert judge(fetch, rules(allow=("shell",)), tmp_path) is not None


def test_mcp_reads_and_other_kinds_follow_their_patterns(tmp_path: Path) -> None:
    denial = judge(mcp("tiny", "shout"), rules(deny=("tiny(shout)",)), tmp_path)
    assert denial is not None and denial.description == "tiny(shout)"
    assert judge(mcp("tiny", "whisper"), rules(deny=("tiny(shout)",)), tmp_path) is None
    assert judge(mcp("tiny", "whisper"), rules(allow=("tiny",)), tmp_path) is None
    assert judge(mcp("other", "x"), rules(allow=("tiny",)), tmp_path) is not None
    key = PermissionRequestRead(intention="Read", path=str(tmp_path / "id.pem"))
    assert judge(key, rules(deny=("read(*.pem)",)), tmp_path) is not None
    assert judge(PermissionRequestMemory(fact="x"), rules(deny=("memory",)), tmp_path) is not None


def test_commands_planeteer_put_in_front_are_not_judged(tmp_path: Path) -> None:
    own = ". /tmp/planeteer-cli-x/env-1.sh"
    line = shell((".", own), ("ls", "ls"))
    assert judge(line, rules(allow=("shell(ls)",)), tmp_path, own_commands=[own]) is None
    assert judge(line, rules(allow=("shell(ls)",)), tmp_path) is not None


# --- write confinement -----------------------------------------------------------------------------------


def test_writes_outside_the_working_directory_are_denied_and_say_why(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    denial = judge(write("/etc/passwd"), SessionRules(), work)
    assert denial is not None
    assert denial.description == "write /etc/passwd (outside the task's worktree)"
    assert str(work.resolve()) in denial.reason and "Planeteer denied write /etc/passwd" in denial.message
    for escape in ("../outside.txt", f"{work}/sub/../../outside.txt", f"{tmp_path}/work-other/x.txt", "~/x.txt"):
        assert judge(write(escape), SessionRules(), work) is not None, escape


def test_symlinks_are_followed_both_ways(tmp_path: Path) -> None:
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    (work / "door").symlink_to(outside)
    assert judge(write(work / "door" / "x.txt"), SessionRules(), work) is not None
    (tmp_path / "work-link").symlink_to(work)
    assert judge(write(work / "x.txt"), SessionRules(), tmp_path / "work-link") is None
    assert judge(write(tmp_path / "work-link" / "x.txt"), SessionRules(), work) is None


def test_writable_directories_extend_the_working_directory(tmp_path: Path) -> None:
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    cache.mkdir()
    assert judge(write(cache / "a.bin"), rules(writable=(cache,)), work) is None
    denial = judge(write(tmp_path / "b.bin"), rules(writable=(cache,)), work)
    assert denial is not None and str(cache) in denial.reason


def test_a_move_out_of_the_working_directory_is_a_write_outside(tmp_path: Path) -> None:
    denial = judge(write(tmp_path.parent / "stolen.txt", moved_from=tmp_path / "a.txt"), SessionRules(), tmp_path)
    assert denial is not None and "stolen.txt" in denial.description


# --- the handler the session gets --------------------------------------------------------------------------


def policy(
    tmp_path: Path, denied: list[str], session_rules: SessionRules, secrets: tuple[str, ...] = ()
) -> PermissionPolicy:
    return PermissionPolicy(session_rules, tmp_path, denied.append, lambda text: mask(str(text), secrets))


def test_a_denial_answers_the_agent_and_tells_the_engine_once(tmp_path: Path) -> None:
    denied: list[str] = []
    handler = policy(tmp_path, denied, rules(deny=("shell(git push)",)), secrets=("s3cr3t-value-123",))
    answer = handler(shell(("git push", "TOKEN=s3cr3t-value-123 git push origin main")), {"session_id": "s"})
    assert isinstance(answer, PermissionDecisionReject)
    assert answer.feedback is not None and answer.feedback.startswith("Planeteer denied shell(TOKEN=*** git push")
    assert "s3cr3t" not in answer.feedback and "the rules deny `shell(git push)`" in answer.feedback
    assert denied == ["shell(TOKEN=*** git push origin main)"]


def test_approvals_are_the_sdks_approve_all(tmp_path: Path) -> None:
    denied: list[str] = []
    handler = policy(tmp_path, denied, SessionRules())
    assert isinstance(handler(shell(("ls", "ls")), {"session_id": "s"}), PermissionDecisionApproveOnce)
    managed = PermissionRequestUrl(intention="Fetch", url="https://example.com/", managed_approval_required=True)
    assert isinstance(handler(managed, {"session_id": "s"}), PermissionNoResult)
    assert denied == []


def test_a_request_that_cannot_be_checked_is_denied(tmp_path: Path) -> None:
    denied: list[str] = []
    broken: PermissionRequest = write(tmp_path / "x")
    object.__setattr__(broken, "file_name", None)
    answer = policy(tmp_path, denied, SessionRules())(broken, {"session_id": "s"})
    assert isinstance(answer, PermissionDecisionReject) and "could not check it" in (answer.feedback or "")
    assert denied == ["write"]


def test_descriptions_are_one_short_line(tmp_path: Path) -> None:
    denied: list[str] = []
    long_line = "rm -rf " + " ".join(f"dir{i}\n" for i in range(100))
    policy(tmp_path, denied, rules(deny=("shell(rm)",)))(shell(("rm", long_line)), {"session_id": "s"})
    assert len(denied) == 1 and len(denied[0]) == 200 and "\n" not in denied[0] and denied[0].endswith("…")


def test_the_working_directory_may_be_given_relative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert judge(write(tmp_path / "x.txt"), SessionRules(), Path(".")) is None
    assert judge(write(os.path.dirname(tmp_path) + "/y.txt"), SessionRules(), Path(".")) is not None


def test_the_actions_default_denials_stop_a_push_and_a_workflow_edit_and_nothing_else(tmp_path: Path) -> None:
    defaults = rules(deny=DEFAULT_DENIED_TOOLS)
    assert judge(shell(("git push", "git push origin HEAD")), defaults, tmp_path) is not None
    for workflow in (".github/workflows/ci.yml", ".github/workflows/nested/x.yml"):
        denial = judge(write(tmp_path / workflow), defaults, tmp_path)
        assert denial is not None, workflow
    assert judge(write(tmp_path / ".github" / "CODEOWNERS"), defaults, tmp_path) is None
    assert judge(write(tmp_path / "src" / "workflows.py"), defaults, tmp_path) is None
    assert judge(shell(("git commit", "git commit -m x")), defaults, tmp_path) is None
