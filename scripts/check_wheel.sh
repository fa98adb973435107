#!/usr/bin/env bash
# Does foundry install from its wheel alone?
#
# Builds the sdist and, from that sdist, the wheel (python -m build, in a throwaway build venv); checks
# what they contain; installs the wheel in a fresh venv beside CPU torch; then runs the `foundry`
# command and the Python API from a directory outside the repository, so nothing can come from the
# source tree. Fails (exit 1) on any non-zero exit, any traceback, a missing package-data file, or a
# wheel that carries more than the `foundry` package. Everything happens under one temporary
# directory, removed at the end; the repository is only read.
#
#   scripts/check_wheel.sh              # build from the working tree (tracked + untracked, not ignored)
#   scripts/check_wheel.sh --ref HEAD   # build from a commit (git archive), as a fresh clone would
#
# Extras installed: serve,pde — what the checks use. Not installed: rl (ray) and pde-eval
# (neuraloperator, which pulls wandb and tensorly): heavy, and nothing checked here imports them.
# CPU torch goes in first (TORCH_SPEC, default torch==2.13.0), so the extras' `torch>=2.4` is already
# met and pip does not fetch a CUDA build. Needs a package index for the extras' other dependencies.
#
# Environment: PYTHON (default python3, >= 3.11), TORCH_SPEC, EXTRAS (default serve,pde),
# KEEP=1 keeps the temporary directory for inspection.
set -euo pipefail

REF=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --ref) REF="${2:?--ref needs a commit}"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "check_wheel: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-serve,pde}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH VIRTUAL_ENV

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/foundry-wheel.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

T0=$EPOCHREALTIME
TIMINGS=()
FAILED=0
LOG="$TMP/logs"; mkdir -p "$LOG"
n=0

# step NAME CMD...: run CMD, log its output, time it; a failure is a non-zero exit or a traceback.
# CMD runs where `set -e` does not apply, so the functions below chain their commands with && / return.
step() {
    local name="$1"; shift
    n=$((n + 1))
    local log; log="$LOG/$(printf '%02d' "$n").log"
    local t0=$EPOCHREALTIME rc=0
    "$@" >"$log" 2>&1 || rc=$?
    local dt; dt=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    if [[ $rc -eq 0 ]] && grep -q 'Traceback (most recent call last)' "$log"; then rc=99; fi
    if [[ $rc -eq 0 ]]; then
        printf 'ok    %6s s  %s\n' "$dt" "$name"
    else
        printf 'FAIL  %6s s  %s (exit %s%s)\n' "$dt" "$name" "$rc" "$([[ $rc -eq 99 ]] && echo ', traceback')"
        sed 's/^/      | /' "$log" | tail -40
        FAILED=1
    fi
    TIMINGS+=("$dt  $name")
    return 0
}
# stop now if an earlier step failed (later steps need its result)
need_ok() { [[ $FAILED -eq 0 ]] || { echo "check_wheel: FAILED before $1"; exit 1; }; }

# --- 1. a clean copy of the source, then sdist -> wheel ------------------------------------------
copy_source() {
    mkdir -p "$TMP/src" || return
    if [[ -n "$REF" ]]; then
        git -C "$REPO" archive --format=tar "$REF" | tar -x -C "$TMP/src"
    else
        (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
            | while IFS= read -r -d '' f; do [[ -e "$f" ]] && printf '%s\0' "$f"; done \
            | tar --null -T - -cf -) | tar -x -C "$TMP/src"
    fi
}
build_dists() {
    "$PYTHON" -m venv "$TMP/buildenv" || return
    "$TMP/buildenv/bin/pip" install -q build || return
    # no --sdist/--wheel: build makes the sdist, then the wheel from the unpacked sdist, so a
    # working wheel also proves the sdist is enough to rebuild.
    "$TMP/buildenv/bin/python" -m build --outdir "$TMP/dist" "$TMP/src"
}
step "copy the source${REF:+ at $REF}" copy_source
step "python -m build (sdist, then the wheel from it)" build_dists
need_ok "the wheel was built"
WHEEL=$(ls "$TMP"/dist/*.whl)
SDIST=$(ls "$TMP"/dist/*.tar.gz)
echo "      wheel $(basename "$WHEEL") ($(du -k "$WHEEL" | cut -f1) KiB), sdist $(basename "$SDIST") ($(du -k "$SDIST" | cut -f1) KiB)"

# package data = every non-Python file in the source package (checkpoints, configs, json/yaml, ...)
(cd "$TMP/src/src" && find foundry -type f ! -name '*.py' ! -name '*.pyc' ! -path '*/__pycache__/*' | sort) > "$TMP/package_data.txt"
echo "      package data: $(tr '\n' ' ' < "$TMP/package_data.txt")"

inspect_dists() {
    "$PYTHON" - "$WHEEL" "$SDIST" "$TMP/src/src" "$TMP/package_data.txt" <<'EOF'
import hashlib, sys, tarfile, zipfile
from pathlib import Path
wheel, sdist, src, data_list = sys.argv[1:]
data = Path(data_list).read_text().split()
errors = []
z = zipfile.ZipFile(wheel)
names = z.namelist()
top = sorted({n.split("/")[0] for n in names})
extra = [t for t in top if t != "foundry" and not t.endswith(".dist-info")]
if extra:
    errors.append(f"wheel: unexpected top-level entries {extra} (only foundry/ and the .dist-info belong)")
py_src = sorted(str(p.relative_to(src)) for p in Path(src, "foundry").rglob("*.py"))
missing_py = [p for p in py_src if p not in names]
if missing_py:
    errors.append(f"wheel: modules missing: {missing_py[:10]}")
for f in data:
    if f not in names:
        errors.append(f"wheel: package data missing: {f}")
    elif hashlib.sha256(z.read(f)).digest() != hashlib.sha256(Path(src, f).read_bytes()).digest():
        errors.append(f"wheel: package data differs from the source: {f}")
ep = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
if ep is None or "foundry = foundry.cli:app" not in z.read(ep).decode():
    errors.append("wheel: no `foundry = foundry.cli:app` console script")
t = tarfile.open(sdist)
root = t.getnames()[0].split("/")[0]
snames = set(t.getnames())
for f in ["pyproject.toml", "README.md", "PKG-INFO"] + [f"src/{p}" for p in py_src + data]:
    if f"{root}/{f}" not in snames:
        errors.append(f"sdist: missing {f}")
print(f"wheel: {len(names)} files, top level {top}; checked {len(py_src)} modules and {len(data)} data file(s)")
print(f"sdist: {len(snames)} entries under {root}/")
for e in errors:
    print("ERROR", e)
sys.exit(1 if errors else 0)
EOF
}
step "wheel and sdist contents (only foundry/, every module and data file)" inspect_dists
need_ok "installing"

# --- 2. a fresh venv: CPU torch first, then the wheel alone ---------------------------------------
VENV="$TMP/venv"
step "fresh venv + $TORCH_SPEC" bash -c "'$PYTHON' -m venv '$VENV' && '$VENV/bin/pip' install -q '$TORCH_SPEC'"
step "pip install $(basename "$WHEEL")[$EXTRAS]" "$VENV/bin/pip" install -q "$WHEEL[$EXTRAS]"
need_ok "running the installed package"
"$VENV/bin/pip" list 2>/dev/null | grep -iE '^(torch|foundry)' | sed 's/^/      /'

# --- 3. use it from outside the repository --------------------------------------------------------
RUN="$TMP/run"; mkdir -p "$RUN"; cd "$RUN"
export PATH="$VENV/bin:$PATH"
hash -r

step "import foundry from site-packages, package data installed intact" python - "$TMP/src/src" "$TMP/package_data.txt" <<'EOF'
import hashlib, sys
from importlib import metadata, resources
from pathlib import Path
import foundry
src, data_list = sys.argv[1:]
where = Path(foundry.__file__).resolve()
print("foundry from", where, "| distribution foundry-systems", metadata.version("foundry-systems"))
assert "site-packages" in where.parts, f"foundry imported from {where}, not from the installed wheel"
for f in Path(data_list).read_text().split():
    installed = resources.files("foundry").joinpath(*Path(f).parts[1:])
    assert installed.is_file(), f"missing package data: {f}"
    assert hashlib.sha256(installed.read_bytes()).digest() == hashlib.sha256(Path(src, f).read_bytes()).digest(), f
    print("data ok:", f)
from foundry.pde import inference  # noqa: E402  (the path `pde predict` loads by default)
if hasattr(inference, "default_checkpoint"):
    ckpt = Path(inference.default_checkpoint()).resolve()
    assert ckpt.is_file() and "site-packages" in ckpt.parts, ckpt
    print("default PDE checkpoint:", ckpt)
EOF
step "foundry --help" foundry --help
step "foundry version" foundry version

pde_predict() {
    foundry pde predict "u_t + (0.5*u^2)_x - 0.01*u_xx = 0" --ic "sin(pi*x)" --out "$RUN/pde/u.npz" \
        --reference || return
    python -c "
import numpy as np
d = np.load('$RUN/pde/u.npz'); u = d['u']
assert u.shape == (101, 128) and np.isfinite(u).all(), u.shape
print('u.npz:', {k: d[k].shape for k in d.files})" || return
    test -s "$RUN/pde/u.png"
}
step "foundry pde predict (the shipped checkpoint) + --reference" pde_predict

step "LLMEngine on foundry-tiny: 4 tokens" python - <<'EOF'
from foundry.serve import EngineConfig, LLMEngine, SamplingParams
engine = LLMEngine(EngineConfig(model="foundry-tiny", policy="vllm"))
outs = engine.generate(["Hello", "The capital of"], SamplingParams(max_tokens=4, temperature=0))
for o in outs:
    assert len(o.output_token_ids) == 4 and o.finish_reason == "length", o
    print(o.prompt_token_ids, "->", o.output_token_ids)
EOF

bench_in_process() {
    foundry serve bench --in-process --workload fixed --prompt-len 16 --output-len 4 --num-requests 4 \
        --rate inf --json > "$RUN/bench.json" || return
    python -c "
import json; r = json.load(open('$RUN/bench.json'))
assert r['num_completed'] == 4 and r['num_failed'] == 0, r
print('completed', r['num_completed'], 'failed', r['num_failed'])"
}
step "foundry serve bench --in-process (4 requests)" bench_in_process

serve_http() {
    local port
    port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') \
        || return
    foundry serve --model foundry-tiny --port "$port" --log-level warning > "$LOG/server.log" 2>&1 &
    SERVER_PID=$!
    local rc=0
    foundry serve bench --url "http://127.0.0.1:$port" --wait 60 --workload fixed --prompt-len 16 \
        --output-len 4 --num-requests 4 --rate inf --json > "$RUN/bench_http.json" || rc=$?
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    cat "$LOG/server.log"
    [[ $rc -eq 0 ]] || return $rc
    python -c "
import json; r = json.load(open('$RUN/bench_http.json'))
assert r['num_completed'] == 4 and r['num_failed'] == 0, r
print('HTTP: completed', r['num_completed'], 'failed', r['num_failed'])"
}
step "foundry serve (HTTP) + foundry serve bench --url (4 requests)" serve_http

mimo_sweep() {
    foundry mimo sweep --bs-antennas 16 --users 4 --snr-db 0,30 --draws 20 --precoders zf,wl-zf \
        --out "$RUN/mimo" || return
    test -s "$RUN/mimo/sweep.csv" && test -s "$RUN/mimo/sweep.png"
}
step "foundry mimo sweep (small)" mimo_sweep
step "foundry sim serve (50 requests)" foundry sim serve --cost opt-13b-a100 --policy sj-mlfq --workload pareto \
    --rate 7 --num-requests 50 --json

# --- summary --------------------------------------------------------------------------------------
TOTAL=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
echo "---- timings (s)"
printf '%s\n' "${TIMINGS[@]}"
echo "---- total ${TOTAL} s"
if [[ $FAILED -ne 0 ]]; then echo "check_wheel: FAILED"; exit 1; fi
echo "check_wheel: OK — $(basename "$WHEEL") installs alone and works from outside the repository"
