#!/usr/bin/env bash
# Prove that every range in requirements-python.txt has a binary wheel for each Python
# version a ROS 2 distribution uses (Humble 3.10, Kilted here 3.11, Jazzy/Kilted 3.12), with
# `pip download --only-binary=:all: --python-version X --no-deps`. Needs PyPI; not a test.
#   scripts/check_wheels.sh [--resolve] [PYTHON_VERSIONS...]    (default: 3.10 3.11 3.12)
# --resolve also resolves the whole file together (and with "numpy<2", as next to an apt ROS)
# for each version (`pip install --dry-run --report`, metadata only) and prints the key versions.
# torch is resolved with `pip install --dry-run --report` instead: PyPI's Linux torch wheel is
# the CUDA build (~900 MB); the resolver reads its metadata only, which proves the same wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
resolve=0; [ "${1:-}" = --resolve ] && { resolve=1; shift; }
versions=("$@"); [ ${#versions[@]} -gt 0 ] || versions=(3.10 3.11 3.12)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail=0
# requirements-python.txt includes the runtime and tools files (-r): their lines are checked too
mapfile -t reqs < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' requirements-runtime.txt requirements-tools.txt \
  requirements-python.txt | grep -v '^$' | grep -v '^-r')
printf '%-28s %-6s %s\n' requirement python wheel
for v in "${versions[@]}"; do
  for req in "${reqs[@]}"; do
    d="$work/$v/${req%%[<>=!~]*}"; mkdir -p "$d"
    if [[ $req == torch* ]]; then
      if $PY -m pip install -q --dry-run --ignore-installed --no-deps --only-binary=:all: --python-version "$v" \
           --target "$d/t" --report "$d/r.json" "$req" >"$d/log" 2>&1; then
        wheel=$($PY -c "import json,sys;print(json.load(open(sys.argv[1]))['install'][0]['download_info']['url']\
.rsplit('/',1)[-1]+' (metadata)')" "$d/r.json")
      else wheel=""; fi
    elif $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$v" -d "$d" "$req" >"$d/log" 2>&1; then
      wheel=$(cd "$d" && ls ./*.whl | sed 's|^\./||')
    else wheel=""; fi
    if [ -z "$wheel" ]; then fail=1; wheel="NO WHEEL: $(tail -1 "$d/log")"; fi
    printf '%-28s %-6s %s\n' "$req" "$v" "$wheel"
    rm -f "$d"/*.whl
  done
done
if [ $resolve -eq 1 ]; then
  for v in "${versions[@]}"; do
    for extra in "" "numpy<2"; do
      r="$work/resolve-$v.json"
      if $PY -m pip install -q --dry-run --ignore-installed --only-binary=:all: --python-version "$v" \
           --target "$work/t" --report "$r" -r requirements-python.txt $extra >"$work/resolve.log" 2>&1; then
        $PY -c "import json,sys
d={i['metadata']['name'].lower(): i['metadata']['version'] for i in json.load(open(sys.argv[1]))['install']}
keys='torch numpy scipy onnxruntime faiss-cpu opencv-contrib-python scikit-learn matplotlib'.split()
print(f'resolve {sys.argv[2]} {sys.argv[3] or \"\":8}', len(d), 'packages:', ' '.join(f'{k}=={d[k]}' for k in keys))" \
          "$r" "$v" "$extra"
      else fail=1; echo "resolve $v $extra FAILED: $(tail -1 "$work/resolve.log")"; fi
    done
  done
fi
[ $fail -eq 0 ] && echo "OK: every range has a wheel for Python ${versions[*]}" || { echo "FAILED"; exit 1; }
