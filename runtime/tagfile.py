"""One audio file's tags through mutagen, behind a small format-neutral interface.

:class:`TagFile` reads and sets the fields of :mod:`mirtag.runtime.tagfields`
as lists of strings, whatever the container, and saves without touching any
other tag: ID3 files are loaded without version translation and saved in their
own version (v2.3 stays v2.3, with ``"; "`` between values), so frames that only
one version knows (``TSOP`` in a v2.3 file, ``TYER``) and pictures are written
back as they were read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from .errors import MirtagError
from .tagfields import ID3V23_SEPARATOR

_LOGGER = logging.getLogger(__name__)

WAV_EXTENSIONS = (".wav", ".wave")


class TagFileError(MirtagError):
    """A file's tags cannot be read or written (unsupported container, corrupt tag)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{path}: {self.reason}")


class NoRoom(Exception):
    """Raised by the padding callback: the new tag does not fit the existing padding.

    Deliberately not an OSError: mutagen converts those into its own error, and
    this one must reach the writer unchanged (nothing has been written yet).
    """


def refuse_growth(info) -> int:
    """mutagen padding callback for in-place saves: keep the file's size or abort.

    mutagen calls it after building the new tag and before the first byte is
    written; returning the padding that is left keeps every later byte where it
    was, and raising :class:`NoRoom` leaves the file untouched.
    """
    if info.padding < 0:
        raise NoRoom()
    return info.padding


def _mutagen():
    try:
        import mutagen
    except ImportError:  # a dependency of mirtag; only a broken install lacks it
        from .errors import MissingDependencyError

        raise MissingDependencyError("writing tags needs mutagen: pip install mutagen") from None
    return mutagen


class TagFile:
    """The tags of one file.

    Parameters
    ----------
    path : str
        The audio file.
    id3v24 : bool
        Save ID3 tags as v2.4 even when the file has v2.3 (default: keep the version).

    Attributes
    ----------
    system : str
        ``id3v24``, ``id3v23``, ``vorbis``, ``mp4`` or ``asf`` (see the field table).
    kind : str
        mutagen's class name (``MP3``, ``FLAC``, ``WAVE``, ...).
    has_id3v1 : bool
        An ID3v1 tag at the end (then a save writes two places, so never in place).
    one_write : bool
        A save that fits the padding is one write of one region, so it may be done in
        place: false for ID3v1 files, and for Ogg files whose comment header spans
        several pages (mutagen rewrites them page by page).
    """

    def __init__(self, path: str, *, id3v24: bool = False):
        mutagen = _mutagen()
        self.path = path
        try:
            probe = mutagen.File(path)
        except mutagen.MutagenError as exc:
            raise TagFileError(path, f"cannot read its tags ({exc})") from None
        except OSError as exc:
            raise TagFileError(path, f"cannot open it ({exc.strerror or exc})") from None
        if probe is None:
            raise TagFileError(path, "unsupported container (no tag format mutagen can write)")
        self.kind = type(probe).__name__
        self._cls = type(probe)
        self._id3 = self.kind in ("MP3", "AIFF", "WAVE", "EasyMP3", "TrueAudio")
        self.id3_version: int | None = None
        self.has_id3v1 = False
        self._ogg = False
        if self._id3:
            self.f = self._open_id3(path, translate=id3v24)
            self.id3_version = 4
            if self.f.tags is not None:
                major = self.f.tags.version[1]
                self.id3_version = 3 if major == 3 and not id3v24 else 4  # v2.2 cannot be written: it becomes v2.4
            self.system = "id3v23" if self.id3_version == 3 else "id3v24"
            if self.kind in ("MP3", "WAVE"):
                self.has_id3v1 = self._find_id3v1()
        else:
            self.f = probe
            name = type(probe).__module__
            if name.startswith(
                ("mutagen.flac", "mutagen.oggvorbis", "mutagen.oggopus", "mutagen.oggflac", "mutagen.oggspeex")
            ):
                self.system = "vorbis"
                self._ogg = not name.startswith("mutagen.flac")
            elif name.startswith("mutagen.mp4"):
                self.system = "mp4"
            elif name.startswith("mutagen.asf"):
                self.system = "asf"
            else:
                raise TagFileError(
                    path,
                    f"unsupported container ({self.kind}): mirtag writes MP3, FLAC, Ogg, Opus, M4A, WMA, AIFF and WAV",
                )
        if self.f.tags is None:
            try:
                self.f.add_tags()
            except Exception as exc:  # noqa: BLE001 - mutagen raises its own error types per format
                raise TagFileError(path, f"cannot add a tag ({exc})") from None

    def _open_id3(self, path: str, translate: bool):
        """Frames as the file has them (no v2.3 -> v2.4 translation, which a v2.3 save would undo lossily)."""
        mutagen = _mutagen()
        try:
            f = self._cls(path, translate=translate)
            if not translate and f.tags is not None and f.tags.version[1] == 2:
                f = self._cls(path)  # v2.2 frames only exist translated
            return f
        except mutagen.MutagenError as exc:
            raise TagFileError(path, f"corrupt ID3 tag ({exc})") from None

    @property
    def one_write(self) -> bool:
        if self.has_id3v1:
            return False
        return not self._ogg or self._ogg_comment_pages() == 1

    def _ogg_comment_pages(self) -> int:
        """Pages holding the comment header (the second packet of the first logical stream)."""
        from mutagen.ogg import OggPage

        try:
            with open(self.path, "rb") as fh:
                first = OggPage(fh)
                page = OggPage(fh)
                while page.serial != first.serial:
                    page = OggPage(fh)
                # The comment packet starts on the stream's second page (the first holds the id header).
                n = 1
                while not (page.complete or len(page.packets) > 1):
                    page = OggPage(fh)
                    if page.serial == first.serial:
                        n += 1
                return n
        except Exception:  # noqa: BLE001 - unreadable pages: take the safe path (a copy)
            return 0

    def _find_id3v1(self) -> bool:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                if fh.tell() < 128:
                    return False
                fh.seek(-128, os.SEEK_END)
                return fh.read(3) == b"TAG"
        except OSError:
            return False

    @property
    def is_wav(self) -> bool:
        return self.kind == "WAVE" or self.path.lower().endswith(WAV_EXTENSIONS)

    # ------------------------------------------------------------------ values
    def get(self, key: str) -> list[str] | None:
        """The values of ``key`` (None when the file has no such field)."""
        tags = self.f.tags
        if self._id3:
            frames = tags.getall(key)
            if not frames:
                return None
            values = [str(t) for fr in frames for t in fr.text]
            if self.system == "id3v23":
                values = [v for text in values for v in text.split(ID3V23_SEPARATOR)]
            return values
        if self.system == "vorbis":
            return list(tags[key]) if key in tags else None
        if self.system == "mp4":
            if key not in tags:
                return None
            return [bytes(v).decode("utf-8", "replace") if key.startswith("----") else str(v) for v in tags[key]]
        vals = tags.get(key)  # asf
        return [str(v) for v in vals] if vals else None

    def set(self, key: str, values: list[str] | None) -> None:
        """Set ``key`` to ``values``; None or [] removes it."""
        tags = self.f.tags
        if not values:
            self.delete(key)
            return
        values = [str(v) for v in values]
        if self._id3:
            from mutagen.id3 import Frames

            if key.startswith("TXXX:"):
                frame = Frames["TXXX"](encoding=3, desc=key[5:], text=values)
            else:
                frame = Frames[key](encoding=3, text=values)
            tags.setall(key, [frame])
        elif self.system == "vorbis":
            tags[key] = values
        elif self.system == "mp4":
            if key.startswith("----"):
                from mutagen.mp4 import AtomDataType, MP4FreeForm

                tags[key] = [MP4FreeForm(v.encode("utf-8"), dataformat=AtomDataType.UTF8) for v in values]
            else:
                tags[key] = values
        else:
            from mutagen.asf import ASFUnicodeAttribute

            tags[key] = [ASFUnicodeAttribute(v) for v in values]

    def delete(self, key: str) -> None:
        tags = self.f.tags
        if self._id3:
            tags.delall(key)
        elif key in tags:
            del tags[key]

    # ------------------------------------------------------------------ saving
    def save(self, path: str | None = None, padding: Callable | None = None) -> None:
        """Save into ``path`` (default: the file read), keeping the ID3 version.

        Raises
        ------
        NoRoom
            From a ``padding`` callback such as :func:`refuse_growth`; nothing was written.
        TagFileError
            mutagen could not write the file.
        """
        mutagen = _mutagen()
        target = path or self.path
        try:
            if self._id3:
                kw = {
                    "v2_version": self.id3_version,
                    "v23_sep": ID3V23_SEPARATOR if self.id3_version == 3 else "/",
                    "padding": padding,
                }
                if self.kind in ("MP3", "WAVE", "EasyMP3", "TrueAudio"):
                    kw["v1"] = 1  # update an existing ID3v1 tag, never add one
                self.f.save(target, **kw)
            else:
                self.f.save(target, padding=padding)
        except NoRoom:
            raise
        except mutagen.MutagenError as exc:
            raise TagFileError(target, f"cannot write its tags ({exc})") from None
        except OSError as exc:
            raise TagFileError(target, f"cannot write its tags ({exc.strerror or exc})") from None
