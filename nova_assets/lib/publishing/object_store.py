"""A copy of the raw dumps and the published tables in an S3-compatible object store, so that
readers on other machines can query the tables and fetch the dump they came from.

Layout under the store's URL (`s3://bucket/prefix`):
- `raw/<sha256>.<ext>`: each dump, as `off_dump` brought it in;
- `tables/<table>-<publish id>.parquet`: each published table, never rewritten in place;
- `manifest.json`: table -> {key, rows, published_at}, replaced by one PUT after the Parquet
  objects it names are whole, so a reader sees one publish or the next, never half of one.

Objects no manifest names any more are deleted once unreferenced for `keep_seconds`, so a
reader who read the previous manifest can still finish. The local serving catalog stays the
source: each publish uploads what the store misses, so a publish the store refused is made up
by the next one.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

MANIFEST = "manifest.json"
CHUNK_BYTES = 8 << 20
KEEP_SECONDS = 600.0


class ObjectStoreError(RuntimeError):
    """The object store is misconfigured or refused a request."""


@dataclass(frozen=True)
class ObjectStore:
    """An `s3://bucket/prefix` URL; `endpoint_url` for an S3-compatible server other than AWS."""

    url: str
    endpoint_url: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ObjectStoreError(f"object store {self.url!r} is not an s3://bucket/prefix URL")

    @property
    def root(self) -> str:
        """`bucket/prefix`, as pyarrow's S3 filesystem names paths."""
        parts = urlsplit(self.url)
        return f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")

    @cached_property
    def filesystem(self) -> pafs.S3FileSystem:
        """Credentials come from the usual AWS chain (AWS_ACCESS_KEY_ID, ~/.aws, roles)."""
        return self._connect()

    def create_bucket(self) -> None:
        """Create the bucket if it is not there (a local stand-in's first start)."""
        bucket = self.root.split("/")[0]
        self._call("create", bucket, self._connect(allow_bucket_creation=True).create_dir, bucket)

    def _connect(self, **options: Any) -> pafs.S3FileSystem:
        endpoint = urlsplit(self.endpoint_url) if self.endpoint_url else None
        return pafs.S3FileSystem(
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https",
            connect_timeout=10,
            request_timeout=60,
            **options,
        )

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def uri(self, key: str) -> str:
        return f"s3://{self.path(key)}"

    def size(self, key: str) -> int | None:
        """The object's size; None when there is none."""
        info = self._call("look up", key, self.filesystem.get_file_info, self.path(key))
        return info.size if info.type == pafs.FileType.File else None

    def put_file(self, local: Path, key: str) -> str:
        """Upload `local`'s bytes as they are to `key` (in parts, sent in the background) unless
        an object of its size is there already; its URI. An upload cut short may leave a
        shorter object (pyarrow completes what it sent), which the next one replaces."""
        if self.size(key) != Path(local).stat().st_size:

            def write() -> None:
                with (
                    open(local, "rb") as source,
                    self.filesystem.open_output_stream(self.path(key), compression=None) as sink,
                ):
                    shutil.copyfileobj(source, sink, CHUNK_BYTES)

            self._call("upload", key, write)
        return self.uri(key)

    def put_bytes(self, data: bytes, key: str) -> None:
        def write() -> None:
            with self.filesystem.open_output_stream(self.path(key), compression=None) as stream:
                stream.write(data)

        self._call("write", key, write)

    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes as stored (a `.gz` is not inflated); None when there is none."""
        if self.size(key) is None:
            return None

        def read() -> bytes:
            with self.filesystem.open_input_stream(self.path(key), compression=None) as stream:
                return stream.read()

        return self._call("read", key, read)

    def read_manifest(self) -> dict[str, Any]:
        """The published tables: `tables` maps table -> {key, rows, published_at}.

        pyarrow reads an object as its size, then ranges of it: a manifest replaced between
        the two reads can come back cut at the old size or, from some servers, mixed, which no
        JSON parser accepts; it is then read again."""
        for attempt in range(5):
            raw = self.get_bytes(MANIFEST)
            try:
                manifest = json.loads(raw) if raw else {}
                break
            except ValueError:  # not UTF-8, or not JSON
                if attempt == 4:
                    raise ObjectStoreError(f"{self.uri(MANIFEST)} is not JSON") from None
                time.sleep(0.1)
        manifest.setdefault("tables", {})
        manifest.setdefault("retired", {})
        return manifest

    def publish(
        self, local_tables: dict[str, dict[str, Any]], keep_seconds: float = KEEP_SECONDS
    ) -> dict[str, Any]:
        """Make the store serve `local_tables` (the local serving manifest's table -> {path,
        rows, published_at}): upload the Parquet files it lacks, then replace its manifest."""
        previous = self.read_manifest()
        tables = {}
        for name, entry in sorted(local_tables.items()):
            key = f"tables/{Path(entry['path']).name}"
            if previous["tables"].get(name, {}).get("key") != key:
                self.put_file(Path(entry["path"]), key)
            tables[name] = {
                "key": key,
                "rows": entry["rows"],
                "published_at": entry["published_at"],
            }
        now = time.time()
        current_keys = {entry["key"] for entry in tables.values()}
        retired = {}
        for key, at in previous["retired"].items():
            if key in current_keys:
                continue
            if now - at > keep_seconds:
                self._call("delete", key, self.filesystem.delete_file, self.path(key))
            else:
                retired[key] = at
        for entry in previous["tables"].values():
            if entry["key"] not in current_keys:
                retired.setdefault(entry["key"], now)
        manifest = {"tables": tables, "retired": retired}
        self.put_bytes(json.dumps(manifest, indent=2, sort_keys=True).encode(), MANIFEST)
        return manifest

    def _call(self, action: str, key: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except FileNotFoundError:
            if action == "delete":
                return None
            raise ObjectStoreError(
                f"object store {self.url}: could not {action} {key}: not there"
            ) from None
        except OSError as error:
            raise ObjectStoreError(
                f"object store {self.url}: could not {action} {key}: {error}"
            ) from error
