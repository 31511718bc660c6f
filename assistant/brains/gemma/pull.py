"""`assistant models pull e2b|e4b`: download exactly the files the runtime needs.

Never called at run time. Uses huggingface_hub: the file list and each file's
LFS sha256 come from the hub's metadata (pinned to one commit), downloads resume
where they stopped (``hf_hub_download`` into a local folder), and every LFS file
is hashed after download and compared with the hub's sha256 (git-stored files
are checked by size). Vision-encoder files and other precisions are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.brains.gemma.files import GRAPHS, METADATA_FILES, VARIANT_SUFFIX, graph_files
from assistant.errors import ModelFilesError

_LOGGER = logging.getLogger(__name__)

REPOS: Mapping[str, str] = {
    "e2b": "onnx-community/gemma-4-E2B-it-ONNX",
    "e4b": "onnx-community/gemma-4-E4B-it-ONNX",
}
"""Short model name -> Hugging Face repository (also listed in models/*.yaml)."""

Progress = Callable[[str, int, int], None]
"""Called as (file name, files done, files total) before each file and once at the end."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of the repository as the hub describes it."""

    name: str
    size: int | None = None
    sha256: str | None = None
    """LFS sha256, None for files stored in git."""


def select_files(available: Iterable[str], variant: str, audio_variant: str) -> list[str]:
    """The repository files to fetch: metadata plus the three graphs and all their external-data shards.

    Raises ModelFilesError when a required file is not in the repository.
    """
    names = set(available)
    wanted = [name for name in METADATA_FILES if name in names]
    missing = [
        name
        for name in ("config.json", "generation_config.json", "tokenizer.json", "processor_config.json")
        if name not in names
    ]
    for graph in graph_files(variant, audio_variant).values():
        if graph not in names:
            missing.append(graph)
            continue
        wanted.append(graph)
        shard = re.compile(re.escape(graph) + r"_data(?:_\d+)?$")
        wanted += sorted((n for n in names if shard.match(n)), key=_shard_order)
    if missing:
        raise ModelFilesError("the repository lacks " + ", ".join(missing))
    return wanted


def _shard_order(name: str) -> tuple[int, str]:
    match = re.search(r"_data_(\d+)$", name)
    return (int(match.group(1)) if match else 0, name)


def verify_file(path: Path, remote: RemoteFile) -> str | None:
    """None when the local file matches the hub's size and sha256, else what is wrong."""
    if not path.is_file():
        return f"{remote.name}: missing after download"
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"{remote.name}: {size} bytes, the hub says {remote.size}"
    if remote.sha256:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != remote.sha256.lower():
            return f"{remote.name}: sha256 mismatch (corrupt or changed download)"
    return None


def _remote_files(repo: str, revision: str | None) -> tuple[str, dict[str, RemoteFile]]:
    from huggingface_hub import HfApi  # noqa: PLC0415  (optional dependency: the gemma extra)

    info: Any = HfApi().model_info(repo, revision=revision, files_metadata=True)
    files: dict[str, RemoteFile] = {}
    for sibling in info.siblings or []:
        lfs = getattr(sibling, "lfs", None)
        sha = getattr(lfs, "sha256", None) if lfs is not None else None
        files[sibling.rfilename] = RemoteFile(sibling.rfilename, getattr(sibling, "size", None), sha)
    return str(info.sha), files


def fetch(repo: str, dest: Path | str, select: Callable[[Iterable[str]], list[str]],
          progress: Progress | None = None, *, revision: str | None = None) -> tuple[Path, str]:
    """Download ``select``'s pick of the repository's files into ``dest`` (resumable, each file
    checked against the hub's sha256 or size); returns ``dest`` and the commit it came from.
    Raises ModelFilesError for a file missing from the repository or a failed check."""
    from huggingface_hub import hf_hub_download  # noqa: PLC0415  (optional dependency)

    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    commit, remote = _remote_files(repo, revision)
    names = select(remote)
    total_bytes = sum(remote[n].size or 0 for n in names)
    _LOGGER.info(
        "pulling %d files (%.2f GB) of %s@%s into %s", len(names), total_bytes / 1e9, repo, commit[:12], dest
    )
    problems = []
    for index, name in enumerate(names):
        if progress is not None:
            progress(name, index, len(names))
        local = dest / name
        if verify_file(local, remote[name]) is None:
            continue  # already complete and intact
        hf_hub_download(repo, name, revision=commit, local_dir=str(dest))
        problem = verify_file(local, remote[name])
        if problem:
            problems.append(problem)
    if progress is not None:
        progress("", len(names), len(names))
    if problems:
        raise ModelFilesError("download incomplete: " + "; ".join(problems))
    return dest, commit


def pull(
    model: str,
    dest: Path | str,
    variant: str = "q4",
    audio_variant: str = "fp32",
    progress: Progress | None = None,
    *,
    revision: str | None = None,
) -> Path:
    """Download the model's needed files into ``dest`` (resumable, verified); returns ``dest``."""
    if model not in REPOS:
        raise ModelFilesError(f"unknown model {model!r}; one of {', '.join(REPOS)}")
    for value in (variant, audio_variant):
        if value not in VARIANT_SUFFIX:
            raise ModelFilesError(f"unknown variant {value!r}; one of {', '.join(VARIANT_SUFFIX)}")
    repo = REPOS[model]
    path, commit = fetch(repo, dest, lambda names: select_files(names, variant, audio_variant), progress,
                         revision=revision)
    (path / ".assistant-model").write_text(
        f"repo: {repo}\nrevision: {commit}\nvariant: {variant}\naudio_variant: {audio_variant}\n",
        encoding="utf-8",
    )
    return path


__all__ = ["GRAPHS", "REPOS", "RemoteFile", "fetch", "pull", "select_files", "verify_file"]
