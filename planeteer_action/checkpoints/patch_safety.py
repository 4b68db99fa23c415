"""Whether a workspace patch from a checkpoint stays inside the checkout it is applied to.

A checkpoint is untrusted input, and git refuses an escaping path only as a failure to apply, which stops a
run; checked here, a forged checkpoint is skipped like any other untrustworthy one. The patch is read as
git reads it: hunks are consumed by their line counts, so a removed line that looks like a header is not
taken for one, and a traditional unified diff (no `diff --git` line) is checked like a git one. Symlinks a
patch creates must point inside the checkout too, since the agents (and git) would follow them later.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

_PATH_LINES = (b"diff --git ", b"--- ", b"+++ ", b"rename from ", b"rename to ", b"copy from ", b"copy to ")
_HUNK = re.compile(rb"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_SYMLINK_MODE = b"120000"


@dataclass
class _FilePatch:
    """One file's part of a patch: the paths its headers name, its new mode and its new side's lines."""

    paths: list[str] = field(default_factory=list)
    new_mode: bytes | None = None
    binary: bool = False
    hunks: int = 0
    new_lines: list[bytes] = field(default_factory=list)


def path_outside_checkout(patch: bytes) -> str | None:
    """The first path in a patch's file headers that is absolute, climbs out with `..`, or enters `.git`."""
    for file in _file_patches(patch):
        for path in file.paths:
            parts = path.replace("\\", "/").split("/")
            if path.startswith("/") or ".." in parts or any(p.lower() == ".git" for p in parts):
                return path
    return None


def link_outside_checkout(patch: bytes) -> tuple[str, str] | None:
    """The first symlink the patch makes that points outside the checkout (or into `.git`), and its target.

    `..` may only lead a target, and only as far up as the link's own folder is deep: a `..` after a name
    leads wherever the links along the way lead, which the patch itself may have made.
    """
    for file in _file_patches(patch):
        if file.new_mode != _SYMLINK_MODE:
            continue
        link = file.paths[-1] if file.paths else ""
        if file.binary:
            return link, "(a binary patch)"
        target = b"\n".join(file.new_lines).decode("utf-8", "surrogateescape")
        if _leaves(link, target):
            return link, target
    return None


def _leaves(link: str, target: str) -> bool:
    if target.startswith("/"):
        return True
    depth = link.count("/")
    named = False
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if named or depth < 0:
                return True
        else:
            named = True
            if part.lower() == ".git":
                return True
    return False


def _file_patches(patch: bytes) -> Iterator[_FilePatch]:
    """The patch's files, as git finds them: a file starts at `diff --git`, or at a `--- ` outside a hunk
    once the current file has hunks (or is not a git one)."""
    current: _FilePatch | None = None
    git_header = False
    old_left = new_left = 0
    for line in patch.split(b"\n"):
        if current is not None and (old_left > 0 or new_left > 0):
            marker = line[:1]
            if marker in (b" ", b""):  # git takes an empty line for an empty context line
                old_left, new_left = old_left - 1, new_left - 1
                current.new_lines.append(line[1:])
                continue
            if marker == b"-":
                old_left -= 1
                continue
            if marker == b"+":
                new_left -= 1
                current.new_lines.append(line[1:])
                continue
            if marker == b"\\":  # "\ No newline at end of file"
                continue
            old_left = new_left = 0  # a hunk cut short: git refuses the patch; read on as headers
        starts_git = line.startswith(b"diff --git ")
        if starts_git or (line.startswith(b"--- ") and (current is None or current.hunks or not git_header)):
            if current is not None:
                yield current
            current, git_header = _FilePatch(), starts_git
        if current is None:
            continue
        hunk = _HUNK.match(line)
        if hunk:
            current.hunks += 1
            old_left, new_left = (int(count) if count is not None else 1 for count in hunk.groups())
        elif line.startswith(b"GIT binary patch"):
            current.binary = True
        elif line.startswith((b"new file mode ", b"new mode ")) or _is_index_with_mode(line):
            current.new_mode = line.rsplit(b" ", 1)[-1]
        elif line.startswith(_PATH_LINES):
            current.paths.extend(_header_paths(line))
    if current is not None:
        yield current


def _is_index_with_mode(line: bytes) -> bool:
    """`index <old>..<new> <mode>`: how git gives the mode of a file whose mode did not change."""
    return line.startswith(b"index ") and line.count(b" ") == 2


def _header_paths(line: bytes) -> list[str]:
    """The paths a header line names, without git's `a/` and `b/` prefixes; `/dev/null` is no path."""
    text = line.decode("utf-8", "surrogateescape")
    prefix = next(p.decode() for p in _PATH_LINES if line.startswith(p))
    text = text[len(prefix) :]
    tokens = text.split(" ") if prefix == "diff --git " else [text.split("\t")[0]]
    paths = []
    for token in tokens:
        path = _unquote(token)
        if path == "/dev/null":
            continue
        if path[:2] in ("a/", "b/") and not prefix.startswith(("rename ", "copy ")):
            path = path[2:]
        paths.append(path)
    return paths


def _unquote(token: str) -> str:
    """A path as git quotes it (C-style, with octal escapes) back to text; unquoted paths as they are."""
    if len(token) >= 2 and token.startswith('"') and token.endswith('"'):
        raw = token[1:-1].encode("utf-8", "surrogateescape")
        try:
            decoded: bytes = codecs.escape_decode(raw)[0]
            return decoded.decode("utf-8", "surrogateescape")
        except (ValueError, UnicodeDecodeError):
            return token
    return token
