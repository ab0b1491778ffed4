#!/bin/bash
# One call on a bare GPU machine (the lent H200): install the carried wheels and the project,
# then run what is asked, logs and JSON under $OUT (default ./gpu-out). Carry .whl, made here
# by ../shared/gpu/fetch-wheels.sh .whl (x86-64, Python 3.12).
#   tools/gpu_run.sh tests     CUDA tests of the F5 engine (F5 and the DMOSpeech2 student)
#   tools/gpu_run.sh engine    tools/bench_engine.py: F5 NFE 16/7 + upstream, student 4/2 steps
#   tools/gpu_run.sh daemon    tools/bench_daemon.py: the whole daemon, F5 and student
#   tools/gpu_run.sh step      tools/bench_step.py: one F5 step, fusion variants ($STEP_ARGS)
#   tools/gpu_run.sh coldstart tools/bench_coldstart.py: fresh/kept cache, F5 and student, daemon
#                              ($COLDSTART_ARGS: more of its options)
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ ! -d /tmp/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  PYTHONPATH=/tmp/site python3 -m pip install -q --no-deps --no-build-isolation --no-index \
    --target /tmp/site . || exit 1
fi
# The working tree's packages first: a warm machine keeps /tmp/site from an earlier call, and
# its installed copy of ishowtts may be older than the tree this call carried.
export PYTHONPATH=$PWD/daemon:$PWD/plugins:/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for what in "$@"; do
  case $what in
    tests)
      python3 -m pytest -q -p no:cacheprovider tests/test_f5_cuda.py \
        tests/test_f5_convkernel.py tests/test_f5_student.py tests/test_f5_fused.py \
        tests/test_f5_staged.py 2>&1 | tee "$OUT/tests.log" ;;
    engine)
      python3 tools/bench_engine.py --random-weights --nfe 16,7 --student-steps 4,2 \
        --json "$OUT/engine.json" 2>&1 | tee "$OUT/engine.log" ;;
    daemon)
      python3 tools/bench_daemon.py --random-weights --quiet 60 --seconds 60 \
        --json "$OUT/daemon.json" 2>&1 | tee "$OUT/daemon.log" ;;
    coldstart)
      python3 tools/bench_coldstart.py --random-weights --json "$OUT/coldstart.json" \
        ${COLDSTART_ARGS:-} 2>&1 | tee "$OUT/coldstart.log" ;;
    step)
      python3 tools/bench_step.py --profile --json "$OUT/step.json" ${STEP_ARGS:-} 2>&1 \
        | tee "$OUT/step.log" ;;
    *) echo "unknown step $what"; exit 2 ;;
  esac
done
