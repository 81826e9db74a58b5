"""Where each value mirtag writes lives in each tag format: the one field table.

README.md shows the same table (a test compares them), so what the docs promise
is what the writer does. Keys are as mutagen names them:

- ID3 (MP3, AIFF, WAV): a frame ``HashKey`` (``TCON``, ``TMOO``, ``TXXX:DESC``).
  ID3v2.3 has no TMOO (``update_to_v23`` deletes it), so moods go to
  ``TXXX:MOOD`` there; several values in a v2.3 text frame are joined with
  ``"; "`` (mutagen's default ``"/"`` cannot be told apart from ``Pop/Rock``).
- Vorbis comments (FLAC, Ogg Vorbis, Opus): a field name, repeated per value.
- MP4: an atom name; ``----:mean:name`` is an iTunes free-form atom.
- ASF (WMA): an attribute name.
"""

from __future__ import annotations

from dataclasses import dataclass

ID3V23_SEPARATOR = "; "
"""How several values share one ID3v2.3 text frame (TagLib and foobar2000 split on it)."""

SYSTEMS = ("id3v24", "id3v23", "vorbis", "mp4", "asf")
"""The tag systems, in table order."""

SYSTEM_TITLES = {
    "id3v24": "ID3v2.4 (MP3, AIFF)",
    "id3v23": "ID3v2.3",
    "vorbis": "Vorbis comments (FLAC, Ogg, Opus)",
    "mp4": "MP4/M4A",
    "asf": "ASF/WMA",
}


@dataclass(frozen=True)
class Field:
    """One value mirtag writes and its key in each tag system.

    Attributes
    ----------
    value : str
        ``genres``, ``moods`` or a ``mirtag_*`` value.
    head : str or None
        The model head it comes from (None: not from a head).
    keys : dict[str, str]
        Tag system (see :data:`SYSTEMS`) -> key.
    user : bool
        True for fields players show and users edit (genre, mood): the write
        policy (fill/merge/replace) applies. mirtag's own fields are always
        refreshed.
    """

    value: str
    head: str | None
    keys: dict[str, str]
    user: bool

    def key(self, system: str) -> str:
        return self.keys[system]


def _own(name: str, head: str | None) -> Field:
    tag = f"MIRTAG_{name}"
    return Field(
        f"mirtag_{name.lower()}",
        head,
        {
            "id3v24": f"TXXX:{tag}",
            "id3v23": f"TXXX:{tag}",
            "vorbis": tag,
            "mp4": f"----:com.apple.iTunes:{tag}",
            "asf": tag,
        },
        user=False,
    )


FIELDS: tuple[Field, ...] = (
    Field(
        "genres",
        "genre",
        {"id3v24": "TCON", "id3v23": "TCON", "vorbis": "GENRE", "mp4": "\u00a9gen", "asf": "WM/Genre"},
        user=True,
    ),
    Field(
        "moods",
        "moods",
        {
            "id3v24": "TMOO",
            "id3v23": "TXXX:MOOD",
            "vorbis": "MOOD",
            "mp4": "----:com.apple.iTunes:MOOD",
            "asf": "WM/Mood",
        },
        user=True,
    ),
    _own("QUADRANT", "quadrant"),
    _own("TAGS", "tags"),
    _own("MUSIC", "music"),
    _own("MODEL", None),
)
"""Every field mirtag may write, in table order."""

BY_VALUE = {f.value: f for f in FIELDS}
BY_HEAD = {f.head: f for f in FIELDS if f.head}
WRITABLE_HEADS = ("genre", "moods", "quadrant", "tags")
"""Heads ``--heads`` may name; ``music`` and the model name are always written."""

VALUE_NOTES = {
    "genres": "genres (`genre` head)",
    "moods": "moods (`moods` head)",
    "mirtag_quadrant": "mood quadrant Q1-Q4 (`quadrant` head)",
    "mirtag_tags": "tags (`tags` head, when the model has one)",
    "mirtag_music": "music probability, 2 decimals (`music` head)",
    "mirtag_model": "model `name@version`",
}


def markdown_table() -> str:
    """The field table as Markdown (README.md holds exactly this text)."""
    lines = ["| value | " + " | ".join(SYSTEM_TITLES[s] for s in SYSTEMS) + " |", "|---" * (len(SYSTEMS) + 1) + "|"]
    for f in FIELDS:
        cells = [f"`{f.keys[s]}`" for s in SYSTEMS]
        lines.append(f"| {VALUE_NOTES[f.value]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
