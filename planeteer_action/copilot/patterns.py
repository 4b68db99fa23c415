"""Whether one argument of a tool pattern (`shell(ARG)`, `write(ARG)`, `url(ARG)`, `server(ARG)`) matches one
thing an agent asked to do, with the Copilot CLI's own semantics (`copilot help permissions`), as measured on
CLI 1.0.102 with its `--deny-tool` / `--allow-tool`:

* `shell(git push)` matches a command the CLI identifies as `git push`, whatever its arguments (the CLI names
  git, gh, npm... commands with their first-level subcommand); `shell(git:*)` matches every command whose
  identifier starts with the word `git` (not `gitea`); `shell(echo hi)` also matches exactly the command
  text `echo hi`, and `shell(git)` does not match `git status`.
* `write(.env)` matches a file named `.env` in any directory (trailing path components), `write(/abs/path)`
  that one path; `*`, `?` and `[...]` match within one component (`write(*.txt)`, `write(.github/workflows/*)`)
  and `**` any number of components. A directory name alone does not match the files in it.
* `url(example.com)` means `https://example.com`, any path; `url(https://*.github.com)` any subdomain;
  a pattern with a path matches that path and the paths under it.
* `tiny(shout)` matches the tool an MCP server `tiny` registered as `shout`, which the CLI calls `tiny-shout`.

A pattern without an argument (`shell`, `write`, `tiny`) matches everything of its kind.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from urllib.parse import urlsplit

_ANY_DEPTH = "**"


def shell_matches(argument: str | None, identifier: str, text: str) -> bool:
    """Whether `shell(argument)` matches one command of a shell request: its CLI identifier and its text."""
    if argument is None:
        return True
    wanted = " ".join(argument.split())
    names = (" ".join(identifier.split()), " ".join(text.split()))
    if wanted.endswith(":*"):
        stem = wanted[:-2].rstrip()
        return any(name == stem or name.startswith(stem + " ") for name in names)
    return wanted in names


def path_matches(argument: str | None, path: PurePosixPath) -> bool:
    """Whether `write(argument)` or `read(argument)` matches `path`, an absolute, normalised path."""
    if argument is None:
        return True
    pattern = PurePosixPath(argument)
    parts = list(pattern.parts) if pattern.is_absolute() else [_ANY_DEPTH, *pattern.parts]
    return _parts_match(parts, list(path.parts))


def _parts_match(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == _ANY_DEPTH:
        return any(_parts_match(rest, parts[skip:]) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], head) and _parts_match(rest, parts[1:])


def url_matches(argument: str | None, url: str) -> bool:
    """Whether `url(argument)` matches `url`; a pattern without a scheme means https."""
    if argument is None:
        return True
    wanted = urlsplit(argument if "://" in argument else f"https://{argument}")
    asked = urlsplit(url)
    host, wanted_host = (asked.hostname or "").lower(), (wanted.hostname or "").lower()
    if asked.scheme.lower() != wanted.scheme.lower():
        return False
    if not (host == wanted_host or (wanted_host.startswith("*.") and host.endswith(wanted_host[1:]))):
        return False
    if wanted.port is not None and wanted.port != asked.port:
        return False
    prefix = wanted.path.rstrip("/")
    return not prefix or asked.path == prefix or asked.path.startswith(prefix + "/")


def mcp_tool_matches(argument: str | None, server: str, tool: str) -> bool:
    """Whether `server(argument)` matches the MCP tool the CLI named `tool` (`<server>-<registered name>`)."""
    if argument is None:
        return True
    registered = tool[len(server) + 1 :] if tool.startswith(f"{server}-") else tool
    return argument == registered
