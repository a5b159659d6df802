#!/usr/bin/env bash
# The GPU measurements of issues #19 (speed, time to a matrix row, accuracy parity with the HF peer),
# #18 (the SIB-200 20 x 205 matrix with the offline e5; XQuAD and MasakhaPOS were measured on the CPU), as one
# script for one short GPU lease. Run from the repository root on a CUDA machine with xlexp's
# dependencies, XLEXP_DATA_DIR set and the offline e5 built (`xlexp build-model`):
#
#     OUT=/tmp/gpu bash benchmarks/gpu_session.sh                          # issue #32 (default), <= 8 min
#     OUT=/tmp/gpu PHASES="phase1 phase2" bash benchmarks/gpu_session.sh   # issues #19/#18, ~8 min on an H200
#
# PHASES picks what runs, so that one call stays under ~8 minutes. "together" (issue #32, sources trained
# together, alone on the GPU): the stacked engine's GPU equality test, the stacked step's MFU at per-source
# batch 32 (N = 1, 4, 8, 20 xlm-roberta-base-shaped models, embedding trimmed to 16k rows) against the
# one-model loop, and the time to the SIB-200 20 sources x 205 targets matrix with trainer.sources_together=20
# (random xlm-roberta-base weights, model.trim_vocab, bf16, 1 epoch, batch 32) against one source at a time
# (2 sources timed, scaled to 20) and the HF Trainer peer (1 source timed, scaled to 20).
#
# Phase 1 runs alone (timings): benchmark 6 (MFU: eager vs trainer.compile=step-graph at batch 32 and
# 128) and the time to the SIB-200 eng -> 205 row (xlexp with step-graph vs the HF Trainer peer, an
# xlm-roberta-base-shaped random model, both bf16). Phase 2 runs its jobs side by side (accuracy
# only, no timings): parity over 5 seeds (SIB-200 eng -> 20, offline e5, both bf16, selection=last),
# the SIB-200 matrix (resumes by unit keys). Every job has its own time
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

PHASES=${PHASES:-together}
has() { case " $PHASES " in *" $1 "*) return 0;; esac; return 1; }

if has together; then
  stamp "together: GPU equality test of the stacked engine"
  timeout ${TOG_TEST_S:-60} "$PY" -m pytest -q tests/engine/test_together.py -k "engine" > "$LOGS/together_test.log" 2>&1
  echo "together test rc $?"; tail -2 "$LOGS/together_test.log"
  stamp "together: MFU of the stacked step (batch 32 x 128 per model)"
  timeout ${TOG_MFU_S:-120} "$PY" benchmarks/together.py --no-matrix --mfu 1,4,8,20 --mfu-shape xlmr-base --mfu-steps 20 \
      --label gpu-mfu > "$LOGS/together_mfu.log" 2>&1; echo "together mfu rc $?"
  grep -E "│" "$LOGS/together_mfu.log" | tail -6
  pack
  stamp "together: SIB-200 20 x 205, sources_together=20"
  TOG=(--targets all --epochs 1 --precision bf16 --random-xlmr-base /tmp/xlmrb --reps 1
       --batch-size 32 --xlexp-overrides "model.trim_vocab=true")
  timeout ${TOG_MATRIX_S:-150} "$PY" benchmarks/together.py --sources 20 --together 20 "${TOG[@]}" --label gpu-20x205 \
      > "$LOGS/together_20.log" 2>&1; echo "together 20 rc $?"
  grep -E "│|round" "$LOGS/together_20.log" | tail -4
  pack
  stamp "together: one at a time (2 sources, scaled x10 in the docs) and the peer (1 source, scaled x20)"
  timeout ${TOG_ONE_S:-150} "$PY" benchmarks/together.py --sources 2 --together 1 --peer-sources 1 "${TOG[@]}" --label gpu-one > "$LOGS/together_one.log" 2>&1; echo "together one rc $?"
  grep -E "│|round" "$LOGS/together_one.log" | tail -4
  pack
fi

if has phase1; then
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
fi

if has phase2; then

stamp "phase 2: parity seeds and the SIB-200 matrix (side by side)"
for s in 1 2 3 4 5; do
  timeout ${PAR_S:-160} "$PY" benchmarks/matrix_vs_peer.py --seeds $s --targets 20 --label parity-s$s \
      > "$LOGS/parity-s$s.log" 2>&1 &
done
# issue #18's SIB-200 matrix, 20 sources x 205 targets with full test sets (BENCHMARKS §10): session 8
# measured the first 12 sources; with its records in $XLEXP_RESULTS_DIR this run trains only the rest
S='[eng_Latn,fra_Latn,arb_Arab,zho_Hans,hin_Deva,swh_Latn,rus_Cyrl,tur_Latn,jpn_Jpan,est_Latn,yor_Latn,ind_Latn,amh_Ethi,spa_Latn,tam_Taml,kor_Hang,hau_Latn,vie_Latn,ell_Grek,fin_Latn]'
timeout ${SIB_S:-400} "${XLEXP[@]}" run task=sib200 model=me5_small_offline "langpair.sources=$S" langpair.targets=all \
    regime.dev_targets=none trainer.progress=false name=sib200_20x205_e5_gpu > "$LOGS/sib200.log" 2>&1 &
wait
stamp "phase 2 done"
grep -E "records:|Error|error" "$LOGS/sib200.log" | tail -3
ls benchmarks/results/matrix_vs_peer-parity-s*-2*.json >/dev/null 2>&1 && \
  "$PY" benchmarks/matrix_vs_peer.py --merge $(ls benchmarks/results/matrix_vs_peer-parity-s*-2*.json) --label parity \
    > "$LOGS/parity.log" 2>&1
grep -E "note:" "$LOGS/parity.log" | tail -6
pack
fi
stamp "done"
