#!/usr/bin/env bash
# Rebuilds models/addition-ref, the supervised reference model of `kto demo`, with kto's own commands:
# a fresh byte-level GPT, SFT data for 2-digit addition in which 70% of the problems with a carry get the
# carry-dropping mistake, and `kto sft` on it. Every size is a variable so the tests can run the same commands small.
set -euo pipefail
cd "$(dirname "$0")/.."

KTO=${KTO:-"dotnet run -c Release --project src/Kto.Cluster.Cmd --"}
OUT=${OUT:-models/addition-ref}          # where the finished checkpoint goes
WORK=${WORK:-runs/addition-ref}          # scratch: data, SFT checkpoints, metrics
LAYERS=${LAYERS:-3}
HEADS=${HEADS:-4}
WIDTH=${WIDTH:-128}
SFT_ROWS=${SFT_ROWS:-20000}
SFT_STEPS=${SFT_STEPS:-3000}
WRONG_SHARE=${WRONG_SHARE:-0.7}
THREADS=${THREADS:-2}
SEED=${SEED:-1}

mkdir -p "$WORK"
$KTO model init --out "$WORK/init" --tokenizer byte --layers "$LAYERS" --heads "$HEADS" --width "$WIDTH" --positions 16 --seed "$SEED"
$KTO data synth addition --kind sft --split train --count "$SFT_ROWS" --wrong-share "$WRONG_SHARE" --seed "$SEED" --out "$WORK/sft.jsonl"
cat > "$WORK/sft.json" <<JSON
{
  "model_name_or_path": "init",
  "dataset_path": "sft.jsonl",
  "output_dir": "sft",
  "learning_rate": 0.001,
  "lr_scheduler_type": "cosine",
  "warmup_steps": 100,
  "per_device_train_batch_size": 64,
  "max_steps": $SFT_STEPS,
  "max_length": 16,
  "max_prompt_length": 8,
  "logging_steps": 50,
  "save_steps": 1000,
  "seed": $SEED,
  "num_threads": $THREADS
}
JSON
$KTO sft --config "$WORK/sft.json" --overwrite
mkdir -p "$OUT"
cp "$WORK/sft/checkpoint-$SFT_STEPS/config.json" "$WORK/sft/checkpoint-$SFT_STEPS/model.safetensors" "$OUT/"
echo "reference written to $OUT"
