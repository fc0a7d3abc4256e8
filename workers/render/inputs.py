"""What a target's artifacts are made of: its input projection, and the fingerprint of it.

Rendering a target is two steps:

1. **prepare** (trusted Lintas code, reads the model): everything the target's artifacts
   depend on is copied out of the model into a :class:`TargetInput`: the template calls
   with their plain-data contexts, and the plain data the Python side builds its own
   artifacts and checks from;
2. **render + finish** (never sees the model): the calls go to the template sandbox, and
   ``finish`` turns the input and the rendered texts into ``{artifact: text}``.

Step 2 is a pure function of the input, the repo's templates and the renderer's own code.
The :func:`fingerprint` hashes exactly those three, so two equal fingerprints mean
byte-identical artifacts. That is what makes incremental rendering sound *by
construction*: the render stage re-renders a target whenever its fingerprint differs
from the previous commit's, and a template or model change can never be missed, whatever
the templates read (no hand-kept dependency table; see :mod:`workers.model.graph` for the
explanation of a change, which is not used to decide what to render).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jinja2
import pydantic_core
from pydantic_core import to_json

from lintas.workers.render.env import TemplateCall, digest_files

Finish = Callable[["TargetInput", Sequence[str]], dict[str, str]]


@dataclass(frozen=True)
class TargetInput:
    """The projection of the model one target's artifacts are rendered from."""

    target: str
    kind: Literal["device", "host"]
    calls: tuple[TemplateCall, ...]  # templates to render, in order
    data: Any  # plain data, dataclasses or pydantic models the ``finish`` step reads
    finish: Finish = field(compare=False, repr=False)


def _code_digest() -> str:
    """The renderer's own code and built-in templates, and the model's classes whose properties
    ``finish`` may read: a new Lintas version re-renders everything once."""
    here = Path(__file__).resolve().parent
    model = here.parent / "model"
    files = {
        str(p.relative_to(here.parent)): p.read_bytes()
        for p in [*here.glob("*.py"), *(here / "templates").rglob("*"), *model.glob("*.py")]
        if p.is_file()
    }
    # the libraries that shape the output too
    files["versions"] = f"{sys.version}|jinja2 {jinja2.__version__}|pydantic-core {pydantic_core.__version__}".encode()
    return digest_files(files)


CODE_DIGEST = _code_digest()


def fingerprint(inp: TargetInput, templates_digest: str) -> str:
    """Equal fingerprints, byte-identical artifacts: a hash of the whole input of ``finish``
    and of the template calls, the template set and the renderer's code.

    The serialisation (pydantic-core's JSON of dataclasses, models, dicts in their order)
    is injective for the values the model holds; where two equal values could serialise
    differently (a mapping in another key order), the target renders again: an
    over-approximation, never a miss."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"{CODE_DIGEST}\0{templates_digest}\0{inp.kind}\0{inp.target}\0".encode())
    h.update(to_json([[c.template, c.target, c.context] for c in inp.calls]))
    h.update(b"\0")
    h.update(to_json(inp.data))
    return h.hexdigest()
