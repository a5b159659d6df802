#!/usr/bin/env bash
# The seeded runs behind BENCHMARKS.md §9: run them with two code versions, then compare the stores:
#   bash benchmarks/same_records_runs.sh /path/to/old/checkout /tmp/before
#   bash benchmarks/same_records_runs.sh "$PWD" /tmp/after
#   python benchmarks/same_records.py /tmp/before/quick /tmp/after/quick     # and so on for each run
# CODE is put first on PYTHONPATH (works for the flat layout before #13 and the stage packages after);
# both sides share the model cache (XLEXP_CACHE_DIR or ~/.cache/xlexp), so they load the same models.
# Running one side twice: remove <cache>/source_models first, or the few-shot run reuses its cached
# source model and records the K = 0 cells under the regime's rule only (fewer records to match).
# RUNS="quick qa icl gen" runs only those (names below; all of them by default). The task-kind runs
# (#30): qa (extractive QA, XQuAD/DRCD), qafs (QA few-shot: questions as shots), icl (regime=icl,
# tiny decoder, classification), gen (tiny seq2seq fine-tuned on Tatoeba MT), genicl (decoder, icl on MT),
# quick1 (the quickstart, 2 epochs on 160 examples, 4 targets).
set -euo pipefail
CODE="$(cd "$1" && pwd)"; OUT="$2"; mkdir -p "$OUT"
PY="${PYTHON:-python}"
export PYTHONPATH="$CODE" XLEXP_DATA_DIR="${XLEXP_DATA_DIR:-$CODE/../shared/data}"
ENTRY=xlexp.cli; [ -f "$CODE/xlexp/cli/main.py" ] && ENTRY=xlexp.cli.main
cd "$OUT"
run() { local name=$1; shift
  if [ -n "${RUNS:-}" ] && [[ " $RUNS " != *" $name "* ]]; then return 0; fi
  rm -rf "$OUT/$name"; XLEXP_RESULTS_DIR="$OUT/$name" "$PY" -m $ENTRY run "$@" hydra.run.dir="$OUT/hydra/$name"; }
T="model=tiny_random optimizer.lr=1e-3 trainer.epochs=2 trainer.progress=false seed=3"
run tiny model=tiny_random optimizer.lr=1e-3 langpair=nusax_all_all seed=7 trainer.progress=false
run quick +experiment=quickstart trainer.progress=false
# the quickstart's chain (offline e5, trimmed vocabulary, fp32) at a size a shared 2-core machine runs in minutes
run quick1 +experiment=quickstart trainer.progress=false trainer.epochs=2 'langpair.targets=[eng,ind,jav,sun]' data.max_train_examples=160 data.max_eval_examples=100
rm -rf "$OUT/cache_fs"; run fs $T paths.cache_dir="$OUT/cache_fs" regime=few_shot 'langpair.sources=[eng]' 'langpair.targets=[ind,bug]' 'regime.k=[2,4]' regime.shot_sets=2 regime.finetune.epochs=2
run ms $T regime=multi_source 'langpair.sources=[eng,ind]' 'langpair.targets=[jav,sun]' regime.sampling=temperature 'regime.seeds=[1,2]'
run full $T regime=full 'langpair.targets=[eng,ind,jav]'
run cls model=classical_logreg trainer.progress=false regime=full task=sib200 'langpair.sources=[eng_Latn]' 'langpair.targets=[eng_Latn,fra_Latn,swh_Latn]'
run cls2 model=classical_mlp trainer.progress=false task=sib200 'langpair.sources=[eng_Latn]' 'langpair.targets=[fra_Latn,swh_Latn]' model.features=subword model.tokenizer=me5_small_offline
run tat model=tiny_random trainer.progress=false task=tatoeba 'langpair.targets=[afr,deu,fra]'
run pos $T task=masakhapos 'langpair.sources=[en_ewt]' 'langpair.targets=[yor,hau]' data.max_train_examples=300 data.max_eval_examples=100
run lora $T model.peft=lora model.trim_vocab=true 'langpair.sources=[eng]' 'langpair.targets=[eng,ind]' optimizer=sgd
Q="task=xquad model=tiny_random optimizer.lr=1e-3 trainer.epochs=1 data.batch_size=8 trainer.progress=false seed=3 data.max_train_examples=40 data.max_eval_examples=25 data.max_length=128"
run qa $Q 'langpair.sources=[zh_hant]' 'langpair.targets=[zh_hant,zh,de]'
rm -rf "$OUT/cache_qafs"; run qafs $Q paths.cache_dir="$OUT/cache_qafs" regime=few_shot regime.k_per=total 'regime.k=[4]' regime.shot_sets=2 regime.finetune.epochs=2 'langpair.sources=[zh_hant]' 'langpair.targets=[zh_hant]'
run icl model=tiny_random_decoder regime=icl trainer.progress=false 'langpair.sources=[eng]' 'langpair.targets=[eng,ind,jav]' 'regime.k=[0,4]' regime.shot_sets=2 data.max_eval_examples=60 seed=3
G="task=tatoeba_mt trainer.progress=false trainer.eval_every=100000 model.max_new_tokens=16 data.max_eval_examples=30 data.batch_size=16 seed=3"
run gen $G model=tiny_random_seq2seq trainer.epochs=1 data.max_train_examples=160 optimizer.lr=3e-3 'langpair.sources=[deu]' 'langpair.targets=[deu,nld]'
run genicl $G model=tiny_random_decoder regime=icl 'regime.k=[0,2]' 'langpair.sources=[deu]' 'langpair.targets=[deu,nld]'
