#!/usr/bin/env bash
# The GPU proof of issue 21, in one go (≤ 8 minutes on one GPU): pytest -m gpu; bench speed at
# 256/512/1024 (ours, Johnson, Gatys; fp32 and bf16); bench throughput on 20,000 MPIIGaze-size
# (36×60) patches; a 500-step training run (and the same model's CPU steps/s beside it);
# writes benchmarks/results/gpu/ (JSON + Markdown, the GPU's name in both).
#
#   bash benchmarks/gpu_check.sh                 # on a machine with an NVIDIA GPU
#   GPU_CHECK_QUICK=1 bash benchmarks/gpu_check.sh   # tiny sizes on whatever device is there
#                                                # (CI/CPU: checks the script, results to a temp folder)
#
# Installs nothing: it uses .venv (made by the README's first line) or $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "gpu_check: no $PY: run the README's first line first (or set PYTHON=...)" >&2; exit 2; }
export PYTHONPATH=${PYTHONPATH:-$PWD/src}
QUICK=${GPU_CHECK_QUICK:-0}
HAS_CUDA=$("$PY" -c 'import torch; print(int(torch.cuda.is_available()))')
if [ "$QUICK" = 1 ]; then
  DEV=${GPU_CHECK_DEVICE:-auto}; OUT=${GPU_CHECK_OUT:-$(mktemp -d)/gpu}
  SIZES=64; REPEATS=1; GATYS_IT=2; BATCHES=1,4; N=64; STEPS=6; CPU_STEPS=2; RENDERS=16; TRAIN_BATCH=4
else
  [ "$HAS_CUDA" = 1 ] || { echo "gpu_check: torch sees no CUDA GPU (torch.cuda.is_available() is False): run it on a GPU machine with a CUDA build of torch, or set GPU_CHECK_QUICK=1" >&2; exit 2; }
  DEV=cuda; OUT=${GPU_CHECK_OUT:-benchmarks/results/gpu}
  SIZES=256,512,1024; REPEATS=5; GATYS_IT=5; BATCHES=1,16,64,256; N=20000; STEPS=500; CPU_STEPS=10; RENDERS=512; TRAIN_BATCH=16
fi
mkdir -p "$OUT"; WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
EP=("$PY" -m eyepurify)
t0=$(date +%s)
echo "== pytest -m gpu"
"$PY" -m pytest -m gpu -q -rs tests/test_gpu.py 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -5
for prec in fp32 bf16; do
  echo "== bench speed $prec"
  "${EP[@]}" bench speed --device "$DEV" --precision "$prec" --sizes "$SIZES" --methods ours,johnson,gatys \
    --repeats "$REPEATS" --gatys-iters "$GATYS_IT" --batches "$BATCHES" --no-memory --out "$OUT/speed_$prec"
done
echo "== bench throughput ($N patches, 36x60)"
"${EP[@]}" bench throughput --device "$DEV" --n "$N" --sizes 36x60 --backends baseline,torch --no-ray \
  --batch 256 --quality-n 32 --out "$OUT/throughput"
echo "== train: $STEPS steps"
"${EP[@]}" render --domain both --n "$RENDERS" --size 72x120 --seed 0 --out "$WORK/renders" >/dev/null
TRAIN=(train --pairs "$WORK/renders" --net v2 --backbone lite0 --batch "$TRAIN_BATCH" --pixel-weight 1 --feature-weight 1
       --val-every 100000 --sample-every 100000 --checkpoint-every 100000)
"${EP[@]}" "${TRAIN[@]}" --device "$DEV" --steps "$STEPS" --out "$WORK/run_dev" >/dev/null
"${EP[@]}" "${TRAIN[@]}" --device cpu --precision fp32 --steps "$CPU_STEPS" --out "$WORK/run_cpu" >/dev/null
cp "$WORK/run_dev/log.jsonl" "$OUT/train_log.jsonl"
"$PY" - "$OUT" "$WORK" "$DEV" "$STEPS" "$CPU_STEPS" "$t0" <<'PYEOF'
import json, os, subprocess, sys, time
from pathlib import Path
import torch
out, work, dev, steps, cpu_steps, t0 = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
def rate(log, skip):  # steps/s after the first `skip` steps (start-up, cuDNN autotuning)
    t = [json.loads(l)["time"] for l in log.read_text().splitlines()]
    a = t[min(skip, len(t) - 2)] if len(t) > 1 else 0.0
    return (len(t) - 1 - min(skip, len(t) - 2)) / max(t[-1] - a, 1e-9)
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU run)"
try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError):
    smi = ""
speed = {p: json.loads((out / f"speed_{p}" / "speed.json").read_text()) for p in ("fp32", "bf16")}
tp = json.loads((out / "throughput" / "throughput.json").read_text())
dev_rate, cpu_rate = rate(work / "run_dev" / "log.jsonl", 20 if steps > 40 else 1), rate(work / "run_cpu" / "log.jsonl", 1)
row = tp["rows"]["36x60"]
res = {
    "gpu": gpu, "nvidia_smi": smi, "torch": torch.__version__, "cuda": torch.version.cuda, "device": dev,
    "speed_median_seconds": {p: s["median_seconds"] for p, s in speed.items()},
    "paper_seconds_titan_x": speed["fp32"]["paper_seconds_titan_x"],
    "throughput_patches_per_s": {k: v["patches_per_s"] for k, v in row.items()},
    "throughput_n": tp["rows"]["36x60"]["torch"]["n"], "mpiigaze_seconds_estimate": {
        k: 213659 / v["patches_per_s"] for k, v in row.items()},
    "train_steps": steps, "train_steps_per_s": dev_rate, "cpu_train_steps_per_s": cpu_rate,
    "train_speedup_vs_this_cpu": dev_rate / cpu_rate, "cpu_threads": torch.get_num_threads(),
    "wall_seconds": time.time() - t0, "quick": os.environ.get("GPU_CHECK_QUICK", "0") == "1",
    "pytest_gpu": [l for l in (out / "pytest_gpu.txt").read_text().splitlines() if " in " in l and ("passed" in l or "skipped" in l or "failed" in l)][-1:],
}
(out / "gpu_check.json").write_text(json.dumps(res, indent=1))
md = [f"# GPU check — {gpu}", "", f"`{smi}`; torch {torch.__version__}, CUDA {torch.version.cuda}; "
      f"whole script {res['wall_seconds']:.0f} s{' (QUICK mode: toy sizes)' if res['quick'] else ''}.", "",
      f"pytest -m gpu: {' '.join(res['pytest_gpu'])}", "", "## Seconds per image (batch 1, median)", "",
      "| method | precision | " + " | ".join(f"{s}²" for s in speed["fp32"]["sizes"]) + " |",
      "|---|---|" + "---|" * len(speed["fp32"]["sizes"])]
for m in ("ours", "johnson", "gatys"):
    for p in ("fp32", "bf16"):
        d = res["speed_median_seconds"][p].get(m, {})
        md.append(f"| {m} | {p} | " + " | ".join(f"{d.get(str(s), float('nan')):.4g}" for s in speed[p]["sizes"]) + " |")
for m, v in res["paper_seconds_titan_x"].items():
    md.append(f"| {m} (paper, Titan X) | — | " + " | ".join(f"{x}" for x in v.values()) + " |")
md += ["", f"## Throughput ({res['throughput_n']} patches 36×60, PNG in and out, predicted masks)", "",
       "| row | patches/s | all of MPIIGaze (213,659), s |", "|---|---|---|"]
md += [f"| {k} | {v:.0f} | {res['mpiigaze_seconds_estimate'][k]:.0f} |" for k, v in res["throughput_patches_per_s"].items()]
md += ["", f"## Training ({steps} steps, v2 net, lite0 loss network, batch as in the script)", "",
       f"{dev_rate:.2f} steps/s on {dev}; {cpu_rate:.3f} steps/s on this machine's CPU "
       f"({res['cpu_threads']} threads): {res['train_speedup_vs_this_cpu']:.0f}×.", ""]
(out / "gpu_check.md").write_text("\n".join(md))
print("\n".join(md))
PYEOF
echo "gpu_check: results in $OUT ($(( $(date +%s) - t0 )) s)"
