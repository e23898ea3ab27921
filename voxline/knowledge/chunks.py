"""Documents into chunks: paragraphs packed up to a size, with a little overlap.

Markdown keeps its headings with the text under them (a chunk starts with the heading
it belongs to), so a retrieved chunk says what it is about. PDF files need ``pypdf``
(``pip install 'voxline[knowledge]'``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from voxline.errors import VoxlineError

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".text"}


@dataclass(frozen=True)
class Chunk:
    source: str
    index: int
    text: str


def read_source(path: Path) -> str:
    """The text of one document."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        try:
            import pypdf
        except ImportError:
            raise VoxlineError(f"{path}: reading PDF needs pypdf: pip install 'voxline[knowledge]'") from None
        return "\n\n".join(page.extract_text() or "" for page in pypdf.PdfReader(str(path)).pages)
    if suffix in (".html", ".htm"):
        html = path.read_text(errors="replace")
        html = re.sub(r"(?is)<(script|style).*?</\1>", " ", html)
        return re.sub(r"<[^>]+>", " ", html)
    return path.read_text(errors="replace")


def _paragraphs(text: str) -> list[tuple[str, str]]:
    """(heading, paragraph) pairs."""
    heading, out = "", []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        block = block.strip()
        if not block:
            continue
        lines = block.split("\n")
        while lines and re.match(r"^#{1,6}\s", lines[0]):
            heading = lines.pop(0).lstrip("#").strip()
        body = " ".join(line.strip() for line in lines if line.strip())
        if body:
            out.append((heading, body))
    return out


def chunk_text(text: str, source: str, *, max_chars: int = 600, overlap_chars: int = 80) -> list[Chunk]:
    """Paragraphs packed into chunks of at most ``max_chars`` (a longer paragraph is cut
    at sentence ends); each chunk after the first of a section starts with the last
    ``overlap_chars`` of the one before it."""
    pieces: list[tuple[str, str]] = []
    for heading, para in _paragraphs(text):
        if len(para) <= max_chars:
            pieces.append((heading, para))
            continue
        sentence_run = ""
        for sentence in re.split(r"(?<=[.!?])\s+", para):
            if sentence_run and len(sentence_run) + len(sentence) + 1 > max_chars:
                pieces.append((heading, sentence_run))
                sentence_run = ""
            sentence_run = f"{sentence_run} {sentence}".strip()
            while len(sentence_run) > max_chars:  # one enormous "sentence"
                pieces.append((heading, sentence_run[:max_chars]))
                sentence_run = sentence_run[max_chars:]
        if sentence_run:
            pieces.append((heading, sentence_run))
    chunks: list[Chunk] = []
    current, current_heading = "", None
    for heading, piece in pieces:
        if current and (heading != current_heading or len(current) + len(piece) + 1 > max_chars):
            chunks.append(Chunk(source, len(chunks), _titled(current_heading, current)))
            tail = current[-overlap_chars:] if overlap_chars and heading == current_heading else ""
            current = tail.split(" ", 1)[-1] if tail else ""
        current_heading = heading
        current = f"{current} {piece}".strip()
    if current:
        chunks.append(Chunk(source, len(chunks), _titled(current_heading, current)))
    return chunks


def _titled(heading: str | None, text: str) -> str:
    return f"{heading}: {text}" if heading else text
