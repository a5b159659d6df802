#!/usr/bin/env bash
# The GPU measurements of issues #19 (speed, time to a matrix row, accuracy parity with the HF peer),
# #16 (XQuAD with full test sets) and #18 (a MasakhaPOS 7 x 20 matrix with the offline e5), as one
# script for one short GPU lease. Run from the repository root on a CUDA machine with xlexp's
# dependencies, XLEXP_DATA_DIR set and the offline e5 built (`xlexp build-model`):
#
#     OUT=/tmp/gpu bash benchmarks/gpu_session.sh        # ~8 min on an H200
#
# Phase 1 runs alone (timings): benchmark 6 (MFU: eager vs trainer.compile=step-graph at batch 32 and
# 128) and the time to the SIB-200 eng -> 205 row (xlexp with step-graph vs the HF Trainer peer, an
# xlm-roberta-base-shaped random model, both bf16). Phase 2 runs its jobs side by side (accuracy
# only, no timings): parity over 5 seeds (SIB-200 eng -> 20, offline e5, both bf16, selection=last),
# XQuAD from SQuAD-it and DRCD, MasakhaPOS 7 UD sources x 20 targets. Every job has its own time
# limit; results and logs are packed into $OUT after each phase.
set -u
OUT=${OUT:-/tmp/gpu_session}
PY=${PYTHON:-python3}
LOGS=$OUT/work
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1 XLEXP_RESULTS_DIR=${XLEXP_RESULTS_DIR:-$LOGS/store}
XLEXP=("$PY" -m xlexp.cli.main)
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*"; }
touch "$LOGS/.start"
pack() {  # this session's result files and logs, into one archive under $OUT (rewritten after each phase)
  find benchmarks/results -newer "$LOGS/.start" -type f -exec cp {} "$LOGS/" \; 2>/dev/null
  tar czf "$OUT/gpu_session.tgz" -C "$LOGS" --exclude=./store . 2>/dev/null
  [ -d "$LOGS/store" ] && tar czf "$OUT/store.tgz" -C "$LOGS" store 2>/dev/null
  true
}

stamp "phase 1: MFU"
timeout ${MFU_S:-90} "$PY" benchmarks/gpu_mfu.py --steps 40 --compile-modes step-graph --profile-steps 5 --trimmed-vocab 0 \
    > "$LOGS/mfu.log" 2>&1; echo "mfu rc $?"
grep -E "note:|xlexp, " "$LOGS/mfu.log" | tail -12
pack
stamp "phase 1: time to the SIB-200 eng -> 205 row (xlexp step-graph vs peer)"
timeout ${TIME205_S:-200} "$PY" benchmarks/matrix_vs_peer.py --seeds 1 --targets all --random-xlmr-base /tmp/xlmrb \
    --xlexp-overrides "trainer.compile=step-graph" --label time205 > "$LOGS/time205.log" 2>&1; echo "time205 rc $?"
grep -E "note:" "$LOGS/time205.log" | tail -6
pack

stamp "phase 2: parity seeds, QA, MasakhaPOS (side by side)"
for s in 1 2 3 4 5; do
  timeout ${PAR_S:-160} "$PY" benchmarks/matrix_vs_peer.py --seeds $s --targets 20 --label parity-s$s \
      > "$LOGS/parity-s$s.log" 2>&1 &
done
QA="task=xquad model=me5_small_offline langpair.targets=all data.max_train_examples=800 trainer.epochs=1 trainer.eval_every=26 data.max_length=384 trainer.progress=false"
timeout ${QA_S:-160} "${XLEXP[@]}" run $QA "langpair.sources=[it]" name=qa-xquad-it-fulltest > "$LOGS/qa-it.log" 2>&1 &
timeout ${QA_S:-160} "${XLEXP[@]}" run $QA "langpair.sources=[zh_hant]" model.trim_vocab=true name=qa-xquad-zh_hant-fulltest \
    > "$LOGS/qa-zh_hant.log" 2>&1 &
timeout ${QA_S:-160} "${XLEXP[@]}" run task=xquad model=me5_small_offline langpair.targets=all "langpair.sources=[it]" \
    data.max_train_examples=null trainer.epochs=2 data.max_length=384 data.batch_size=32 trainer.progress=false \
    name=qa-xquad-it-alltrain > "$LOGS/qa-it-alltrain.log" 2>&1 &
timeout ${POS_S:-160} "${XLEXP[@]}" run task=masakhapos model=me5_small_offline \
    "langpair.sources=[en_ewt,fr_gsd,ro_rrt,ar_padt,af_afribooms,pcm_nsc,wo_wtb]" \
    "langpair.targets=[bam,bbj,ewe,fon,hau,ibo,kin,lug,luo,mos,nya,pcm,sna,swa,tsn,twi,wol,xho,yor,zul]" \
    regime.dev_targets=none trainer.progress=false name=masakhapos-7x20-e5 > "$LOGS/pos.log" 2>&1 &
wait
stamp "phase 2 done"
for f in "$LOGS"/qa-*.log "$LOGS"/pos.log; do echo "== $f"; grep -E "records:|Error|error" "$f" | tail -3; done
ls benchmarks/results/matrix_vs_peer-parity-s*-2*.json >/dev/null 2>&1 && \
  "$PY" benchmarks/matrix_vs_peer.py --merge $(ls benchmarks/results/matrix_vs_peer-parity-s*-2*.json) --label parity \
    > "$LOGS/parity.log" 2>&1
grep -E "note:" "$LOGS/parity.log" | tail -6
pack
stamp "done"
