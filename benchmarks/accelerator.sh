#!/bin/bash
# Issue 33's accelerator measurements, as one script for a lent GPU:
#
#   OUT=runs/accelerator bash benchmarks/accelerator.sh
#
# 1. `gan_jax.bench` of the DCGAN (experiments/mnist.py:tutorial) and SNGAN
#    (experiments/cifar10_sngan.py: the SNGAN ResNets) steps at batch 256 and
#    2048, float32 and bfloat16: steps/s, XLA's FLOPs a step and their share
#    of the chip's dense peak (`mfu`), one JSON line each in $OUT/bench.jsonl;
# 2. 16 seeds x 64 against one seed x 1024 (benchmarks/seeds.py) in
#    $OUT/seeds.json;
# 3. a profiler trace of the one of (1) with the lowest mfu in bfloat16 at
#    the largest batch, as $OUT/profile.tgz (TensorBoard's profile plugin
#    reads the folder it unpacks to), its bench line in $OUT/profiled.json.
#
# Each command has its own time limit (55 s a bench, 100 s the seeds), so one
# that hangs costs only its own figures and the whole stays under 10 minutes;
# stderr goes to $OUT/log. About 6 minutes on one H100. The lent machines'
# image lacks some of gan_jax's packages (ml-collections among them): carry
# them as wheels as the device notes say, and PYTHON names the interpreter
# (python3 there). A smoke run on a CPU:
#   BATCHES=8 STEPS=1 SEEDS=2 SEED_BATCH=4 bash benchmarks/accelerator.sh
set -u
PYTHON=${PYTHON:-python}
OUT=${OUT:-runs/accelerator}
BATCHES=${BATCHES:-256 2048}  # the last one is profiled
STEPS=${STEPS:-50}
SEEDS=${SEEDS:-16}
SEED_BATCH=${SEED_BATCH:-64}
LARGE=${BATCHES##* }
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv >> "$OUT/log" 2>&1

for config in experiments/mnist.py:tutorial experiments/cifar10_sngan.py; do
  for batch in $BATCHES; do
    for dtype in float32 bfloat16; do
      echo "bench $config batch $batch $dtype" >> "$OUT/log"
      timeout 55 "$PYTHON" -m gan_jax.bench --config="$config" --steps="$STEPS" \
        --config.train.batch_size="$batch" --config.train.dtype=$dtype \
        2>> "$OUT/log" | tail -n 1 >> "$OUT/bench.jsonl"
    done
  done
done

echo "seeds" >> "$OUT/log"
timeout 100 "$PYTHON" benchmarks/seeds.py --config=experiments/mnist.py:tutorial \
  --batch="$SEED_BATCH" --seeds="$SEEDS" --rounds=5 --steps="$STEPS" \
  2>> "$OUT/log" | tail -n 1 > "$OUT/seeds.json"

slowest=$("$PYTHON" benchmarks/slowest.py "$OUT/bench.jsonl" "$LARGE")
echo "profile $slowest" >> "$OUT/log"
timeout 55 "$PYTHON" -m gan_jax.bench --config="$slowest" --steps=10 \
  --config.train.batch_size="$LARGE" --config.train.dtype=bfloat16 \
  --profile="$OUT/profile" 2>> "$OUT/log" | tail -n 1 > "$OUT/profiled.json"
tar czf "$OUT/profile.tgz" -C "$OUT" profile && rm -rf "$OUT/profile"
echo "done" >> "$OUT/log"
