"""The ``riskwire`` command: an entry point and composition root.

Core commands live here (broker, worker, serve, generate, replay, demo); each feature
adds its own from ``detector/commands/<name>.py`` via ``register(app)``. Settings are
read once, here, and passed down.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="riskwire",
    help="Real-time fraud and abuse engine for online shops.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python is chatty at INFO about every connection.
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _register_commands() -> None:
    import detector.commands as commands_pkg

    for info in sorted(pkgutil.iter_modules(commands_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"detector.commands.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
