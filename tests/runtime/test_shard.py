"""Shards: a stable split of a library that is disjoint, complete and independent of where it is mounted."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mirtag.runtime.errors import ParameterError
from mirtag.runtime.shard import Shard, relative_key, shard_files, shard_of


def library_paths(root: str, n: int = 500) -> list[str]:
    return [os.path.join(root, f"artist{i % 17}", f"album{i % 5}", f"{i:04d} track.flac") for i in range(n)]


def test_shards_are_disjoint_and_together_complete():
    files = library_paths("/mnt/music")
    for count in (1, 2, 3, 7):
        parts = [shard_files(files, ["/mnt/music"], Shard(i, count)) for i in range(1, count + 1)]
        seen = [f for part in parts for f in part]
        assert sorted(seen) == sorted(files)  # complete, and no file twice
        assert len(set(seen)) == len(seen)
        if count > 1:
            # a usable split: no shard empty or holding most of the library
            assert all(len(p) > len(files) / count / 2 for p in parts)


def test_a_file_lands_in_the_same_shard_wherever_the_library_is_mounted():
    a = library_paths("/mnt/nas/music")
    b = library_paths("/home/me/Music")
    for i in (1, 2, 3):
        left = [os.path.relpath(f, "/mnt/nas/music") for f in shard_files(a, ["/mnt/nas/music"], Shard(i, 3))]
        right = [os.path.relpath(f, "/home/me/Music") for f in shard_files(b, ["/home/me/Music/"], Shard(i, 3))]
        assert left == right


def test_the_hash_is_the_same_in_another_python_process():
    keys = [f"a/{i}.mp3".encode() for i in range(50)]
    here = [shard_of(k, 4) for k in keys]
    code = (
        "from mirtag.runtime.shard import shard_of;"
        "print(','.join(str(shard_of(f'a/{i}.mp3'.encode(), 4)) for i in range(50)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    ).stdout.strip()
    assert other == ",".join(map(str, here))


def test_relative_key_uses_the_first_root_holding_the_file_and_the_name_of_a_file_root():
    assert relative_key("/lib/a/b.mp3", ["/other", "/lib"]) == b"a/b.mp3"
    assert relative_key("/lib/a/b.mp3", ["/lib/a/b.mp3"]) == b"b.mp3"
    assert relative_key("/lib2/x.mp3", ["/lib"]) == b"/lib2/x.mp3"  # not under /lib: the prefix must end at a /
    raw = b"/lib/caf\xe9.wav"
    assert relative_key(os.fsdecode(raw), ["/lib"]) == b"caf\xe9.wav"  # bytes kept exactly


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2", "1/2/3"])
def test_bad_shards_are_refused_with_a_clear_message(text):
    with pytest.raises(ParameterError, match="shard must be I/N"):
        Shard.parse(text)


def test_shard_parse_round_trips():
    assert Shard.parse(" 2/5 ") == Shard(2, 5)
    assert str(Shard(2, 5)) == "2/5"
