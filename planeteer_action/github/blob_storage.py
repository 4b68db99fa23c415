"""Bytes to and from the signed Azure blob URLs the artifact and cache services hand out.

Uploads follow @actions/artifact (lib/internal/upload/blob-upload.js), which stages 8 MiB blocks
(`getUploadChunkSize`) through @azure/storage-blob and declares the blob's Content-Type on the commit. A blob
that fits in one block goes up as a single Put Blob instead: Azure accepts both, and one request is cheaper.
The signed URL is the only credential: no Authorization header ever goes to the blob host.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import requests

from planeteer_action.github._twirp import HttpTransport
from planeteer_action.redaction import redact_url

# The Blob service version @azure/storage-blob 12.32.0 sends (dist/esm/utils/constants.js, SERVICE_VERSION).
AZURE_STORAGE_VERSION = "2026-04-06"
# @actions/artifact lib/internal/shared/config.js getUploadChunkSize(): "8 MB Chunks".
BLOCK_SIZE = 8 * 1024 * 1024


def put_blob(transport: HttpTransport, label: str, signed_url: str, data: bytes, content_type: str) -> None:
    """Upload `data` as a block blob whose Content-Type is `content_type`: one Put Blob up to BLOCK_SIZE,
    above it Put Block per BLOCK_SIZE slice and one Put Block List."""
    if len(data) <= BLOCK_SIZE:
        headers = {"x-ms-version": AZURE_STORAGE_VERSION, "x-ms-blob-type": "BlockBlob", "Content-Type": content_type}
        response = transport.send(label, "PUT", signed_url, data=data, headers=headers)
        _expect_created(transport, label, signed_url, response)
        return
    block_ids = []
    for index, offset in enumerate(range(0, len(data), BLOCK_SIZE)):
        # Azure wants every block id of a blob base64-encoded and of one length.
        block_id = base64.b64encode(f"planeteer-block-{index:08d}".encode()).decode()
        block_ids.append(block_id)
        url = f"{signed_url}&comp=block&blockid={quote(block_id, safe='')}"
        headers = {"x-ms-version": AZURE_STORAGE_VERSION, "Content-Type": "application/octet-stream"}
        response = transport.send(label, "PUT", url, data=data[offset : offset + BLOCK_SIZE], headers=headers)
        _expect_created(transport, label, signed_url, response)
    listed = "".join(f"<Latest>{escape(block_id)}</Latest>" for block_id in block_ids)
    body = f'<?xml version="1.0" encoding="utf-8"?><BlockList>{listed}</BlockList>'.encode()
    headers = {
        "x-ms-version": AZURE_STORAGE_VERSION,
        "x-ms-blob-content-type": content_type,
        "Content-Type": "application/xml",
    }
    response = transport.send(label, "PUT", f"{signed_url}&comp=blocklist", data=body, headers=headers)
    _expect_created(transport, label, signed_url, response)


def _expect_created(transport: HttpTransport, label: str, signed_url: str, response: requests.Response) -> None:
    response.close()
    if response.status_code not in (200, 201):
        code = response.headers.get("x-ms-error-code")
        detail = f" ({code})" if code else ""
        raise transport.error(
            f"{label}: blob storage answered HTTP {response.status_code}{detail} for {redact_url(signed_url)}",
            status=response.status_code,
        )


def get_blob(transport: HttpTransport, label: str, signed_url: str, *, max_bytes: int | None = None) -> bytes:
    """Download a signed blob URL, refusing more than `max_bytes` (checked before and while reading)."""
    headers = {"x-ms-version": AZURE_STORAGE_VERSION}
    response = transport.send(label, "GET", signed_url, stream=True, headers=headers)
    with response:
        if response.status_code != 200:
            raise transport.error(
                f"{label}: blob storage answered HTTP {response.status_code} for {redact_url(signed_url)}",
                status=response.status_code,
            )
        declared = response.headers.get("Content-Length", "")
        if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
            raise transport.error(f"{label}: {declared} bytes is more than the limit of {max_bytes} bytes")
        chunks: list[bytes] = []
        received = 0
        # A declared size (within the limit: checked) is read as one chunk: joining 1 MiB chunks would copy the
        # whole body once more, time a restore's other downloads wait for after its head's segment.
        chunk_size = int(declared) if declared.isdigit() and int(declared) > 0 else 1 << 20
        try:
            for chunk in response.iter_content(chunk_size=chunk_size):
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise transport.error(f"{label}: the download exceeds the limit of {max_bytes} bytes")
                chunks.append(chunk)
        except requests.RequestException as exc:
            host = urlsplit(signed_url).netloc
            raise transport.error(f"{label}: the download from {host} broke off ({type(exc).__name__})") from None
    return b"".join(chunks)
