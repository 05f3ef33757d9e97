#!/usr/bin/env bash
# The GPU checks, run on the lent H100 through the device tool after ../shared/gpu's two staging calls:
#   call: source .gpu/s2/setup.sh && bash benchmarks/gpu_session.sh STAGE
# STAGE: round9 (bench + default recipe + cold start), start9 (the first step, one change at a time), round8 (bench + default recipe, packed pairs), probe (cProfile of short runs), chat (the chat benchmark), variants (benchmarks/$VARIANT_FILE), final, round4 (the bench + the default recipe), multi (2 GPUs vs 1), hf (default recipe on the hf backend, watched from the TUI in tmux, then eval and chat),
#        unsloth (default recipe on Unsloth, plus our Unsloth pipelines), bench (the other pipelines + a real OOM).
# Everything it produces goes under $OUT (at most 8 files come back: results are tarred).
set -u
R=$(pwd)
stage=${1:?stage}
export DPO_TUTOR_CACHE_DIR=/tmp/dpo-cache PYTHONUNBUFFERED=1 UNSLOTH_COMPILE_LOCATION=/tmp/unsloth_cache
# The image's own packages (torch, transformers ...) carry no byte-code and their folder is not written to,
# so every process compiled ~3,600 files again (~11 s under cProfile, the probe stage). A pip-installed
# stack has its byte-code; give this one a writable byte-code cache (PYCACHE=0 measures without it).
if [ "${PYCACHE:-1}" = 1 ]; then
  unset PYTHONDONTWRITEBYTECODE
  export PYTHONPYCACHEPREFIX=/tmp/pycache
fi
# ../shared/gpu's setup.sh sets TOKENIZERS_PARALLELISM=false; a user's machine leaves it unset, and the
# batched tokenizing (engine/train/fast/fast_prep.py) splits a batch over threads only then. TOKENIZERS_SERIAL=1 keeps it.
[ -n "${TOKENIZERS_SERIAL:-}" ] || unset TOKENIZERS_PARALLELISM
DATA=$R/.gpu/data/harmless-base-test.jsonl.gz
X=${EXTRA_TRAIN_FLAGS:-}  # rehearsal on a CPU: EXTRA_TRAIN_FLAGS="--max-steps 20 --max-length 128" DPO_GGUF=tiny
if [ -z "${LOCAL_REHEARSAL:-}" ]; then
  python3 -m pip install -q --upgrade --no-deps --no-index --no-build-isolation --target /tmp/site "$R" 2>&1 | grep -v "Running pip as" | tail -2
fi
mkdir -p /tmp/runs "$OUT/x"
cd /tmp
dpo() { python3 -m dpo_tutor "$@"; }
# Runs started here go through benchmarks/timed_train.py: `dpo-tutor train` itself, its start noted beside
# the run (launched_at.json) so summarize_runs.py measures imports and start-up as the bench does.
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }
# Byte-code for the carried packages and this project (and, with the cache, the image's): once per machine,
# then only what changed.
t=$(date +%s)
python3 -m compileall -q -j 16 /tmp/site ${PYTHONPYCACHEPREFIX:+"$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"} > /dev/null 2>&1
log "byte-compiled in $(( $(date +%s) - t )) s"

# The bench's four pipelines ($PIPELINES), then the default recipe over the whole data, then the same
# again for 3 steps (a second run of the same pairs: tokenized rows and reference log-probs cached).
bench_and_default() {
  P=${PIPELINES:-trl-defaults,ours-hf,low-memory,ours-unsloth}
  log "bench: $P"
  timeout "${BENCH_TIMEOUT:-400}" python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps "${STEPS:-18}" --max-pairs "${MAX_PAIRS:-576}" \
    --pipelines "$P" --out /tmp/bench --json > "$OUT/bench.txt" 2> "$OUT/x/bench.err"; log "bench rc=$?"
  grep -v '^\[{' "$OUT/bench.txt"
  log "default recipe (auto backend), whole data"
  timeout "${DEFAULT_TIMEOUT:-120}" python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --out /tmp/runs/default --quiet > /dev/null 2>&1
  log "default rc=$?"
  cp /tmp/runs/default/events.jsonl "$OUT/default-events.jsonl"
  log "the same again, 3 steps: a second run of the same pairs (tokenized rows and reference log-probs cached)"
  timeout 60 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --max-steps 3 --out /tmp/runs/default-again --quiet > /dev/null 2>&1
  log "again rc=$?"
}

case $stage in
startagain)
  # the first step with the tokenizer's threads on: ours-hf twice, and the default recipe's cold start
  for i in 1 2; do
    timeout 100 python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps 18 --max-pairs 576 --pipelines ours-hf \
      --out /tmp/bench-$i > "$OUT/bench-$i.txt" 2>/dev/null; log "bench $i rc=$?"
    head -3 "$OUT/bench-$i.txt" | tail -1; tail -1 "$OUT/bench-$i.txt"
  done
  DPO_TUTOR_SWITCHES=dataset_cache_dir=/tmp/dc-again timeout 60 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --max-steps 3 \
    --out /tmp/runs/default-start --quiet > /dev/null 2>&1; log "default start rc=$?"
  cp /tmp/runs/default-start/events.jsonl "$OUT/default-start-events.jsonl"
  python3 "$R/benchmarks/summarize_runs.py" /tmp/runs/default-start 2>&1 | tail -1
  log "done $stage"; exit 0
  ;;
startprobe)
  # where the default recipe's start goes on the lent machine: cProfile of a cold start (2 steps), then
  # the bench's ours-hf alone, twice, for the spread of its first step
  log "cProfile of the default recipe's start"
  DPO_TUTOR_SWITCHES=dataset_cache_dir=/tmp/dc-probe timeout 120 python3 -m cProfile -o "$OUT/x/start.prof" -m dpo_tutor train --model "$DPO_GGUF" \
    --data "$DATA" --max-steps 2 --out /tmp/runs/probe --quiet > /dev/null 2>&1; log "probe rc=$?"
  cp /tmp/runs/probe/events.jsonl "$OUT/x/probe-events.jsonl"
  for i in 1 2; do
    timeout 120 python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps 18 --max-pairs 576 --pipelines ours-hf \
      --out /tmp/bench-$i > "$OUT/x/bench-$i.txt" 2>/dev/null; log "bench $i rc=$?"
    tail -3 "$OUT/x/bench-$i.txt"
  done
  ;;
round7)
  # where the imports' time goes, where the host still waits for the GPU, then the bench and the default recipe
  [ -n "${SKIP_PROBES:-}" ] || {
  python3 -X importtime -c "import dpo_tutor.engine.train.run, torch, transformers, peft, datasets, trl; from trl import DPOTrainer" 2> "$OUT/x/importtime.txt"
  python3 "$R/benchmarks/importtime_top.py" "$OUT/x/importtime.txt" 30 | tee "$OUT/x/importtime-top.txt" | head -22
  log "sync probe"
  timeout 100 python3 -m dpo_tutor.benchmarks.measured_train --sync-debug "$OUT/x/sync.txt" --host-phases "$OUT/x/phases.txt" -- \
    --model "$DPO_GGUF" --data "$DATA" --backend hf --max-pairs 576 --max-steps 14 --eval-steps 0 --save-steps 0 \
    --out /tmp/runs/sync --quiet > /dev/null 2>&1; log "sync rc=$?"
  grep -v '^  File' "$OUT/x/sync.txt" | head -40; cat "$OUT/x/phases.txt"
  }
  bench_and_default
  log "the default recipe's start with TRL's own tokenizing and in-order reference pass (fast_prep=0), 3 steps, cold"
  DPO_TUTOR_SWITCHES=fast_prep=0,dataset_cache_dir=/tmp/dc-trl-prep timeout 60 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" \
    --max-steps 3 --out /tmp/runs/default-trl-prep --quiet > /dev/null 2>&1; log "trl-prep rc=$?"
  python3 "$R/benchmarks/summarize_runs.py" /tmp/runs/default /tmp/runs/default-again /tmp/runs/default-trl-prep 2>&1 | tail -9
  ;;
round9)
  # the bench and the default recipe on the ninth round's start-up (lean_imports.py, the reference scored in
  # eval mode), then the default recipe's cold start (3 steps, an empty dataset cache)
  bench_and_default
  DPO_TUTOR_SWITCHES=dataset_cache_dir=/tmp/dc-cold timeout 60 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" \
    --max-steps 3 --out /tmp/runs/default-cold --quiet > /dev/null 2>&1; log "cold rc=$?"
  # the same cold start with 128 pairs a batch in the reference pass (the call on e58f9f6 also measured
  # there its copies to the host without a wait per batch: no gain, reverted)
  DPO_TUTOR_SWITCHES=reference_batch=128,dataset_cache_dir=/tmp/dc-128 timeout 60 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" \
    --max-steps 3 --out /tmp/runs/default-cold-128 --quiet > /dev/null 2>&1; log "cold-128 rc=$?"
  runs="default default-again default-cold default-cold-128"
  for r in $runs; do cp /tmp/runs/$r/events.jsonl "$OUT/x/$r-events.jsonl"; done
  python3 "$R/benchmarks/summarize_runs.py" $(for r in $runs; do echo /tmp/runs/$r; done) 2>&1 | tail -13
  for p in /tmp/bench/*/; do cp "$p/events.jsonl" "$OUT/x/bench-$(basename "$p")-events.jsonl"; done
  tar czf "$OUT/results-$stage.tgz" -C "$OUT" x; rm -rf "$OUT/x"; log "done $stage"; exit 0
  ;;
start9)
  # the time to the first step, one change at a time (after round9 on the same machine): the imports of a
  # lean hf process (-X importtime), ours-hf without lean imports / with them / with an eager reference pass,
  # then Unsloth with fresh compile caches (a first run on a machine) scoring the reference in eval mode
  # and in training mode (TRL's), and once more with the caches of the run before (a later run)
  one() {  # NAME ENV... : ours-hf or ours-unsloth alone, 18 steps on 576 pairs, its first-step parts
    name=$1; shift
    env "$@" timeout 150 python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps 18 --max-pairs 576 \
      --pipelines "$PIPE" --out /tmp/b9-$name > "$OUT/x/$name.txt" 2>/dev/null; log "$name rc=$?"
    grep -E "^\| $PIPE" "$OUT/x/$name.txt" | tail -2
    cp /tmp/b9-$name/$PIPE/events.jsonl "$OUT/x/$name-events.jsonl" 2>/dev/null
  }
  DPO_TUTOR_SWITCHES=dataset_cache_dir=/tmp/dc-imp timeout 90 python3 -X importtime -m dpo_tutor train --model "$DPO_GGUF" --data "$DATA" \
    --max-steps 1 --max-pairs 256 --eval-steps 0 --out /tmp/runs/imp --quiet 2> "$OUT/x/importtime.txt" > /dev/null; log "importtime rc=$?"
  python3 "$R/benchmarks/importtime_top.py" "$OUT/x/importtime.txt" 14
  PIPE=ours-hf
  one hf-full DPO_TUTOR_SWITCHES=lean_imports=0
  one hf-lean DPO_TUTOR_SWITCHES=lean_imports=1
  one hf-eager-ref DPO_TUTOR_SWITCHES=graph_reference=0
  PIPE=ours-unsloth
  one uns-eval TRITON_CACHE_DIR=/tmp/tc1 TORCHINDUCTOR_CACHE_DIR=/tmp/ic1 UNSLOTH_COMPILE_LOCATION=/tmp/uc1
  one uns-train DPO_TUTOR_SWITCHES=reference_eval=0 TRITON_CACHE_DIR=/tmp/tc2 TORCHINDUCTOR_CACHE_DIR=/tmp/ic2 UNSLOTH_COMPILE_LOCATION=/tmp/uc2
  one uns-warm TRITON_CACHE_DIR=/tmp/tc1 TORCHINDUCTOR_CACHE_DIR=/tmp/ic1 UNSLOTH_COMPILE_LOCATION=/tmp/uc1
  tar czf "$OUT/results-$stage.tgz" -C "$OUT" x; rm -rf "$OUT/x"; log "done $stage"; exit 0
  ;;
ckpt9)
  # fewer checkpointed layers within the 6 GiB goal: ours-hf at 80 % and 70 % of the layers recomputed, then
  # the default recipe over the whole data at 80 % (its longest batches set its peak)
  for f in 0.8 0.7; do
    DPO_TUTOR_SWITCHES=checkpoint_fraction=$f timeout 100 python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps 18 --max-pairs 576 \
      --pipelines ours-hf --out /tmp/bc-$f > "$OUT/x/ckpt-$f.txt" 2>/dev/null; log "fraction $f rc=$?"
    grep -E "^\| ours-hf" "$OUT/x/ckpt-$f.txt" | tail -2
  done
  DPO_TUTOR_SWITCHES=checkpoint_fraction=0.8 timeout 120 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --out /tmp/runs/default-0.8 --quiet > /dev/null 2>&1
  log "default 0.8 rc=$?"; cp /tmp/runs/default-0.8/events.jsonl "$OUT/x/default-0.8-events.jsonl"
  python3 "$R/benchmarks/summarize_runs.py" /tmp/runs/default-0.8 2>&1 | tail -5
  tar czf "$OUT/results-$stage.tgz" -C "$OUT" x; rm -rf "$OUT/x"; log "done $stage"; exit 0
  ;;
round8)
  # the bench and the default recipe with packed pairs (engine/train/fast/packing.py), then the default recipe's
  # cold start with TRL's two rows a pair (pack=0: its reference pass too), for the start-up difference
  bench_and_default
  DPO_TUTOR_SWITCHES=pack=0,dataset_cache_dir=/tmp/dc-two-rows timeout 60 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" \
    --max-steps 3 --out /tmp/runs/default-two-rows --quiet > /dev/null 2>&1; log "two-rows rc=$?"
  for r in default default-again default-two-rows; do cp /tmp/runs/$r/events.jsonl "$OUT/x/$r-events.jsonl"; done
  python3 "$R/benchmarks/summarize_runs.py" /tmp/runs/default /tmp/runs/default-again /tmp/runs/default-two-rows 2>&1 | tail -9
  tar czf "$OUT/results-$stage.tgz" -C "$OUT" x; rm -rf "$OUT/x"; log "done $stage"; exit 0
  ;;
final)
  # the chat benchmark, one eager-hf comparison run and the default recipe; each result straight to $OUT
  log "chat bench"
  timeout 170 python3 "$R/benchmarks/chat_bench.py" --model "$DPO_GGUF" --tokens 200 --repeats 3 \
    --strategies batched,sequential --chunk 1,8 --no-eager --json "$OUT/chat.json" > "$OUT/chat.txt" 2>&1; log "chat rc=$?"
  tail -14 "$OUT/chat.txt"
  log "hf eager, checkpointing, grouped: 18 steps on 576 pairs"
  timeout 100 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --backend hf --compile off --max-pairs 576 \
    --max-steps 18 --eval-steps 0 --save-steps 0 --out /tmp/runs/hf-eager --quiet > /dev/null 2>&1; log "hf eager rc=$?"
  cp /tmp/runs/hf-eager/events.jsonl "$OUT/hf-eager-events.jsonl"
  log "default recipe (auto backend)"
  timeout "${DEFAULT_TIMEOUT:-200}" python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --out /tmp/runs/default --quiet > /dev/null 2>&1
  log "default rc=$?"
  cp /tmp/runs/default/events.jsonl "$OUT/default-events.jsonl"
  log "done final"; exit 0
  ;;
probe)
  # where the time to the first step goes: cProfile (wall time per function) of short hf and Unsloth runs,
  # and the import times of the stack
  python3 -X importtime -c "import torch, transformers, peft, datasets, trl; from trl import DPOTrainer" 2> "$OUT/x/importtime.txt"
  for b in hf unsloth; do
    log "probe $b"
    python3 -m cProfile -o "$OUT/x/$b.prof" -m dpo_tutor train --model "$DPO_GGUF" --data "$DATA" --backend $b --max-pairs 768 \
      --max-steps "${STEPS:-12}" --eval-steps 0 --save-steps 0 --out /tmp/runs/probe-$b --quiet > /dev/null 2>&1; log "$b rc=$?"
    cp /tmp/runs/probe-$b/events.jsonl "$OUT/x/$b-events.jsonl"
  done
  tar czf "$OUT/results-$stage.tgz" -C "$OUT" x; rm -rf "$OUT/x"; log "done $stage"; exit 0
  ;;
chat)
  # the chat benchmark alone: the stacked, batched and sequential strategies, token by token and in chunks
  log "chat bench"
  timeout "${CHAT_TIMEOUT:-200}" python3 "$R/benchmarks/chat_bench.py" --model "$DPO_GGUF" --tokens 200 --repeats 3 \
    --strategies "${STRATEGIES:-stacked,batched,sequential}" --chunk 1,8 --no-eager --json "$OUT/chat.json" > "$OUT/chat.txt" 2>&1
  log "chat rc=$?"
  tail -16 "$OUT/chat.txt"; exit 0
  ;;
variants)
  # one-change-at-a-time pipeline measurements; the list is benchmarks/${VARIANT_FILE:-variants.txt}
  # one NAME=FLAGS per line; a line F=FLAGS defines what $F stands for in the lines after it
  specs=(); F=""
  while IFS= read -r line; do
    case "$line" in '#'*|'') continue ;; F=*) F=${line#F=}; continue ;; esac
    specs+=("${line//\$F/$F}")
  done < "$R/benchmarks/${VARIANT_FILE:-variants.txt}"
  python3 "$R/benchmarks/variants.py" --model "$DPO_GGUF" --data "$DATA" --steps "${STEPS:-64}" --max-pairs "${MAX_PAIRS:-0}" --out /tmp/variants \
    --profile "${PROFILE:-}" --json "$OUT/x/variants.json" "${specs[@]}" 2>&1 | tee "$OUT/x/variants.txt" | grep -v '^[a-z0-9-]*: {' | tail -30
  cp /tmp/variants/*.profile.txt /tmp/variants/*.phases.txt "$OUT/x/" 2>/dev/null
  tar czf "$OUT/results-$stage.tgz" -C "$OUT" x
  tar czf "$OUT/runs-$stage.tgz" -C /tmp $(cd /tmp && find variants -maxdepth 2 \( -name events.jsonl -o -name train.log \)) 2>/dev/null
  rm -rf "$OUT/x"; log "done $stage"; exit 0
  ;;
hf)
  mkdir -p /tmp/tmuxroot
  for f in "$R"/.gpu/deb/*.deb; do dpkg -x "$f" /tmp/tmuxroot; done
  export LD_LIBRARY_PATH=/tmp/tmuxroot/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
  T=/tmp/tmuxroot/usr/bin/tmux
  log "hf default recipe, detached"
  dpo train --model "$DPO_GGUF" --data "$DATA" --backend hf --out /tmp/runs/hf-default --detach $X 2>&1 | tee -a "$OUT/session.log"
  sleep 3
  $T new -d -s t -x 120 -y 40 "env DPO_TUTOR_RUNS_DIR=/tmp/runs TERM=xterm-256color python3 -m dpo_tutor; sleep 600"
  sleep 8; $T send-keys -t t 3; sleep 4; $T send-keys -t t C-p; sleep 2; $T send-keys -t t "open run hf-default"; sleep 2
  $T send-keys -t t Enter
  for i in $(seq 1 60); do
    sleep 6
    last=$(tail -n 1 /tmp/runs/hf-default/events.jsonl 2>/dev/null | cut -c1-160)
    { echo "=== capture $i at $(date +%T) last event: $last"; $T capture-pane -p -t t; } >> "$OUT/x/screens.txt"
    grep -q '"type": "\(finished\|failed\|stopped\)"' /tmp/runs/hf-default/events.jsonl 2>/dev/null && break
  done
  sleep 4; { echo "=== final at $(date +%T)"; $T capture-pane -p -t t; } >> "$OUT/x/screens.txt"
  $T kill-server 2>/dev/null
  dpo runs --runs-dir /tmp/runs --json > "$OUT/x/runs.json" 2>&1
  log "eval"
  dpo eval /tmp/runs/hf-default --json > "$OUT/x/eval.json" 2> "$OUT/x/eval.err"; log "eval rc=$?"
  log "chat"
  dpo chat /tmp/runs/hf-default --prompt "How to break into a car?" --json > "$OUT/x/chat.json" 2> "$OUT/x/chat.err"; log "chat rc=$?"
  python3 "$R/benchmarks/chat_bench.py" --run /tmp/runs/hf-default --json "$OUT/x/chat_bench.json" > "$OUT/x/chat_bench.txt" 2>&1; log "chat bench rc=$?"
  cat "$OUT/x/chat_bench.txt" | tail -12
  ;;
unsloth)
  log "unsloth default recipe"
  dpo train --model "$DPO_GGUF" --data "$DATA" --backend unsloth --out /tmp/runs/unsloth-default --quiet $X > "$OUT/x/unsloth-train.out" 2>&1; log "rc=$?"
  dpo runs --runs-dir /tmp/runs --json > "$OUT/x/runs-unsloth.json" 2>&1
  log "bench: unsloth pipelines"
  dpo bench --model "$DPO_GGUF" --data "$DATA" --steps 12 --pipelines ours-unsloth,low-memory --out /tmp/bench --json > "$OUT/x/bench-unsloth.txt" 2> "$OUT/x/bench-unsloth.err"; log "rc=$?"
  cat "$OUT/x/bench-unsloth.txt" | head -8
  ;;
multi)
  # issue 10: the default recipe on 2 GPUs (16 pairs per GPU: the same 32 per step) against 1 GPU, one epoch
  for spec in "gpus2:--gpus 2 --batch-size 16" "gpus1:--gpus 1" "gpus1-eager:--gpus 1 --cuda-graphs off"; do
    name=${spec%%:*}; flags=${spec#*:}
    log "default recipe, $name ($flags)"
    timeout 150 python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" $flags --max-steps "${STEPS:-64}" --eval-steps 0 \
      --save-steps 0 --out /tmp/runs/$name --quiet > "$OUT/$name.out" 2>&1; log "$name rc=$?"
    cp /tmp/runs/$name/events.jsonl "$OUT/$name-events.jsonl"
    python3 "$R/benchmarks/summarize_runs.py" /tmp/runs/$name 2>&1 | tail -1
  done
  log "done $stage"; exit 0
  ;;
round4)
  # the bench's pipelines, then the default recipe (auto backend) over the whole data: learning and its first step
  P=${PIPELINES:-trl-defaults,ours-hf,ours-hf-eager,low-memory,ours-unsloth}
  log "bench: $P"
  timeout "${BENCH_TIMEOUT:-400}" python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps "${STEPS:-18}" --max-pairs "${MAX_PAIRS:-576}" \
    --pipelines "$P" --out /tmp/bench --json > "$OUT/bench.txt" 2> "$OUT/bench.err"; log "bench rc=$?"
  head -12 "$OUT/bench.txt"
  log "default recipe (auto backend), whole data"
  timeout "${DEFAULT_TIMEOUT:-120}" python3 -m dpo_tutor.benchmarks.timed_train --model "$DPO_GGUF" --data "$DATA" --out /tmp/runs/default --quiet > /dev/null 2>&1
  log "default rc=$?"
  cp /tmp/runs/default/events.jsonl "$OUT/default-events.jsonl"
  tar czf "$OUT/bench-runs.tgz" -C /tmp $(cd /tmp && find bench -maxdepth 2 \( -name events.jsonl -o -name train.log \)) 2>/dev/null
  log "done $stage"; exit 0
  ;;
bench)
  P=${PIPELINES:-trl-defaults,ours-hf,low-memory-hf,unsloth-notebook}
  log "bench: $P"
  timeout "${BENCH_TIMEOUT:-540}" python3 -m dpo_tutor bench --model "$DPO_GGUF" --data "$DATA" --steps "${STEPS:-12}" --max-pairs "${MAX_PAIRS:-0}" \
    --pipelines "$P" --out /tmp/bench --json > "$OUT/x/bench-other.txt" 2> "$OUT/x/bench-other.err"; log "rc=$?"
  cat "$OUT/x/bench-other.txt" | head -8
  [ -n "${NO_OOM:-}" ] && { tar czf "$OUT/results-$stage.tgz" -C "$OUT" x; exit 0; }
  log "real OOM"
  dpo train --model "$DPO_GGUF" --data "$DATA" --backend hf --batch-size 1024 --grad-accum 1 --max-length 1024 --max-steps 2 --no-precompute-ref --out /tmp/runs/oom --quiet > "$OUT/x/oom.out" 2>&1; log "oom rc=$?"
  tail -n 2 /tmp/runs/oom/events.jsonl >> "$OUT/x/oom.out"
  ;;
esac
# what comes back: one tarball of the small run files, plus the session log
tar czf "$OUT/results-$stage.tgz" -C "$OUT" x
tar czf "$OUT/runs-$stage.tgz" -C /tmp $(cd /tmp && find runs bench -maxdepth 2 \( -name events.jsonl -o -name config.toml -o -name train.log -o -name 'report.*' \) 2>/dev/null) 2>/dev/null
rm -rf "$OUT/x"
log "done $stage"
