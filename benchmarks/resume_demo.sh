#!/usr/bin/env bash
# Kill a real train_all.py run with SIGKILL just after its 3rd checkpoint, resume it, and compare
# its final weights with an uninterrupted run of the same command. Usage: CIFAR=DIR benchmarks/resume_demo.sh
set -u
cd "$(dirname "$0")/.."
D=${CIFAR:?set CIFAR to a CIFAR-10 folder (image-folder dump or cifar-10-batches-py)}
OUT=runs/resume_demo
CMD="python train_all.py --only colour --colour-nets UNet --colour-recipe assignment --colour-epochs 10 --colour-data $D --weights-dir $OUT/weights --report-dir $OUT/reports --threads 2"
rm -rf $OUT runs/checkpoints; mkdir -p runs
$CMD > runs/resume_demo_full.log 2>&1; cp $OUT/weights/colour_UNet.safetensors runs/resume_demo_full.safetensors
rm -rf $OUT runs/checkpoints; mkdir -p runs
start=$(date +%s.%N); $CMD > runs/resume_demo_a.log 2>&1 & pid=$!
until python benchmarks/checkpoint_epoch.py; do sleep 0.2; done
sleep 2; kill -9 $pid; killed=$(date +%s.%N); wait $pid 2>/dev/null
read ep mt < <(python benchmarks/checkpoint_epoch.py show)
echo "killed with SIGKILL $(echo "$killed-$start" | bc) s after start; last checkpoint: end of epoch $ep; work lost since it: $(echo "$killed-$mt" | bc) s"
ls $OUT/weights 2>/dev/null | wc -l
s2=$(date +%s.%N); $CMD --resume > runs/resume_demo_b.log 2>&1; e2=$(date +%s.%N)
echo "resumed run: $(echo "$e2-$s2" | bc) s"; grep -a "resuming" runs/resume_demo_b.log | head -2
cmp $OUT/weights/colour_UNet.safetensors runs/resume_demo_full.safetensors && echo "final weights bitwise equal to the uninterrupted run"
echo "checkpoints left: $(ls runs/checkpoints 2>/dev/null | wc -l)"
