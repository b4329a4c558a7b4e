"""The benchmark's generation cache: a run that stops resumes where it stopped, a re-run generates only what changed.

``posrag bench litm --cache PATH`` (:class:`GenerationCache`, one SQLite file) stores every generation as soon as
it is made. A run that ends early (a session's end, a killed worker, Ctrl-C) keeps what it generated, and the same
command run again reads those generations instead of generating them; a run with other settings reads the
generations its prompts share with the earlier one (the baseline and reference rows of a run that changes only
the steering, or adds a condition, a regime or questions) and generates the rest. A change to posrag itself is
not such a setting: it misses every entry (below).

An entry is found only under a key that covers everything that decides a greedy generation, so the cache never
gives an output the current run would not generate: posrag's own code (a digest of the installed package's
files: any change to posrag misses every entry), the backend's :meth:`~posrag.backends.Backend.fingerprint`
(the weights' and tokenizer's digests, threads, batch sizes, library versions), the generation settings, the
prompt's text and special tokens, and for a steered generation the resolved steering configuration (the
calibrated bias by band and the layers included), the plan of each target and where steering starts. Sampled
generation is refused: only a greedy output is a function of its key.

The retriever's scores of each question are stored too, under a key of posrag's code, the embedder's fingerprint
(:func:`embedder_fingerprint`: its weights' and tokenizer's digests and configuration, torch's threads, library
versions) and the question with its documents: a resumed run does not embed again what it embedded before.

A cached trial is marked ``cached`` in the trial records; its latency and memory are those measured when it was
generated. Several processes on one machine may share one file (``--jobs``; Ray actors on one machine: SQLite's
locking takes one write at a time). On a cluster each node should open a path on its own disk: SQLite's locking is
not reliable over network file systems.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posrag.errors import ConfigurationError

#: Bumped when what an entry holds, or what its key covers, changes: entries of another format are not read.
CACHE_FORMAT = 2
_TIMEOUT_S = 60.0  # how long a writer waits for another process's write to finish
_CODE_DIGEST: str | None = None


@dataclass(frozen=True)
class Generation:
    """One benchmark generation: its text, new tokens and what generating it cost (``cached``: read from a
    :class:`GenerationCache`; the cost is then the one measured by the run that generated it)."""

    text: str
    new_tokens: int
    seconds: float
    peak_mb: float | None
    delta_mb: float | None
    cached: bool = False


def code_digest() -> str:
    """The SHA-256 of the installed posrag package's files (names and contents; compiled files left out)."""
    global _CODE_DIGEST
    if _CODE_DIGEST is None:
        import posrag

        root = Path(posrag.__file__).parent
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes())
        _CODE_DIGEST = digest.hexdigest()
    return _CODE_DIGEST


def embedder_fingerprint(embedder: Any) -> dict[str, Any]:
    """What decides a sentence-transformer's scores besides its input: its class and configuration (its ``repr``:
    modules, maximum length, pooling, normalization), the weights' and tokenizer's digests where it has them,
    torch's threads and the versions of the libraries that run it."""
    import torch

    from posrag.backends.fingerprint import package_versions, tokenizer_digest, weights_digest

    tokenizer = getattr(embedder, "tokenizer", None)
    return {
        "class": f"{type(embedder).__module__}.{type(embedder).__qualname__}",
        "config": repr(embedder),
        "weights": weights_digest(embedder) if callable(getattr(embedder, "state_dict", None)) else None,
        "tokenizer": tokenizer_digest(tokenizer) if tokenizer is not None else None,
        "threads": torch.get_num_threads(),
        "versions": package_versions("torch", "transformers", "sentence-transformers"),
    }


def cache_key(identity: Mapping[str, Any], request: Mapping[str, Any]) -> str:
    """The key of one entry: the SHA-256 of what decides every entry of a run (``identity``: the code, the backend
    and generation settings, or the embedder) and of this one (``request``: the prompt and its steering, or the
    question and its documents), as canonical JSON."""
    # default=str: a value JSON cannot hold is keyed by its text (one that differs from run to run only misses).
    payload = json.dumps(
        {"format": CACHE_FORMAT, "identity": identity, "request": request}, sort_keys=True, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def prepare_cache(path: str | os.PathLike[str]) -> str:
    """Create or check the cache at ``path`` (raising as :class:`GenerationCache` does) and give its absolute path,
    for worker processes to open: a parent checks it once, before any worker loads a model."""
    with GenerationCache(path) as cache:
        return str(cache.path.resolve())


class GenerationCache:
    """Generations stored by key in one SQLite file, created when missing; each stored at once (committed).

    Refuses (:class:`~posrag.errors.ConfigurationError`, the file left as it is) a path that is a directory,
    a file that is not a posrag generation cache, and a cache of another format.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigurationError(f"--cache {self.path} is a directory; give the path of a cache file in it.")
        existed = self.path.exists()
        if not existed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit: each entry is committed (journaled, synced) as it is stored, so a killed run keeps it.
            self._db = sqlite3.connect(self.path, timeout=_TIMEOUT_S, isolation_level=None)
            self._check(existed)
        except sqlite3.DatabaseError as exc:
            if hasattr(self, "_db"):
                self._db.close()
            raise ConfigurationError(
                f"--cache {self.path} is not a posrag generation cache ({exc}); give a new path, or that of a "
                "cache an earlier run wrote."
            ) from None

    def _check(self, existed: bool) -> None:
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if existed and tables and "posrag_cache" not in tables:
            raise sqlite3.DatabaseError("it holds other tables")
        if "posrag_cache" not in tables:
            self._db.execute("CREATE TABLE IF NOT EXISTS posrag_cache (name TEXT PRIMARY KEY, value TEXT)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, text TEXT NOT NULL, new_tokens INTEGER"
                " NOT NULL, seconds REAL NOT NULL, peak_mb REAL, delta_mb REAL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, scores TEXT NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO posrag_cache VALUES ('format', ?)", (str(CACHE_FORMAT),))
        found = self._db.execute("SELECT value FROM posrag_cache WHERE name = 'format'").fetchone()
        if found is None or found[0] != str(CACHE_FORMAT):
            self._db.close()
            raise ConfigurationError(
                f"--cache {self.path} was written in cache format {found[0] if found else 'unknown'}; this posrag "
                f"writes format {CACHE_FORMAT}. Give a new path (its entries could not be reused anyway)."
            )

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0])

    def get(self, key: str) -> Generation | None:
        row = self._db.execute(
            "SELECT text, new_tokens, seconds, peak_mb, delta_mb FROM generations WHERE key = ?", (key,)
        ).fetchone()
        return None if row is None else Generation(*row, cached=True)

    def put(self, key: str, generation: Generation) -> None:
        g = generation
        self._db.execute(
            "INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?, ?, ?)",
            (key, g.text, g.new_tokens, g.seconds, g.peak_mb, g.delta_mb),
        )

    def get_scores(self, key: str) -> list[float] | None:
        """A question's retrieval scores, stored by :meth:`put_scores` under ``key``; ``None`` if not stored."""
        row = self._db.execute("SELECT scores FROM scores WHERE key = ?", (key,)).fetchone()
        return None if row is None else [float(v) for v in json.loads(row[0])]

    def put_scores(self, key: str, scores: list[float]) -> None:
        """Store a question's retrieval scores (JSON keeps every float exactly)."""
        self._db.execute("INSERT OR REPLACE INTO scores VALUES (?, ?)", (key, json.dumps([float(v) for v in scores])))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "CACHE_FORMAT",
    "Generation",
    "GenerationCache",
    "cache_key",
    "code_digest",
    "embedder_fingerprint",
    "prepare_cache",
]
