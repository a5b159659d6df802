#!/usr/bin/env bash
# The seeded runs behind BENCHMARKS.md §9: run them with two code versions, then compare the stores:
#   bash benchmarks/same_records_runs.sh /path/to/old/checkout /tmp/before
#   bash benchmarks/same_records_runs.sh "$PWD" /tmp/after
#   python benchmarks/same_records.py /tmp/before/quick /tmp/after/quick     # and so on for each run
# CODE is put first on PYTHONPATH (works for the flat layout before #13 and the stage packages after);
# both sides share the model cache (XLEXP_CACHE_DIR or ~/.cache/xlexp), so they load the same models.
# Running one side twice: remove <cache>/source_models first, or the few-shot run reuses its cached
# source model and records the K = 0 cells under the regime's rule only (fewer records to match).
set -euo pipefail
CODE="$(cd "$1" && pwd)"; OUT="$2"; mkdir -p "$OUT"
PY="${PYTHON:-python}"
export PYTHONPATH="$CODE" XLEXP_DATA_DIR="${XLEXP_DATA_DIR:-$CODE/../shared/data}"
ENTRY=xlexp.cli; [ -f "$CODE/xlexp/cli/main.py" ] && ENTRY=xlexp.cli.main
cd "$OUT"
run() { local name=$1; shift; rm -rf "$OUT/$name"; XLEXP_RESULTS_DIR="$OUT/$name" "$PY" -m $ENTRY run "$@" hydra.run.dir="$OUT/hydra/$name"; }
T="model=tiny_random optimizer.lr=1e-3 trainer.epochs=2 trainer.progress=false seed=3"
run tiny model=tiny_random optimizer.lr=1e-3 langpair=nusax_all_all seed=7 trainer.progress=false
run quick +experiment=quickstart trainer.progress=false
run fs $T regime=few_shot 'langpair.sources=[eng]' 'langpair.targets=[ind,bug]' 'regime.k=[2,4]' regime.shot_sets=2 regime.finetune.epochs=2
run ms $T regime=multi_source 'langpair.sources=[eng,ind]' 'langpair.targets=[jav,sun]' regime.sampling=temperature 'regime.seeds=[1,2]'
run full $T regime=full 'langpair.targets=[eng,ind,jav]'
run cls model=classical_logreg trainer.progress=false regime=full task=sib200 'langpair.sources=[eng_Latn]' 'langpair.targets=[eng_Latn,fra_Latn,swh_Latn]'
run cls2 model=classical_mlp trainer.progress=false task=sib200 'langpair.sources=[eng_Latn]' 'langpair.targets=[fra_Latn,swh_Latn]' model.features=subword model.tokenizer=me5_small_offline
run tat model=tiny_random trainer.progress=false task=tatoeba 'langpair.targets=[afr,deu,fra]'
run pos $T task=masakhapos 'langpair.sources=[en_ewt]' 'langpair.targets=[yor,hau]' data.max_train_examples=300 data.max_eval_examples=100
run lora $T model.peft=lora model.trim_vocab=true 'langpair.sources=[eng]' 'langpair.targets=[eng,ind]' optimizer=sgd
