#!/usr/bin/env bash
# The README's `mirtag write` example, re-run for real with the shipped model:
#
#   MIRTAG_DATA=/path/to/shared/data scripts/readme_write_example.sh
#
# Four test-split clips (never trained on) are copied into a scratch "Music" folder under the README's names:
# anthem.ogg (a 4Q Q2 Pop/Rock clip), nocturne.ogg (an Emotify classical clip), crows.ogg (an ESC-50 crow
# recording: not music), single.ogg (a 4Q Q4 clip given GENRE=Synthpop first, to show that `fill` keeps a genre
# the user set). Then scan, the dry run, --apply, the rescan and untag, printed as the README shows them.
set -euo pipefail
data=${MIRTAG_DATA:?set MIRTAG_DATA to the shared data folder}
mirtag=${MIRTAG:-mirtag}
py=${PYTHON:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
music="$work/Music"
mkdir -p "$music"
cp "$data/4q/audio/Q2/MT0005951020.ogg" "$music/anthem.ogg"
cp "$data/emotify/audio/classical/10.ogg" "$music/nocturne.ogg"
cp "$data/esc50/audio/4-138344-A-9.ogg" "$music/crows.ogg"
cp "$data/4q/audio/Q4/MT0011938737.ogg" "$music/single.ogg"
chmod u+w "$music"/*.ogg   # the shared data is read-only; its copies must be writable
"$py" -c 'import sys, mutagen; f = mutagen.File(sys.argv[1]); f["GENRE"] = ["Synthpop"]; f.save()' "$music/single.ogg"

cd "$work"
run() { echo "\$ mirtag ${*:2}" | sed "s#$music#~/Music#g"; "$@" 2>&1 | sed "s#$music#/home/me/Music#g"; }
run "$mirtag" scan "$music" --out tags.csv --quiet
run "$mirtag" write tags.csv
run "$mirtag" write tags.csv --apply
run "$mirtag" scan "$music" --out tags.csv
run "$mirtag" untag tags.csv.tagjournal.jsonl --apply
