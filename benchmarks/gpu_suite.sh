#!/usr/bin/env bash
# One call on a GPU machine measures every GPU stage and prints ONE JSON object on stdout:
#   descriptor ms/image (default model and VGG16; CUDA fp32, CUDA fp16, TensorRT fp16),
#   FAISS exact search k=100 at 100k and 1M keyframes (GPU index vs CPU scan, same run),
#   ALIKED + LightGlue extraction and per-pair matching, and the node's publish -> candidate
#   latency (p95) with verification of the top 3 on rtabmap_loop.
#
#   bash benchmarks/gpu_suite.sh [--dry-run] [--python PY] [--data DIR] [--budget-s 450]
#
# It reuses benchmarks/{descriptor,database,verify,node_latency}.py (their --json flags); each
# step has its own time limit inside one overall budget (default 450 s, so that the whole call
# stays under 8 minutes), and a step that fails or runs out of time is reported in the JSON
# ({"error": ...}) while the others still run. Logs go to stderr.
#
# Python: --python, else $MAQBOOL_PYTHON, else .venv/bin/python (a `make install GPU=1` venv),
# else python3. The GPU machine is assumed to have no package index: the environment must
# already hold the GPU wheels (onnxruntime-gpu, faiss-gpu, a CUDA torch), see README "GPU".
# Data: --data, else $MAQBOOL_SHARED_DATA, else ../shared/data (the node step uses
# rtabmap_loop/frames; without it, node_latency.py's synthetic sequence, noted in the JSON).
#
# --dry-run (any machine, no GPU needed; CI runs it): checks every step it would take -- the
# scripts exist, the Python modules import, each script's --help and `maqbool doctor` work --
# prints the plan and checks as JSON and exits 0 only when all checks pass.
set -u -o pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY=0
PY=${MAQBOOL_PYTHON:-}
DATA=${MAQBOOL_SHARED_DATA:-$REPO/../shared/data}
BUDGET=450
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --python) PY=$2; shift ;;
    --data) DATA=$2; shift ;;
    --budget-s) BUDGET=$2; shift ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_suite.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
START=$(date +%s)
FRAMES=$DATA/rtabmap_loop/frames
NODE_DATA=()
[ -d "$FRAMES" ] && NODE_DATA=(--dataset "$FRAMES")
MODELS=$OUT/models

# name  seconds  command...   (the command writes $OUT/<name>.json)
STEPS=(
  "doctor|20|$PY -m maqbool_ros.tools.cli doctor --json"
  "descriptor_cuda_fp32|60|$PY -m benchmarks.descriptor --device cuda --backbones mobilenetv2 vgg16 --sizes 640x480 --repeats 50 --warmup 5 --model-dir $MODELS --json $OUT/descriptor_cuda_fp32.json"
  "descriptor_cuda_fp16|50|$PY -m benchmarks.descriptor --device cuda --fp16 --backbones mobilenetv2 vgg16 --sizes 640x480 --repeats 50 --warmup 5 --model-dir $MODELS --json $OUT/descriptor_cuda_fp16.json"
  "descriptor_tensorrt_fp16|110|$PY -m benchmarks.descriptor --device tensorrt --fp16 --backbones mobilenetv2 vgg16 --sizes 640x480 --repeats 50 --warmup 5 --model-dir $MODELS --json $OUT/descriptor_tensorrt_fp16.json"
  "faiss_k100|110|$PY -m benchmarks.database --gpu-vs-cpu 100000,1000000 --queries 30 --warmup 5 --json $OUT/faiss_k100.json"
  "aliked_lightglue|40|$PY -m benchmarks.verify --learned-only --reps 10 --data $DATA --json $OUT/aliked_lightglue.json"
  "node_latency_top3|60|$PY -m benchmarks.node_latency --budgets 5 --top-n 3 --verification on ${NODE_DATA[*]} --json $OUT/node_latency_top3.json"
)

dry_run() {
  local checks=() ok=1 name cmd script
  for f in benchmarks/descriptor.py benchmarks/database.py benchmarks/verify.py benchmarks/node_latency.py \
           maqbool_ros/core/descriptor/registry.json; do
    if [ -f "$f" ]; then checks+=("file $f|ok"); else checks+=("file $f|missing"); ok=0; fi
  done
  for m in maqbool_ros onnxruntime faiss torch cv2 tqdm rclpy maqbool_ros.msg; do
    if "$PY" -c "import $m" >/dev/null 2>&1; then checks+=("import $m|ok"); else checks+=("import $m|fails"); ok=0; fi
  done
  for s in "${STEPS[@]}"; do
    name=${s%%|*}; cmd=${s#*|*|}
    script=$(echo "$cmd" | awk '{print $3}')  # "$PY -m benchmarks.<name> ..."
    if [ "$name" = doctor ]; then
      if $cmd >/dev/null 2>&1; then checks+=("step $name: maqbool doctor --json|ok"); else checks+=("step $name|fails"); ok=0; fi
    elif "$PY" -m "$script" --help >/dev/null 2>&1; then checks+=("step $name: $script --help|ok")
    else checks+=("step $name: $script --help|fails"); ok=0; fi
  done
  [ -d "$FRAMES" ] && checks+=("data $FRAMES|ok") || checks+=("data $FRAMES|absent (node step would use the synthetic sequence)")
  command -v nvidia-smi >/dev/null 2>&1 && checks+=("nvidia-smi|present") || checks+=("nvidia-smi|absent (no GPU here)")
  printf '%s\n' "${checks[@]}" > "$OUT/checks.txt"
  printf '%s\n' "${STEPS[@]}" > "$OUT/steps.txt"
  "$PY" - "$OUT" "$ok" <<'EOF'
import json, sys
out, ok = sys.argv[1], sys.argv[2] == "1"
checks = dict(line.rstrip("\n").rsplit("|", 1) for line in open(f"{out}/checks.txt"))
plan = [dict(zip(("step", "limit_s", "command"), line.rstrip("\n").split("|", 2))) for line in open(f"{out}/steps.txt")]
print(json.dumps({"dry_run": True, "ok": ok, "checks": checks, "plan": plan}, indent=1))
EOF
  [ "$ok" = 1 ]
}

if [ "$DRY" = 1 ]; then
  dry_run
  exit $?
fi

for s in "${STEPS[@]}"; do
  name=${s%%|*}; rest=${s#*|}; limit=${rest%%|*}; cmd=${rest#*|}
  left=$(( BUDGET - ($(date +%s) - START) ))
  [ "$limit" -gt "$left" ] && limit=$left
  if [ "$limit" -lt 5 ]; then echo "skipped: overall budget spent" > "$OUT/$name.err"; continue; fi
  echo "== $name (limit ${limit}s): $cmd" >&2
  t0=$(date +%s)
  if [ "$name" = doctor ]; then
    timeout "$limit" $cmd > "$OUT/doctor.json" 2> "$OUT/$name.log"
  else
    timeout "$limit" $cmd > "$OUT/$name.log" 2>&1
  fi
  rc=$?
  echo "$(( $(date +%s) - t0 ))" > "$OUT/$name.secs"
  tail -n 40 "$OUT/$name.log" >&2
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "timeout after ${limit}s" > "$OUT/$name.err" || echo "exit $rc: $(tail -n 3 "$OUT/$name.log" | tr '\n' ' ')" > "$OUT/$name.err"
  fi
done
printf '%s\n' "${STEPS[@]}" > "$OUT/steps.txt"
"$PY" - "$OUT" "$(( $(date +%s) - START ))" "$FRAMES" <<'EOF'
import json, os, sys
out, total, frames = sys.argv[1], int(sys.argv[2]), sys.argv[3]
result = {"suite": "gpu_suite", "wall_s": total, "node_frames": frames if os.path.isdir(frames) else "synthetic"}
for line in open(f"{out}/steps.txt"):
    name = line.split("|", 1)[0]
    path, err = f"{out}/{name}.json", f"{out}/{name}.err"
    if os.path.isfile(err):
        result[name] = {"error": open(err).read().strip()}
    elif os.path.isfile(path):
        try:
            result[name] = json.load(open(path))
        except ValueError as exc:
            result[name] = {"error": f"unreadable JSON: {exc}"}
    else:
        result[name] = {"error": "no output"}
    if os.path.isfile(f"{out}/{name}.secs"):
        result.setdefault("step_s", {})[name] = int(open(f"{out}/{name}.secs").read())
print(json.dumps(result, indent=1))
EOF
