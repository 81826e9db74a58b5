"""mirtag for beets: genres, mood quadrant, moods and tags from mirtag's models, as beets fields.

Enable it with ``plugins: [mirtag]`` (``pip install ".[cpu,beets]"`` in the mirtag checkout), then::

    beet mirtag [QUERY] [--force] [--write | --nowrite]
    beet ls mirtag_quadrant:Q4 mirtag_music:0.9..

Items are analysed by mirtag's scan engine (worker processes that decode and
compute features, one batched onnxruntime session, a crashed or stuck decoder
costing only its file), not one file at a time. Items already analysed by the
same model (``mirtag_model_sha256``) are skipped unless ``--force``.

What an item gets:

- beets' own ``genres`` and a new ``mood`` field (both multi-valued), under the
  same fill / merge / replace policy and label map as ``mirtag write``
  (:mod:`mirtag.runtime.tagwrite`); ``mood`` and the ``mirtag_quadrant``,
  ``mirtag_tags``, ``mirtag_music`` and ``mirtag_model`` fields are media
  fields, so ``beet write`` (or ``--write`` / ``import.write``) puts them into
  the files (TMOO / MOOD / ----:com.apple.iTunes:MOOD / WM/Mood; TXXX:MIRTAG_*,
  MIRTAG_*) through beets' own write path;
- typed flexible attributes for queries: ``mirtag_genre``, ``mirtag_moods``,
  ``mirtag_emotions`` (the model's decided labels), ``mirtag_<head>_score``
  (Float: the head's best probability), ``mirtag_music`` (Float),
  ``mirtag_model`` (name@version) and ``mirtag_model_sha256``.

Config (``mirtag:`` in beets' config.yaml)::

    auto: no            # tag new items during `beet import`
    model: null         # a .onnx / .onnx.json / model folder; null: the shipped classifier
    device: auto        # auto, cpu, cuda, cuda:N
    workers: 2          # decoder processes
    heads: [genre, moods, quadrant, tags]   # what goes into genres, mood, mirtag_quadrant, mirtag_tags
    min_confidence: null                    # null: the model card's thresholds
    policy: fill        # fill (only empty genres/mood), merge (union), replace
    label_map: null     # a TOML label map over mirtag's default (written names)
"""

from __future__ import annotations

import os
from typing import Any

import beets
import mediafile
from beets import ui
from beets.dbcore import types
from beets.plugins import BeetsPlugin

HEADS = ("genre", "quadrant", "moods", "emotions", "tags", "music")
"""Heads whose best probability gets a Float ``mirtag_<head>_score`` field."""
LIST = types.SEMICOLON_SPACE_DSV
SCORE = types.NullFloat(4)
"""Probabilities: numeric queries (`mirtag_music:0.9..`), shown with 4 decimals, empty when unset."""


def _own_field(tag: str, list_field: bool = False, out_type: type = str) -> mediafile.MediaField:
    """A MIRTAG_* media field: TXXX:<tag> (ID3), <tag> (Vorbis, ASF), ----:com.apple.iTunes:<tag> (MP4)."""
    if list_field:
        return mediafile.ListMediaField(
            mediafile.MP3ListDescStorageStyle(tag),
            mediafile.MP4ListStorageStyle(f"----:com.apple.iTunes:{tag}"),
            mediafile.ListStorageStyle(tag),
            mediafile.ASFStorageStyle(tag),
        )
    return mediafile.MediaField(
        mediafile.MP3DescStorageStyle(tag),
        mediafile.MP4StorageStyle(f"----:com.apple.iTunes:{tag}"),
        mediafile.StorageStyle(tag),
        mediafile.ASFStorageStyle(tag),
        out_type=out_type,
    )


class ID3MoodStyle(mediafile.MP3ListStorageStyle):
    """Moods in ID3 as ``mirtag write`` puts them: TMOO (v2.4), or TXXX:MOOD with values joined by "; " when
    beets saves ID3v2.3 (``id3v23: yes``), which has no TMOO (mutagen's ``update_to_v23`` deletes it)."""

    V23_SEPARATOR = "; "

    def __init__(self) -> None:
        super().__init__("TMOO")
        self._txxx = mediafile.MP3ListDescStorageStyle("MOOD")

    def fetch(self, mutagen_file):
        values = super().fetch(mutagen_file)
        if values:
            return values
        return [v.strip() for text in self._txxx.fetch(mutagen_file) for v in text.split(";") if v.strip()]

    def store(self, mutagen_file, values):
        if beets.config["id3v23"].get(bool):
            mutagen_file.tags.delall("TMOO")
            self._txxx.store(mutagen_file, [self.V23_SEPARATOR.join(values)] if values else [])
        else:
            self._txxx.delete(mutagen_file)
            super().store(mutagen_file, values)

    def delete(self, mutagen_file):
        mutagen_file.tags.delall("TMOO")
        self._txxx.delete(mutagen_file)


MOOD_FIELD = mediafile.ListMediaField(
    ID3MoodStyle(),
    mediafile.MP4ListStorageStyle("----:com.apple.iTunes:MOOD"),
    mediafile.ListStorageStyle("MOOD"),
    mediafile.ASFStorageStyle("WM/Mood"),
)
"""The mood field, where ``mirtag write`` puts it."""


class MirtagPlugin(BeetsPlugin):
    """The ``mirtag`` beets plugin (see the module docstring)."""

    item_types = {
        "mood": types.MULTI_VALUE_DSV,
        "mirtag_genre": LIST,
        "mirtag_moods": LIST,
        "mirtag_emotions": LIST,
        "mirtag_tags": types.MULTI_VALUE_DSV,
        "mirtag_quadrant": types.STRING,
        "mirtag_music": SCORE,
        "mirtag_model": types.STRING,
        "mirtag_model_sha256": types.STRING,
        **{f"mirtag_{h}_score": SCORE for h in HEADS if h != "music"},
    }

    def __init__(self) -> None:
        super().__init__()
        self.config.add(
            {
                "auto": False,
                "model": None,
                "device": "auto",
                "workers": 2,
                "heads": ["genre", "moods", "quadrant", "tags"],
                "min_confidence": None,
                "policy": "fill",
                "label_map": None,
            }
        )
        from beets import library

        for name, descriptor in (
            ("mood", MOOD_FIELD),
            ("mirtag_quadrant", _own_field("MIRTAG_QUADRANT")),
            ("mirtag_tags", _own_field("MIRTAG_TAGS", list_field=True)),
            ("mirtag_music", _own_field("MIRTAG_MUSIC", out_type=float)),
            ("mirtag_model", _own_field("MIRTAG_MODEL")),
        ):
            self.add_media_field(name, descriptor)
            if not isinstance(descriptor, mediafile.ListMediaField):
                # `beet write` compares only Item._media_tag_fields (fixed when beets loads): with the scalar
                # fields there, an item tagged by mirtag is written by `beet write`. (List fields are left out:
                # beets' diff fails on an item that lacks one while its file reads as an empty list.)
                library.Item._media_tag_fields.add(name)
        self._scanner = None
        self.register_listener("cli_exit", self.close)
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]

    # ------------------------------------------------------------------ commands
    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("mirtag", help="tag genres, mood quadrant, moods and tags with mirtag's models")
        cmd.parser.add_option(
            "-f", "--force", action="store_true", default=False, help="analyse items already analysed by this model"
        )
        cmd.parser.add_option("-w", "--write", action="store_true", default=None, help="write tags to the files")
        cmd.parser.add_option(
            "-W", "--nowrite", action="store_false", dest="write", help="do not write tags to the files"
        )
        cmd.func = self.command
        return [cmd]

    def command(self, lib, opts, args) -> None:
        from mirtag.runtime.errors import MirtagError

        items = list(lib.items(args))
        try:
            summary = self.analyse(items, force=opts.force, write=ui.should_write(opts.write))
        except MirtagError as exc:  # the model cannot load, bad config: one line, no traceback
            raise ui.UserError(f"mirtag: {exc}") from None
        finally:
            self.close()
        ui.print_(
            f"mirtag: {summary['tagged']} tagged, {summary['skipped']} already analysed, {summary['errors']} errors"
        )
        if summary["errors"]:
            raise ui.UserError(f"mirtag: {summary['errors']} file(s) could not be analysed (see above)")

    def imported(self, session, task) -> None:
        """Import stage (``auto: yes``): tag the task's new items; the importer stores them.

        One scan engine serves every task of the import (its workers stay up
        between albums) and is stopped when beets exits.
        """
        from mirtag.runtime.errors import MirtagError

        try:
            self.analyse(task.imported_items(), force=False, write=ui.should_write())
        except MirtagError as exc:  # never abort an import: the items stay untagged, `beet mirtag` can retry
            self._log.error("{}", exc)

    def close(self, *_, **__) -> None:
        """Stop the scan engine's workers (also on beets' ``cli_exit``)."""
        if self._scanner is not None:
            self._scanner.close()
            self._scanner = None

    # ------------------------------------------------------------------ the work
    def _options(self):
        from mirtag.runtime.labelmap import LabelMap
        from mirtag.runtime.tagwrite import WriteOptions

        c = self.config
        opts = WriteOptions(
            policy=c["policy"].as_str(),
            heads=tuple(c["heads"].as_str_seq()),
            min_confidence=c["min_confidence"].get(),
            label_map=c["label_map"].get(),
            model=c["model"].get(),
        )
        return opts, LabelMap.load(opts.label_map)

    def analyse(self, items, *, force: bool, write: bool) -> dict[str, int]:
        """Tag ``items`` through the scan engine; store each (and write it when ``write``)."""
        from mirtag.runtime.card import load_card, resolve_model
        from mirtag.runtime.scan import Scanner, ScanSettings

        c = self.config
        model = c["model"].get()
        options, label_map = self._options()
        card = resolve_model(None) if model is None else load_card(model)
        summary = {"tagged": 0, "skipped": 0, "errors": 0}
        todo = {}
        for item in items:
            if not force and item.get("mirtag_model_sha256") == card.sha256:
                summary["skipped"] += 1
                continue
            todo[os.fsencode(item.path)] = item
        if not todo:
            return summary
        settings = ScanSettings(
            model=card.path,
            device=c["device"].as_str(),
            workers=c["workers"].get(int),
            min_confidence=options.min_confidence,
        )
        from mirtag.runtime.rows import path_from_row

        if self._scanner is None or self._scanner.settings != settings:
            self.close()
            self._scanner = Scanner(settings, card=card)
        scanner = self._scanner
        self._log.info("{} items on {}", len(todo), scanner.provider)
        for row in scanner.run([os.fsdecode(p) for p in todo]):
            item = todo[os.fsencode(path_from_row(row))]
            if row["status"] != "ok":
                summary["errors"] += 1
                self._log.error("{}: {}", row["path"], row["error"])
                continue
            self.apply(item, row, card, options, label_map)
            self._log.debug("{}: {} {}", row["path"], item.get("mirtag_quadrant", ""), item.get("genres", []))
            item.store()
            if write:
                item.try_write()
            summary["tagged"] += 1
        return summary

    @staticmethod
    def apply(item, row: dict[str, Any], card, options, label_map) -> None:
        """Set an item's fields from one scan row (decisions as ``mirtag write`` makes them)."""
        from mirtag.runtime.tagwrite import decide, merge_values

        heads = row["heads"]
        values = decide(row, card, options, label_map)
        if "genres" in values:
            item.genres = merge_values(list(item.get("genres") or []), values["genres"], options.policy, True) or []
        if "moods" in values:
            item.mood = merge_values(list(item.get("mood") or []), values["moods"], options.policy, True) or []
        for field in ("mirtag_quadrant", "mirtag_tags"):
            new = values.get(field)
            if new:
                item[field] = new[0] if field == "mirtag_quadrant" else list(new)
            elif field in item:
                del item[field]  # nothing decided now: a stale value would be written back
        for head, field in (("genre", "mirtag_genre"), ("moods", "mirtag_moods"), ("emotions", "mirtag_emotions")):
            if head in heads:
                item[field] = list(heads[head]["top"])
        for head, info in heads.items():
            if head in HEADS and head != "music" and info["probs"]:
                item[f"mirtag_{head}_score"] = round(max(info["probs"].values()), 4)
        if "music" in heads:
            item.mirtag_music = round(heads["music"]["probs"]["music"], 4)
        item.mirtag_model = row["model"]
        item.mirtag_model_sha256 = row["model_sha256"]
