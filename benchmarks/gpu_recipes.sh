#!/usr/bin/env bash
# The recipe work on the lent GPU (issue 19), after ../shared/gpu's staging calls:
#   here:  bash benchmarks/gpu_recipes.sh pack      # .gpu/src (HEAD + this script's files) and .gpu/s2/data
#   call:  source .gpu/s2/setup.sh && bash .gpu/src/benchmarks/gpu_recipes.sh STAGE
# STAGE: sweep (benchmarks/recipe_sweep.py, every recipe), record (the default recipe as a user runs it:
# train, eval, chat; the whole run timed), bench (dpo-tutor bench, the four pipelines),
# shapes SIZE (issue 23: one `dpo-tutor bench --shape` call, SIZE 360m, 1.7b, 8b or qwen-7b; one device call each),
# variants FILE (benchmarks/variants.py on the 135M GGUF or VSHAPE, one NAME=FLAGS per line of benchmarks/FILE; STEPS, VPROFILE=NAME),
# longrun (the default recipe for LONG_STEPS steps, 1,290 by default: long enough that compile auto compiles at 135M).
# PROFILE=1 (bench, shapes): then ours-hf's replayed steps under torch.profiler, the GPU's time by kernel family
# (PROFILE_FLAGS: train flags added, e.g. "--compile on": compiled layers inside the recorded steps).
# The data travel in .gpu/s2/data in the layout engine/data/mix.py looks for ($DPO_TUTOR_DATA_DIR).
set -u
stage=${1:?stage}
if [ "$stage" = pack ]; then
  root=$(git rev-parse --show-toplevel)
  rm -rf "$root/.gpu/src" && mkdir -p "$root/.gpu/src" "$root/.gpu/s2/data/hh-rlhf" "$root/.gpu/s2/data/hh-rlhf-helpful-steamshp"
  git -C "$root" archive HEAD | tar -x -C "$root/.gpu/src"
  cp "$root/benchmarks/gpu_recipes.sh" "$root/benchmarks/recipe_sweep.py" "$root/.gpu/src/benchmarks/"
  cp "$root/../shared/data/hh-rlhf/harmless-base-test.jsonl.gz" "$root/.gpu/s2/data/hh-rlhf/"
  cp "$root/../shared/data/hh-rlhf-helpful-steamshp/anthropic_helpful_test.jsonl.gz" "$root/.gpu/s2/data/hh-rlhf-helpful-steamshp/"
  du -sh "$root/.gpu/src" "$root/.gpu/s2"
  exit 0
fi
R=$(pwd)
SRC=$R/.gpu/src
export DPO_TUTOR_DATA_DIR=$R/.gpu/s2/data DPO_TUTOR_CACHE_DIR=/tmp/dpo-cache PYTHONUNBUFFERED=1
unset PYTHONDONTWRITEBYTECODE TOKENIZERS_PARALLELISM
export PYTHONPYCACHEPREFIX=/tmp/pycache
python3 -m pip install -q --upgrade --no-deps --no-index --no-build-isolation --target /tmp/site "$SRC" 2>&1 | grep -v "Running pip as" | tail -2
mkdir -p "$OUT" /tmp/runs
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }
machine_line() {  # the GPU, the date and the stack, under each table
  echo; echo "GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader); $(date -u +%F);" \
    "$(python3 -c 'import torch, transformers, trl, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__, "peft", peft.__version__)')"
}
profile_run() {  # NAME MODEL MAX_LENGTH STEPS: ours-hf's recipe, the two steps before its last profiled (replays)
  local name=$1 model=$2 len=$3 steps=$4
  rm -rf "/tmp/runs/profile-$name"  # a warm machine keeps the last call's run
  timeout "${PROFILE_TIMEOUT:-120}" python3 -m dpo_tutor.benchmarks.measured_train \
    --profile "$((steps - 2)):2:$OUT/profile-$name.txt" -- --model "$model" \
    --data "$DPO_TUTOR_DATA_DIR/hh-rlhf/harmless-base-test.jsonl.gz" --max-steps "$steps" --max-pairs $((steps * 32)) \
    --max-length "$len" --backend hf --batch-size 32 --grad-accum 1 --gradient-checkpointing --precompute-ref \
    --group-by-length --compile off --cuda-graphs auto --eval-steps 0 --out "/tmp/runs/profile-$name" --quiet \
    ${PROFILE_FLAGS:-} \
    > /dev/null 2> "$OUT/profile-$name.err"
  log "profile $name rc=$?"
  cp "/tmp/runs/profile-$name/events.jsonl" "$OUT/profile-$name-events.jsonl" 2>/dev/null  # recordings per step
  head -16 "$OUT/profile-$name.txt" 2>/dev/null
}
log "start $stage on $(nvidia-smi --query-gpu=name --format=csv,noheader)"
case $stage in
sweep)
  cd /tmp
  timeout "${SWEEP_TIMEOUT:-540}" python3 "$SRC/benchmarks/recipe_sweep.py" --model "$DPO_GGUF" --out /tmp/sweep \
    --workers "${WORKERS:-8}" ${RECIPES:+--recipes "$RECIPES"} > "$OUT/sweep-table.md" 2> "$OUT/sweep.err"
  log "sweep rc=$?"
  python3 "$SRC/benchmarks/recipe_sweep.py" --table /tmp/sweep > "$OUT/sweep-table.md"
  cat "$OUT/sweep-table.md"
  tar -czf "$OUT/sweep.tgz" -C /tmp/sweep --exclude='*.safetensors' --exclude='checkpoints' --exclude='base' .
  ;;
final)
  # a second, shorter sweep; then the default recipe chosen by `recipe_sweep.py --pick` over both rounds
  # (the first round's rows travel in .gpu/src/sweep1), recorded as a user runs it
  cd /tmp
  timeout "${SWEEP_TIMEOUT:-240}" python3 "$SRC/benchmarks/recipe_sweep.py" --model "$DPO_GGUF" --out /tmp/sweep \
    --workers "${WORKERS:-5}" --recipes "$RECIPES" > /dev/null 2> "$OUT/sweep.err"
  log "sweep rc=$?"
  python3 "$SRC/benchmarks/recipe_sweep.py" --table "$SRC/sweep1" /tmp/sweep > "$OUT/sweep-table.md"
  cat "$OUT/sweep-table.md"
  picked=$(python3 "$SRC/benchmarks/recipe_sweep.py" --pick "$SRC/sweep1" /tmp/sweep)
  log "picked: $picked"
  TRAIN_FLAGS=$(echo "$picked" | cut -f2)
  tar -czf "$OUT/sweep.tgz" -C /tmp/sweep --exclude='*.safetensors' --exclude='checkpoints' --exclude='base' . 2>/dev/null
  ;&
record)
  cd /tmp
  t0=$(date +%s.%N)
  timeout 300 python3 -m dpo_tutor train --model "$DPO_GGUF" --out /tmp/runs/default ${TRAIN_FLAGS:-} > "$OUT/train.out" 2>&1
  log "train rc=$? whole run $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s (start to adapter saved)"
  tail -3 "$OUT/train.out"
  timeout "${EVAL_TIMEOUT:-150}" python3 -m dpo_tutor eval /tmp/runs/default > "$OUT/eval.out" 2>&1; log "eval rc=$?"
  cat "$OUT/eval.out" | head -30
  timeout 60 python3 -m dpo_tutor chat /tmp/runs/default --prompt "What is the capital of France?" > "$OUT/chat.out" 2>&1; log "chat rc=$?"
  cat "$OUT/chat.out"
  if [ -n "${HARMLESS_ONLY:-}" ]; then
    timeout 200 python3 -m dpo_tutor train --model "$DPO_GGUF" --data "$DPO_TUTOR_DATA_DIR/hh-rlhf/harmless-base-test.jsonl.gz" \
      --out /tmp/runs/over-refusal > /dev/null 2>&1; log "harmless-only train rc=$?"
    timeout "${EVAL_TIMEOUT:-150}" python3 -m dpo_tutor eval /tmp/runs/over-refusal > "$OUT/eval-over-refusal.out" 2>&1; log "eval rc=$?"
  fi
  tar -czf "$OUT/runs.tgz" -C /tmp/runs --exclude='*.safetensors' --exclude='checkpoints' --exclude='base' .
  ;;
bench)
  # the four pipelines on the final code, then (unless SKIP_TRAIN) the default run as a user starts it
  cd /tmp
  rm -rf /tmp/bench  # a warm machine keeps the last call's runs
  timeout "${BENCH_TIMEOUT:-280}" python3 -m dpo_tutor bench --model "$DPO_GGUF" \
    --data "$DPO_TUTOR_DATA_DIR/hh-rlhf/harmless-base-test.jsonl.gz" --steps "${STEPS:-18}" --max-pairs $((${STEPS:-18} * 32)) \
    --pipelines "${PIPELINES:-trl-defaults,ours-hf,low-memory,ours-unsloth}" \
    --out /tmp/bench > "$OUT/bench.txt" 2> "$OUT/bench.err"; log "bench rc=$?"
  cat "$OUT/bench.txt"
  machine_line | tee -a "$OUT/bench.txt"
  tail -5 "$OUT/bench.err"
  [ -n "${PROFILE:-}" ] && profile_run 135m "$DPO_GGUF" 512 24
  [ -n "${SKIP_TRAIN:-}" ] && { log "end $stage"; exit 0; }
  t0=$(date +%s.%N)
  timeout "${TRAIN_TIMEOUT:-60}" python3 -m dpo_tutor train --model "$DPO_GGUF" --out /tmp/runs/default-final > "$OUT/train.out" 2>&1
  log "default train rc=$? whole run $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s (start to adapter saved)"
  tail -2 "$OUT/train.out"
  cp /tmp/runs/default-final/events.jsonl "$OUT/default-final-events.jsonl" 2>/dev/null
  ;;
shapes)
  # The real architecture with random weights (engine/model_shapes.py), the same real pairs as the 135M rows
  # (SmolLM2's tokenizer, from the GGUF), 32 pairs a step, each pair once. Pipelines in the order the goals
  # need them: the slowest (Unsloth's notebook settings, host-bound at ~4 pairs/s) last, so a cut-short call
  # loses it first; the table of what ran is then rebuilt from the run folders.
  size=${2:?shapes SIZE: 360m, 1.7b, 8b or qwen-7b}
  small=ours-hf,ours-unsloth,trl-tuned,trl-defaults,unsloth-notebook  # what the goals compare
  big=ours-hf,ours-unsloth,trl-defaults,unsloth-notebook  # 4-bit NF4 base (QLoRA) in every one
  case $size in
    # Enough steps for the graphed pipeline's steady state: in 12 steps at 1.7B, 7 recorded a new shape
    # (2026-12-04), leaving 2 steady steps; 30 steps left 15.
    360m) shape=smollm2-360m steps=30 len=512 pipes=$small ;;
    1.7b) shape=smollm2-1.7b steps=30 len=512 pipes=$small ;;
    8b) shape=llama-3.1-8b steps=24 len=1024 pipes=$big ;;  # the goal's max_length for the 24 GiB
    qwen-7b) shape=qwen2.5-7b steps=24 len=1024 pipes=$big ;;
    *) log "shapes: unknown size $size (360m, 1.7b, 8b, qwen-7b)"; exit 2 ;;
  esac
  steps=${STEPS:-$steps}
  cd /tmp
  rm -rf /tmp/shape-bench
  timeout "${BENCH_TIMEOUT:-470}" python3 -m dpo_tutor bench --shape "$shape" --tokenizer "$DPO_GGUF" \
    --data "$DPO_TUTOR_DATA_DIR/hh-rlhf/harmless-base-test.jsonl.gz" --steps "$steps" --max-pairs $((steps * 32)) \
    --max-length "$len" --pipelines "${PIPELINES:-$pipes}" --out /tmp/shape-bench --json \
    > "$OUT/shapes-$size.md" 2> "$OUT/shapes-$size.err"
  log "bench --shape $shape rc=$?"
  if ! grep -q '^| pipeline' "$OUT/shapes-$size.md"; then
    log "cut short: the table of the pipelines that ran, from their run folders"
    python3 -m dpo_tutor.benchmarks.summarize_runs /tmp/shape-bench/*/ >> "$OUT/shapes-$size.md" 2>> "$OUT/shapes-$size.err"
  fi
  machine_line >> "$OUT/shapes-$size.md"
  grep -v '^\[{' "$OUT/shapes-$size.md"
  tail -5 "$OUT/shapes-$size.err"
  tar -czf "$OUT/shapes-$size-runs.tgz" -C /tmp/shape-bench --exclude='*.safetensors' --exclude='checkpoints' . 2>/dev/null
  [ -n "${PROFILE:-}" ] && profile_run "$size" "shape:$shape,tokenizer=$DPO_GGUF" "$len" 24
  ;;
variants)
  # one change at a time: each line NAME=FLAGS of benchmarks/FILE (F=FLAGS lines define $F for the lines after)
  file=${2:?variants FILE (in benchmarks/)}
  specs=(); F=""
  while IFS= read -r line; do
    case "$line" in '#'*|'') continue ;; F=*) F=${line#F=}; continue ;; esac
    specs+=("${line//\$F/$F}")
  done < "$SRC/benchmarks/$file"
  cd /tmp
  rm -rf /tmp/variants
  model=$DPO_GGUF; [ -n "${VSHAPE:-}" ] && model="shape:$VSHAPE,tokenizer=$DPO_GGUF"  # e.g. VSHAPE=smollm2-360m
  timeout "${BENCH_TIMEOUT:-520}" python3 -m dpo_tutor.benchmarks.variants --model "$model" \
    --data "$DPO_TUTOR_DATA_DIR/hh-rlhf/harmless-base-test.jsonl.gz" --steps "${STEPS:-40}" --max-pairs $((${STEPS:-40} * 32)) \
    --out /tmp/variants --profile "${VPROFILE:-}" --json "$OUT/variants.json" "${specs[@]}" > "$OUT/variants.txt" 2> "$OUT/variants.err"
  log "variants rc=$?"
  grep -v '^[a-z0-9-]*: {' "$OUT/variants.txt"
  machine_line | tee -a "$OUT/variants.txt"
  tail -5 "$OUT/variants.err"
  cp /tmp/variants/*.profile.txt "$OUT/" 2>/dev/null
  tar -czf "$OUT/variants-runs.tgz" -C /tmp $(cd /tmp && find variants -maxdepth 2 \( -name events.jsonl -o -name train.log \)) 2>/dev/null
  ;;
longrun)
  # the default recipe, only longer: does auto compile, and do the compiled recorded steps hold steady?
  cd /tmp
  rm -rf /tmp/runs/long
  t0=$(date +%s.%N)
  timeout "${TRAIN_TIMEOUT:-280}" python3 -m dpo_tutor train --model "$DPO_GGUF" \
    --data "$DPO_TUTOR_DATA_DIR/hh-rlhf/harmless-base-test.jsonl.gz" --max-steps "${LONG_STEPS:-1290}" \
    --eval-steps 0 --save-steps 0 --out /tmp/runs/long > "$OUT/longrun.out" 2>&1
  log "long train rc=$? whole run $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s (start to adapter saved)"
  tail -3 "$OUT/longrun.out"
  cp /tmp/runs/long/events.jsonl "$OUT/longrun-events.jsonl" 2>/dev/null
  grep -o '"message": "[^"]*compil[^"]*"' /tmp/runs/long/events.jsonl
  python3 -m dpo_tutor.benchmarks.summarize_runs /tmp/runs/long
  machine_line
  ;;
esac
log "end $stage"
