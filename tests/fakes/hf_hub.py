"""`FakeHub`: the Hugging Face Hub's HTTP API for dataset repos a test made, on a local port.

Point `HF_ENDPOINT` at `FakeHub.url` and the real `huggingface_hub` / `datasets` code
downloads the repo's files as it would from huggingface.co. It answers what that code asks
for a public dataset repo, as the Hub documents and does it
(https://huggingface.co/docs/hub/api, https://huggingface.co/docs/huggingface_hub/package_reference/file_download):

- `GET /api/datasets/{repo_id}[/revision/{revision}]`: the repo's info (`id`, `sha`,
  `siblings`, `cardData`, ...);
- `GET /api/datasets/{repo_id}/tree/{revision}[/{path}]` (`recursive`): the files and
  folders, each with its git `oid` and `size` (and `lfs` for files stored in LFS);
- `POST /api/datasets/{repo_id}/paths-info/{revision}`: the same entries for given paths;
- `GET`/`HEAD /datasets/{repo_id}/resolve/{revision}/{path}`: the file, with the headers
  the download code relies on (`X-Repo-Commit`, `ETag`, and for LFS files `X-Linked-Etag`
  with the sha256 and `X-Linked-Size`), byte ranges included;
- a repo that does not exist is a 401 with `X-Error-Code: RepoNotFound` (the Hub does not
  say whether a repo it will not show you exists); a missing file a 404 with
  `X-Error-Code: EntryNotFound`; a revision other than `main` or the commit a 404 with
  `X-Error-Code: RevisionNotFound`.

Left out: authentication and gated or private repos, the Xet storage protocol (files are
served directly, as for repos not on Xet), branches other than `main`, commits, the
dataset viewer (`datasets-server`), and every other endpoint (404). `requests` records each
request as `(method, path)` for tests to inspect.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeHub"]

#: Files the Hub keeps in LFS: what `.gitattributes` of a new dataset repo marks (parquet,
#: arrow, archives, media), by suffix.
_LFS_SUFFIXES = (".parquet", ".arrow", ".zip", ".gz", ".tar", ".png", ".jpg", ".npy")

_INFO = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+|[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_TREE = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$")
_PATHS = re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/paths-info/(?P<rev>[^/]+)$")
_RESOLVE = re.compile(r"^/datasets/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Repo:
    """A dataset repo: its files (from a folder, read once) and one commit on `main`."""

    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        listing = "\n".join(f"{k} {_git_blob_oid(v)}" for k, v in self.files.items())
        self.sha = hashlib.sha1(listing.encode()).hexdigest()

    def is_lfs(self, path: str) -> bool:
        return path.endswith(_LFS_SUFFIXES)

    def entry(self, path: str) -> dict[str, Any]:
        """The tree entry of a file or folder, as `/tree` and `/paths-info` give it."""
        if path not in self.files:
            return {"type": "directory", "path": path, "oid": _git_blob_oid(path.encode())}
        data = self.files[path]
        entry: dict[str, Any] = {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": _git_blob_oid(data),
        }
        if self.is_lfs(path):
            sha256 = hashlib.sha256(data).hexdigest()
            entry["lfs"] = {"oid": sha256, "size": len(data), "pointerSize": 134}
        return entry

    def folders(self) -> set[str]:
        return {"/".join(p.split("/")[:i]) for p in self.files for i in range(1, p.count("/") + 1)}

    def tree(self, path: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = f"{path}/" if path else ""
        names = sorted(set(self.files) | self.folders())
        inside = [n for n in names if n.startswith(prefix)]
        if not recursive:
            inside = [n for n in inside if "/" not in n[len(prefix) :]]
        return [self.entry(n) for n in inside]

    def info(self) -> dict[str, Any]:
        return {
            "_id": self.sha[:24],
            "id": self.repo_id,
            "author": self.repo_id.split("/")[0] if "/" in self.repo_id else None,
            "sha": self.sha,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "cardData": {},
            "siblings": [{"rfilename": name} for name in self.files],
            "createdAt": "2026-01-01T00:00:00.000Z",
        }


class FakeHub:
    """Serves dataset repos made from local folders at `url` (127.0.0.1, a free port).

    Parameters
    ----------
    repos : dict[str, Path]
        Repo id (`owner/name`) -> the folder whose files are the repo's files.
    """

    def __init__(self, repos: dict[str, Path]) -> None:
        self._repos = {repo_id: _Repo(repo_id, folder) for repo_id, folder in repos.items()}
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint to put in `HF_ENDPOINT`."""
        assert self._server is not None, "start the fake hub first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Listen on a free loopback port, in a background thread."""
        hub = self

        class Handler(_Handler):
            owner = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-hf-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def repo(self, repo_id: str) -> _Repo | None:
        """The repo, if the fake has it."""
        return self._repos.get(unquote(repo_id))


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `FakeHub.requests`."""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode() if length else ""
        self._answer(body=True, form=form)

    def _answer(self, *, body: bool, form: str = "") -> None:
        url = urlsplit(self.path)
        self.owner.requests.append((self.command, url.path))
        query = parse_qs(url.query)
        if self.command == "POST" and (m := _PATHS.match(url.path)):
            repo = self._repo(m["repo"], m["rev"])
            if repo is not None:
                wanted = self._paths(form)
                known = set(repo.files) | repo.folders()
                self._json([repo.entry(p) for p in wanted if p in known], body)
        elif self.command == "POST":
            self._error(HTTPStatus.NOT_FOUND, "EntryNotFound", "no such endpoint", body)
        elif m := _RESOLVE.match(url.path):
            repo = self._repo(m["repo"], m["rev"])
            if repo is not None:
                self._file(repo, unquote(m["path"]), body)
        elif m := _TREE.match(url.path):
            repo = self._repo(m["repo"], m["rev"])
            if repo is not None:
                path = unquote(m["path"] or "").strip("/")
                if path and path not in repo.folders() and path not in repo.files:
                    self._error(HTTPStatus.NOT_FOUND, "EntryNotFound", f"{path} not found", body)
                else:
                    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                    self._json(repo.tree(path, recursive), body)
        elif m := _INFO.match(url.path):
            repo = self._repo(m["repo"], m["rev"] or "main")
            if repo is not None:
                self._json(repo.info(), body)
        else:
            self._error(HTTPStatus.NOT_FOUND, "EntryNotFound", "no such endpoint", body)

    def _paths(self, form: str) -> list[str]:
        if form.lstrip().startswith("{"):
            paths = json.loads(form).get("paths", [])
            return [paths] if isinstance(paths, str) else list(paths)
        return parse_qs(form).get("paths", [])

    def _repo(self, repo_id: str, revision: str) -> _Repo | None:
        repo = self.owner.repo(repo_id)
        if repo is None:
            self._error(HTTPStatus.UNAUTHORIZED, "RepoNotFound", "Repository not found", True)
            return None
        if unquote(revision) not in ("main", repo.sha):
            self._error(HTTPStatus.NOT_FOUND, "RevisionNotFound", "Invalid rev id", True)
            return None
        return repo

    def _file(self, repo: _Repo, path: str, body: bool) -> None:
        data = repo.files.get(path)
        if data is None:
            self._error(HTTPStatus.NOT_FOUND, "EntryNotFound", "Entry not found", body)
            return
        entry = repo.entry(path)
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{entry["oid"]}"'}
        if "lfs" in entry:
            headers["X-Linked-Etag"] = f'"{entry["lfs"]["oid"]}"'
            headers["X-Linked-Size"] = str(len(data))
        status, chunk = HTTPStatus.OK, data
        if (ranged := re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")) and (
            ranged[1] or ranged[2]
        ):
            if ranged[1]:
                start = int(ranged[1])
                end = min(int(ranged[2]), len(data) - 1) if ranged[2] else len(data) - 1
            else:
                start, end = max(len(data) - int(ranged[2]), 0), len(data) - 1
            status, chunk = HTTPStatus.PARTIAL_CONTENT, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self.send_response(status)
        for name, value in {**headers, "Accept-Ranges": "bytes"}.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if body:
            self.wfile.write(chunk)

    def _json(self, value: Any, body: bool) -> None:
        data = json.dumps(value).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _error(self, status: HTTPStatus, code: str, message: str, body: bool) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def write_image_dataset_repo(
    folder: Path,
    *,
    config_name: str,
    image_column: str,
    classes: int = 10,
    rows: dict[str, int] | None = None,
    size: int = 8,
) -> dict[str, int]:
    """Write a dataset repo like the Hub's `ylecun/mnist` or `uoft-cs/cifar10` into `folder`.

    Each split is one parquet file `<config_name>/<split>-00000-of-00001.parquet`, written by
    `datasets` (`to_parquet`): an `Image` column `image_column` (PNG bytes of `size`x`size`
    grey images whose every pixel is the label) and a `ClassLabel` column `label`; the
    README's YAML header names the config, its data files and features, as the Hub's do.
    Returns the rows per split.
    """
    import datasets
    import numpy as np
    import yaml
    from PIL import Image

    rows = rows or {"train": 60, "test": 20}
    names = [str(i) for i in range(classes)]
    features = datasets.Features(
        {image_column: datasets.Image(), "label": datasets.ClassLabel(names=names)}
    )
    for split, count in rows.items():
        labels = [i % classes for i in range(count)]
        images = [Image.fromarray(np.full((size, size), 20 * y, dtype=np.uint8)) for y in labels]
        dataset = datasets.Dataset.from_dict(
            {image_column: images, "label": labels}, features=features
        )
        target = folder / config_name / f"{split}-00000-of-00001.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        dataset.to_parquet(str(target))
    card = {
        "dataset_info": {
            "config_name": config_name,
            "features": [
                {"name": image_column, "dtype": "image"},
                {
                    "name": "label",
                    "dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(names)}}},
                },
            ],
            "splits": [
                {"name": s, "num_bytes": n * size * size, "num_examples": n}
                for s, n in rows.items()
            ],
        },
        "configs": [
            {
                "config_name": config_name,
                "data_files": [{"split": s, "path": f"{config_name}/{s}-*"} for s in rows],
                "default": True,
            }
        ],
    }
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(card, sort_keys=False)}---\n")
    (folder / ".gitattributes").write_text("*.parquet filter=lfs diff=lfs merge=lfs -text\n")
    return rows
