"""Actions cache entries (cache service v2), the second home for checkpoints.

"Re-run all jobs" deletes the earlier attempts' artifacts but not the cache, so state that must survive
it is also saved here, under a key that names the run. Entries are immutable: saving an existing key is a
no-op that reports False. Restoring follows actions/cache: an exact key match first, then the newest
entry whose key starts with the key, then each restore prefix in turn (newest entry first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

import requests

from planeteer_action.github._twirp import ResultsServiceClient, RetryPolicy, ServiceError
from planeteer_action.github.availability import services
from planeteer_action.github.blob_storage import get_blob, put_blob

SERVICE = "github.actions.results.api.v1.CacheService"
# actions/cache hashes its paths and compression method into `version`; entries only match their own
# version. Ours stores raw bytes, so one fixed hash keeps save and restore in agreement.
CACHE_VERSION = hashlib.sha256(b"planeteer_action|raw-bytes|1.0").hexdigest()
# Entries hold raw bytes, not one of @actions/cache's tar archives.
CONTENT_TYPE = "application/octet-stream"
_MAX_KEY_LENGTH = 512
_MAX_KEYS = 10


class ActionsCacheError(ServiceError):
    """A cache call failed; the message is one line, without the token or any URL signature."""


@dataclass(frozen=True)
class CacheHit:
    """The entry a lookup matched, not yet downloaded: a caller that only needs its key saves the download."""

    key: str
    signed_url: str = field(repr=False)  # its signature is a credential: kept out of every repr


class ActionsCache(ResultsServiceClient):
    """Saves and restores byte blobs as Actions cache entries, as the job holding the runtime token."""

    service = SERVICE
    error_type = ActionsCacheError

    can_read = True
    can_save = True

    def __init__(
        self,
        results_url: str,
        runtime_token: str,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        version: str = CACHE_VERSION,
    ) -> None:
        """`version` is the entries' version; only another client's entries need another one."""
        super().__init__(results_url, runtime_token, session=session, retry=retry)
        self._version = version

    @classmethod
    def offered(cls, env: Mapping[str, str]) -> bool:
        """Where @actions/cache would use the v2 service (elsewhere it falls back to the legacy service, which
        this client does not speak) and the job's cache mode permits reading or writing."""
        offer = services(env)
        return offer.cache_read or offer.cache_write

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> Self | None:
        """The job's cache, knowing what its cache mode permits (`can_read`, `can_save`)."""
        client = super().from_env(env, session=session, retry=retry)
        if client is not None:
            offer = services(env)
            client.can_read, client.can_save = offer.cache_read, offer.cache_write
        return client

    def save(self, key: str, data: bytes) -> bool:
        """Store `data` under `key`; False when that key already has an entry (entries are immutable)."""
        _check_keys([key])
        try:
            created = self._twirp.call("CreateCacheEntry", {"key": key, "version": self._version})
        except ActionsCacheError as exc:
            if exc.code == "already_exists":
                return False
            raise
        upload_url = created.get("signed_upload_url")
        if not created.get("ok") or not isinstance(upload_url, str) or not upload_url:
            reason = created.get("message") or "the service did not say why"
            raise ActionsCacheError(f"CreateCacheEntry refused key {key!r}: {reason}")
        put_blob(self._twirp.transport, f"upload of cache entry {key!r}", upload_url, data, CONTENT_TYPE)
        finalized = self._twirp.call(
            "FinalizeCacheEntryUpload", {"key": key, "size_bytes": str(len(data)), "version": self._version}
        )
        if not finalized.get("ok"):
            reason = finalized.get("message") or "the service did not say why"
            raise ActionsCacheError(f"FinalizeCacheEntryUpload refused key {key!r}: {reason}")
        return True

    def restore(
        self, key: str, restore_prefixes: list[str], *, max_bytes: int | None = None
    ) -> tuple[str, bytes] | None:
        """The matched key and its bytes, or None when nothing matches `key` or any restore prefix.
        An entry larger than `max_bytes` is refused while downloading."""
        hit = self.find(key, restore_prefixes)
        return None if hit is None else (hit.key, self.download(hit, max_bytes=max_bytes))

    def find(self, key: str, restore_prefixes: list[str]) -> CacheHit | None:
        """The entry `restore` would download, or None: `key` exactly, else the newest entry under `key` or
        under each restore prefix in turn."""
        _check_keys([key, *restore_prefixes])
        answer = self._twirp.call(
            "GetCacheEntryDownloadURL",
            {"key": key, "restore_keys": restore_prefixes, "version": self._version},
        )
        download_url = answer.get("signed_download_url")
        if not answer.get("ok") or not isinstance(download_url, str) or not download_url:
            return None
        return CacheHit(str(answer.get("matched_key") or key), download_url)  # absent field: assume the exact key

    def download(self, hit: CacheHit, *, max_bytes: int | None = None) -> bytes:
        """The bytes of an entry `find` matched; more than `max_bytes` is refused while downloading."""
        label = f"download of cache entry {hit.key!r}"
        return get_blob(self._twirp.transport, label, hit.signed_url, max_bytes=max_bytes)


def _check_keys(keys: list[str]) -> None:
    """The limits actions/cache enforces before calling the service."""
    if len(keys) > _MAX_KEYS:
        raise ActionsCacheError(f"at most {_MAX_KEYS} cache keys per restore (key plus prefixes), got {len(keys)}")
    for key in keys:
        if not key or len(key) > _MAX_KEY_LENGTH or "," in key:
            raise ActionsCacheError(
                f"invalid cache key {key[:60]!r}: keys are 1 to {_MAX_KEY_LENGTH} characters without commas"
            )
