"""The ``posrag`` command: one Typer app, one module per command under :mod:`posrag.cli`."""

from __future__ import annotations

import typer

from posrag.cli import bench, calibrate, choose_prompt, compare, demo, doctor, explore, profile

app = typer.Typer(
    name="posrag",
    help="Position-aware RAG for small local language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main() -> None:
    """Position-aware RAG for small local language models."""


demo.register(app)
explore.register(app)
doctor.register(app)

bench.register(app)
choose_prompt.register(bench.bench_app)
compare.register(bench.bench_app)
profile.register(app)
calibrate.register(app)

if __name__ == "__main__":  # pragma: no cover
    app()
