"""A tiny MCP server over stdio for tests: newline-delimited JSON-RPC 2.0 with `initialize`, `tools/list` and
`tools/call`, and one tool, `shout`, that upper-cases its text and says whether $TINY_TOKEN reached it.

Run as `python tests/mcp_stdio_server.py`; every request it reads is appended to $TINY_LOG when that is set.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SHOUT = {
    "name": "shout",
    "description": "Upper-cases a text",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "initialize":
        version = params.get("protocolVersion", "2024-11-05")
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "tiny", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": [SHOUT]}
    if method == "tools/call" and params.get("name") == "shout":
        text = str(params.get("arguments", {}).get("text", "")).upper()
        token = "token seen" if os.environ.get("TINY_TOKEN") else "no token"
        return {"content": [{"type": "text", "text": f"{text} ({token})"}]}
    if method == "ping":
        return {}
    raise LookupError(method)


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if os.environ.get("TINY_LOG"):
            with open(os.environ["TINY_LOG"], "a", encoding="utf-8") as log:
                log.write(line)
        if "id" not in message:
            continue  # a notification (e.g. notifications/initialized)
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        try:
            reply["result"] = answer(message.get("method", ""), message.get("params") or {})
        except LookupError as unknown:
            reply["error"] = {"code": -32601, "message": f"method not found: {unknown}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
