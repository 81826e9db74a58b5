#!/usr/bin/env bash
# Ship a trained classifier run and the genre-map generator tied to it (issue 10, items 6 and 7).
#
#   MIRTAG_DATA=... MIRTAG_TEACHER=data/teacher scripts/ship_classifier.sh RUN_DIR [GENERATOR_STEPS]
#
# Run it only after the ship rule holds (docs/teacher.md, sections 6 and 7). In order: the run's robustness
# and domain-shift report (mirtag evaluate), the export into exported/, calibration and decisions tuned on
# validation (scripts/tune_decisions.py --write), a generator trained against the new classifier (its card
# version follows the classifier's), the map targets, the README pictures, the golden test outputs and
# exported/MODEL_CARD.md. Every step writes files; rerunning the script resumes the generator from
# runs/generator/last.pt (about 20 min per 1,000 steps on 2 idle cores). The default of 3,000 steps is what
# 1.2.0's generator ran: 7 of 10 seed maps with three genres at 2,000 steps (target 8), still 7 at 3,000.
# Prose in README.md that quotes figures of the old model is not rewritten: check it by hand (`git diff`, then
# grep for the old version).
set -euo pipefail

run=${1:?usage: scripts/ship_classifier.sh RUN_DIR [GENERATOR_STEPS]}
steps=${2:-3000}
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
mirtag=${MIRTAG:-mirtag}

step() { echo "== $*" >&2; }

if [ ! -f "$run/report.json" ] || ! grep -q robustness "$run/report.json"; then
    step "mirtag evaluate $run"
    "$mirtag" evaluate "$run"
fi

step "export $run into exported/"
"$mirtag" export "$run" --out exported
step "calibration and decisions (scripts/tune_decisions.py --write)"
"$py" scripts/tune_decisions.py --write

version=$("$py" -c 'import json; print(json.load(open("exported/mirtag-tagger.onnx.json"))["version"])')
sed -i "s/^version = \".*\"/version = \"$version\"/" configs/generator.toml
resume=()
if [ -f runs/generator/last.pt ] && grep -q "\"$version\"" runs/generator/config.json 2>/dev/null; then
    resume=(--resume)
fi
step "generator $version, $steps steps ${resume[*]}"
"$mirtag" train generator --config configs/generator.toml --steps "$steps" "${resume[@]}"
"$mirtag" export runs/generator --out exported

step "map targets"
"$py" scripts/map_targets.py | tee runs/generator/map_targets.md

step "README pictures"
"$mirtag" map grid --out docs/map.png
"$mirtag" map line -1 -1 1 1 --seed 2 --out docs/line.png
"$mirtag" map gallery --per-label 2 --samples 1000 --out docs/gallery.png

step "golden outputs and model card"
"$py" tests/fixtures/make_golden.py
"$py" scripts/model_card.py "$run" --generator runs/generator --map-targets runs/generator/map_targets.md
git status --short exported docs tests/fixtures configs >&2
