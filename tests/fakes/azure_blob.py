"""The block blob operations of Azure Blob Storage that the artifact and cache clients use, as Azure takes them.

Put Blob, Put Block, Put Block List and Get Blob, with the checks Azure makes (Microsoft's REST reference,
learn.microsoft.com/rest/api/storageservices: put-blob, put-block, put-block-list, get-blob, and
@azure/storage-blob 12.32.0, which @actions/artifact and @actions/cache upload through):

- Put Blob needs `x-ms-blob-type: BlockBlob`; the blob's Content-Type is `x-ms-blob-content-type`, else the
  request's Content-Type, else application/octet-stream; at most 5000 MiB in one request.
- Put Block (`comp=block&blockid=...`): the id is base64 of at most 64 bytes, every id of one blob has the
  same length; a block holds at most 4000 MiB; the block stays uncommitted, invisible to readers.
- Put Block List (`comp=blocklist`): an XML <BlockList> of <Latest>/<Uncommitted>/<Committed> ids, each of
  which must exist (InvalidBlockList); at most 50,000 blocks. The blob's Content-Type is
  `x-ms-blob-content-type` (the request's own Content-Type describes the XML). Uncommitted blocks go.
- `x-ms-version` is optional with a SAS, but a value Azure does not know is refused (InvalidHeaderValue).
- Get Blob answers the committed bytes with their Content-Type, and a `Range: bytes=a-b` with 206.

Anything else is refused with Azure's error code, so a client that would fail on Azure fails here.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

MIB = 1024 * 1024
MAX_PUT_BLOB_BYTES = 5000 * MIB
MAX_BLOCK_BYTES = 4000 * MIB
MAX_COMMITTED_BLOCKS = 50_000
MAX_BLOCK_ID_BYTES = 64
# The first and the newest Blob service versions this fake knows; @azure/storage-blob 12.32.0 sends 2026-04-06.
_OLDEST_VERSION, _NEWEST_VERSION = "2009-09-19", "2026-04-06"
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")

Answer = tuple[int, bytes, dict[str, str]]


@dataclass
class AzureBlob:
    """One block blob: its committed bytes (None until the first commit) and the blocks staged for it."""

    data: bytes | None = None
    content_type: str = "application/octet-stream"
    uncommitted: dict[str, bytes] = field(default_factory=dict)
    committed: list[tuple[str, bytes]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    """The operations that wrote it ("PutBlob", "PutBlock", "PutBlockList"), in order."""


def error(status: int, code: str, message: str) -> Answer:
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return status, xml.encode(), {"Content-Type": "application/xml", "x-ms-error-code": code}


def check_version(headers: dict[str, str]) -> Answer | None:
    version = headers.get("x-ms-version")
    if version is None or (_VERSION.match(version) and _OLDEST_VERSION <= version <= _NEWEST_VERSION):
        return None
    return error(400, "InvalidHeaderValue", f"the value for x-ms-version ({version}) is not supported")


def write(blob: AzureBlob, params: dict[str, str], headers: dict[str, str], body: bytes) -> Answer:
    """A PUT to the blob: Put Blob, Put Block or Put Block List, chosen by `comp`."""
    if "content-length" not in headers:
        return error(411, "MissingContentLengthHeader", "Content-Length is required")
    if int(headers["content-length"]) != len(body):
        return error(400, "InvalidInput", "Content-Length differs from the body")
    comp = params.get("comp")
    if comp is None:
        return _put_blob(blob, headers, body)
    if comp == "block":
        return _put_block(blob, params, body)
    if comp == "blocklist":
        return _put_block_list(blob, headers, body)
    return error(400, "InvalidQueryParameterValue", f"comp={comp} is not supported for PUT")


def read(blob: AzureBlob, headers: dict[str, str]) -> Answer:
    """Get Blob: the committed bytes, whole or the requested range."""
    if blob.data is None:
        return error(404, "BlobNotFound", "the specified blob does not exist")
    data, answer_headers = blob.data, {"Content-Type": blob.content_type, "Accept-Ranges": "bytes"}
    requested = headers.get("x-ms-range") or headers.get("range")
    if requested is None:
        return 200, data, answer_headers
    match = _RANGE.match(requested)
    if match is None or int(match.group(1)) >= len(data):
        return error(416, "InvalidRange", "the range specified is invalid for the current size of the resource")
    start = int(match.group(1))
    end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
    return 206, data[start : end + 1], {**answer_headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}


def _put_blob(blob: AzureBlob, headers: dict[str, str], body: bytes) -> Answer:
    blob_type = headers.get("x-ms-blob-type")
    if blob_type is None:
        return error(400, "MissingRequiredHeader", "x-ms-blob-type is required")
    if blob_type != "BlockBlob":
        return error(400, "InvalidHeaderValue", "this store holds block blobs only: x-ms-blob-type: BlockBlob")
    if len(body) > MAX_PUT_BLOB_BYTES:
        return error(413, "RequestBodyTooLarge", "the request body is too large for one Put Blob")
    blob.data = body
    blob.content_type = headers.get("x-ms-blob-content-type") or headers.get("content-type") or blob.content_type
    blob.uncommitted.clear()
    blob.committed = []
    blob.requests.append("PutBlob")
    return 201, b"", {}


def _put_block(blob: AzureBlob, params: dict[str, str], body: bytes) -> Answer:
    block_id = params.get("blockid")
    if not block_id:
        return error(400, "MissingRequiredQueryParameter", "blockid is required")
    try:
        decoded = base64.b64decode(block_id, validate=True)
    except binascii.Error:
        return error(400, "InvalidQueryParameterValue", "blockid must be base64")
    lengths = {len(known) for known in blob.uncommitted} | {len(known) for known, _ in blob.committed}
    if len(decoded) > MAX_BLOCK_ID_BYTES or (lengths and lengths != {len(block_id)}):
        return error(400, "InvalidBlobOrBlock", "the specified blob or block content is invalid")
    if len(body) > MAX_BLOCK_BYTES:
        return error(413, "RequestBodyTooLarge", "the block is larger than 4000 MiB")
    blob.uncommitted[block_id] = body
    blob.requests.append("PutBlock")
    return 201, b"", {}


def _put_block_list(blob: AzureBlob, headers: dict[str, str], body: bytes) -> Answer:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return error(400, "InvalidXmlDocument", "the XML is not well formed")
    if root.tag != "BlockList" or any(child.tag not in ("Latest", "Uncommitted", "Committed") for child in root):
        return error(400, "InvalidXmlDocument", "expected <BlockList> of <Latest>, <Uncommitted> or <Committed>")
    if len(root) > MAX_COMMITTED_BLOCKS:
        return error(400, "InvalidBlockList", "more than 50,000 blocks")
    committed = dict(blob.committed)
    blocks: list[tuple[str, bytes]] = []
    for child in root:
        block_id = child.text or ""
        staged = blob.uncommitted.get(block_id) if child.tag in ("Latest", "Uncommitted") else None
        found = staged if staged is not None or child.tag == "Uncommitted" else committed.get(block_id)
        if found is None:
            return error(400, "InvalidBlockList", "the specified block list is invalid")
        blocks.append((block_id, found))
    blob.committed = blocks
    blob.data = b"".join(data for _, data in blocks)
    blob.content_type = headers.get("x-ms-blob-content-type") or "application/octet-stream"
    blob.uncommitted.clear()
    blob.requests.append("PutBlockList")
    return 201, b"", {}
