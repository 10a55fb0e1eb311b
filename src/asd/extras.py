"""Optional dependencies: what each extra of ``pip install asd[...]`` brings, and the error that names
it when a model needs one that is missing (instead of an ImportError deep in Hydra's instantiation)."""

from __future__ import annotations

import importlib.util

#: extra -> the import names it provides (pyproject.toml [project.optional-dependencies])
EXTRAS = {
    "pretrained": ("transformers", "peft"),
    # openbeats imports torchaudio, whose last release (2.11) loads only against torch 2.11
    "beats": ("openbeats",),
}


class MissingExtraError(ImportError):
    """A model or encoder that needs an extra which is not installed; the message says which."""


def require_extra(extra: str, needed_by: str) -> None:
    """Raise :class:`MissingExtraError` naming ``pip install 'asd[<extra>]'`` unless the extra is installed."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        note = " (it pins torch to 2.11: openbeats needs torchaudio, whose last build loads only with it)"
        raise MissingExtraError(
            f"{needed_by} needs {', '.join(missing)}, which the core install leaves out: "
            f"pip install 'asd[{extra}]'{note if extra == 'beats' else ''}"
        )
