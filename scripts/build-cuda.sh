#!/usr/bin/env bash
# Builds instructmol with the CUDA backend (cargo feature `cuda`) for NVIDIA Hopper GPUs (sm_90:
# H100, H200) on a machine with no GPU, no driver and no CUDA install: CUDA's compiler and headers
# come from PyPI wheels installed into .venv-cuda. The binary links the CUDA libraries dynamically
# (candle 0.11.1 fixes cudarc to dynamic linking), so it runs where the NVIDIA driver and the
# CUDA 13 libraries are installed, no Rust needed there.
#
#   bash scripts/build-cuda.sh            # release binary: target-cuda/release/instructmol
#   bash scripts/build-cuda.sh --check    # what CI runs: clippy of the `cuda` and `nccl` features, no linking
#
# Environment: CUDA_COMPUTE_CAP (default 90), CARGO_TARGET_DIR (default target-cuda for the build,
# so the CPU build in target/ is never overwritten; target for --check, which shares the CPU
# build's dependencies and writes no binary), INSTRUCTMOL_CUDA_VENV (default .venv-cuda).
# Running it again reuses the venv and cargo's incremental state.
#
# Measured on the shared 2-core machine (load 2-5 from other work), from an empty target dir
# and no venv: 19.6 minutes wall (1176 s) for everything: the CUDA wheels, every dependency,
# candle-kernels' PTX (about 3.5 minutes), candle-core and instructmol; the link 2 s. Binary
# 47 MiB, the stripped copy to carry 42 MiB. The old build also compiled candle-kernels'
# 15 quantized/MoE files to sm_90 machine code, over an hour on its own: those are now empty
# objects (step 1b; nothing here runs them on a GPU). --check: 4.5 CPU-minutes from cold.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=build
case "${1:-}" in
"") ;;
--check) mode=check ;;
-h | --help)
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit 0
    ;;
*)
    echo "build-cuda.sh: unknown argument '$1' (expected nothing, --check or --help)" >&2
    exit 2
    ;;
esac

die() {
    echo "build-cuda.sh: error: $*" >&2
    exit 1
}

# CUDA 13.0 matches the accelerator machines' driver (580, CUDA 13.0) and their CUDA libraries;
# candle loads its kernels as PTX, which a driver only accepts from a compiler no newer than itself.
cuda_packages=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
)
venv=${INSTRUCTMOL_CUDA_VENV:-$root/.venv-cuda}
if [[ $mode == check ]]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
else
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target-cuda}
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain (https://rustup.rs)"
command -v g++ >/dev/null || die "g++ not found: nvcc needs a host C++ compiler (apt-get install g++)"
command -v python3 >/dev/null || die "python3 not found: it installs CUDA's compiler from PyPI"

# 1. CUDA's compiler and headers from PyPI, once (the stamp records what was installed).
stamp=$venv/.instructmol-cuda-packages
if [[ ! -f $stamp || "$(cat "$stamp")" != "${cuda_packages[*]}" ]]; then
    echo "build-cuda.sh: installing ${cuda_packages[*]} into $venv" >&2
    if [[ ! -x $venv/bin/python ]]; then
        python3 -m venv "$venv" || die "cannot create the venv $venv (Debian: apt-get install python3-venv)"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${cuda_packages[@]}" ||
        die "pip could not install the CUDA packages from PyPI (network? disk space?)"
    echo "${cuda_packages[*]}" >"$stamp"
fi
cuda_root=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))') ||
    die "the venv $venv has no nvidia packages: delete it and run this script again"
[[ -x $cuda_root/bin/nvcc ]] || die "no nvcc in $cuda_root/bin: delete $venv and run this script again"
export PATH=$cuda_root/bin:$PATH
export CUDA_ROOT=$cuda_root CUDA_PATH=$cuda_root CUDA_HOME=$cuda_root
nvcc --version | grep -q 'release 13\.0' || die "$cuda_root/bin/nvcc is not CUDA 13.0: delete $venv and run again"

# 1b. candle-kernels compiles two kinds of CUDA code: PTX for every tensor op (loaded by the driver
# at run time; a few minutes) and, with `nvcc -c` into a static library (libmoe.a), sm_90
# machine code for its quantized-GGUF matmuls (mmq_*, mmvq_gguf) and mixture-of-experts
# kernels (moe_*): 15 files of heavily templated code, over an hour on 2 cores. instructmol
# never runs those on a GPU: quantized weights stay on the CPU (`Llama::from_parts` refuses
# them on any other device) and no model here has experts. So a stand-in nvcc writes empty
# objects for exactly those files and runs the real nvcc for everything else; the symbols
# candle's Rust code declares for them get link-time definitions (step 2b) that abort with a
# message, never reached (in the linked binary no code refers to them any more: the linker drops
# candle's quantized-CUDA and MoE paths as unused, but it resolves symbols before it drops code).
standin=$CARGO_TARGET_DIR/cuda-nvcc
mkdir -p "$standin/bin"
cat >"$standin/bin/nvcc" <<'STANDIN'
#!/usr/bin/env bash
# Written by scripts/build-cuda.sh: an empty object for `nvcc -c` of candle-kernels' quantized
# (mmq_*.cu, mmvq_gguf.cu) and MoE (moe_*.cu) sources, the real nvcc for everything else.
out= compile= skip= prev=
for a in "$@"; do
    [[ $a == -c ]] && compile=1
    [[ $prev == -o ]] && out=$a
    case $a in
    *.cu) case ${a##*/} in mmq_*.cu | mmvq_gguf.cu | moe_*.cu) skip=1 ;; esac ;;
    esac
    prev=$a
done
if [[ -n $compile && -n $skip && -n $out ]]; then
    exec gcc -x c -c /dev/null -o "$out"
fi
exec REAL_NVCC "$@"
STANDIN
sed -i "s|REAL_NVCC|'$cuda_root/bin/nvcc'|" "$standin/bin/nvcc"
chmod +x "$standin/bin/nvcc"
export PATH=$standin/bin:$PATH

if [[ $mode == check ]]; then
    # Type-checks and lints all Rust code behind the `cuda` feature (ours, candle's, cudarc's),
    # runs the real nvcc for cudarc's version detection and for candle's PTX kernels (the ones
    # every tensor op uses), and links nothing. The `nccl` feature (src/train/nccl.rs, cudarc's
    # NCCL bindings: no NCCL install needed to compile) is checked with it;
    # INSTRUCTMOL_CHECK_FEATURES=cuda checks the `cuda` feature alone.
    exec cargo clippy --release --all-targets --features "${INSTRUCTMOL_CHECK_FEATURES:-cuda,nccl}" -- -D warnings
fi

# 2. Link-time stand-ins for the CUDA libraries that no GPU-less machine has: the driver
# (libcuda.so.1) and the math libraries (nvrtc, curand, cuBLAS, cuBLASLt, hundreds of MB as wheels).
# Each stub has the real library's soname and defines the functions our code calls, so the linker
# records the right dependencies; at run time the real libraries are loaded, never these. A stub
# function returns 34, CUDA_ERROR_STUB_LIBRARY. libcudart comes for real from the runtime wheel.
# The stubs and the run-time search path go to the final link only (`cargo rustc`), not into
# RUSTFLAGS, so the libraries and the kernels stay shared with `--check` in the same target dir.
stubs=$CARGO_TARGET_DIR/cuda-link-stubs
mkdir -p "$stubs"
ln -sf "$cuda_root/lib/libcudart.so.13" "$stubs/libcudart.so"

echo "build-cuda.sh: building the libraries (sm_$CUDA_COMPUTE_CAP kernels, CUDA 13.0)" >&2
cargo build --release --features cuda --lib

# Every symbol the compiled Rust code and candle's static kernel library leave undefined.
undefined=$(
    find "$CARGO_TARGET_DIR/release/deps" -name '*.rlib' -print0 |
        xargs -0 nm --undefined-only --format=just-symbols 2>/dev/null
    find "$CARGO_TARGET_DIR/release/build" -path '*candle-kernels-*/out/libmoe.a' -print0 |
        xargs -0 -r nm --undefined-only --format=just-symbols 2>/dev/null
)
make_stub() { # make_stub LINK_NAME SONAME SYMBOL_REGEX
    local name=$1 soname=$2 regex=$3 syms
    syms=$(grep -E "$regex" <<<"$undefined" | sort -u || true)
    [[ -n $syms ]] || die "no undefined $name symbols found in $CARGO_TARGET_DIR: is the build complete?"
    {
        echo "/* Link-time stub for $soname, generated by scripts/build-cuda.sh. */"
        sed 's/.*/int &(void) { return 34; }/' <<<"$syms"
    } >"$stubs/$name.c"
    gcc -shared -fPIC -w -Wl,-soname,"$soname" -o "$stubs/lib$name.so" "$stubs/$name.c" ||
        die "gcc could not build the link stub $stubs/lib$name.so"
    ln -sf "lib$name.so" "$stubs/$soname"
}
make_stub cuda libcuda.so.1 '^cu[A-Z]'
make_stub nvrtc libnvrtc.so.13 '^nvrtc'
make_stub curand libcurand.so.10 '^curand'
make_stub cublas libcublas.so.13 '^cublas([^L]|L[^t]|$)'
make_stub cublasLt libcublasLt.so.13 '^cublasLt'

# 2b. Definitions for the kernels left out above: every function candle-kernels' ffi.rs declares
# (the contents of libmoe.a) gets one that says what happened and aborts. They are never
# called (see above); the linker needs them because candle-core's quantized CUDA matmul
# (fast_mmq.rs, fast_mmvq.rs) and candle-nn's MoE layer refer to them.
kernels_src=$(cargo metadata --format-version 1 --features cuda 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "candle-kernels":
        print(p["manifest_path"].rsplit("/", 1)[0])
') || die "cargo metadata failed"
[[ -f $kernels_src/src/ffi.rs ]] || die "no candle-kernels source with src/ffi.rs found (got '$kernels_src')"
kernel_syms=$(grep -oE 'pub fn [A-Za-z0-9_]+' "$kernels_src/src/ffi.rs" | awk '{print $3}' | sort -u)
[[ -n $kernel_syms ]] || die "no functions declared in $kernels_src/src/ffi.rs"
{
    echo "/* Generated by scripts/build-cuda.sh: candle-kernels' quantized/MoE kernels, left out. */"
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo 'static void left_out(const char *name) {'
    echo '    fprintf(stderr, "instructmol: candle CUDA kernel %s is not in this build: scripts/build-cuda.sh "'
    echo '        "leaves out candle'"'"'s quantized-GGUF and MoE GPU kernels, because quantized weights run on the "'
    echo '        "CPU here. Reaching this is a bug; please report it.\n", name);'
    echo '    abort();'
    echo '}'
    sed 's/.*/void &(void) { left_out("&"); }/' <<<"$kernel_syms"
} >"$stubs/candle_kernel_stubs.c"
gcc -c -fPIC -O2 -o "$stubs/candle_kernel_stubs.o" "$stubs/candle_kernel_stubs.c" ||
    die "gcc could not compile $stubs/candle_kernel_stubs.c"
referenced=$(comm -12 <(sort -u <<<"$undefined") <(echo "$kernel_syms") | wc -l)
echo "build-cuda.sh: $(wc -l <<<"$kernel_syms") left-out kernel functions, $referenced of them referenced by the compiled Rust code" >&2

echo "build-cuda.sh: linking the binary" >&2
rpath=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib
cargo rustc --release --features cuda --bin instructmol -- \
    -L "native=$stubs" -C "link-arg=-Wl,-rpath,$rpath" -C "link-arg=$stubs/candle_kernel_stubs.o"
bin=$CARGO_TARGET_DIR/release/instructmol
# The copy to carry to a GPU machine (the device tool takes 64 MiB in all): without symbols.
strip --strip-all -o "$bin.stripped" "$bin" || die "strip failed on $bin"
mib() { echo "$(( ($(stat -c %s "$1") + 524287) / 1048576 )) MiB"; }
echo "build-cuda.sh: $bin is $(mib "$bin"), $bin.stripped $(mib "$bin.stripped")" >&2

# 3. The binary starts: with the machine's driver where there is one, else with the stubs, which
# answer every driver call with CUDA_ERROR_STUB_LIBRARY (so `--device cuda` must say "no driver").
if ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    "$bin" --version >/dev/null || die "$bin does not start"
else
    export LD_LIBRARY_PATH=$stubs:$cuda_root/lib
    "$bin" --version >/dev/null || die "$bin does not start, even with the link stubs"
    if answer=$("$bin" device --device cuda 2>&1); then
        die "$bin device --device cuda succeeded with stub libraries: $answer"
    fi
    grep -q 'no usable CUDA device' <<<"$answer" ||
        die "$bin device --device cuda did not explain the missing driver: $answer"
    echo "build-cuda.sh: without a driver it answers: $answer" >&2
    unset LD_LIBRARY_PATH
fi
echo "build-cuda.sh: built $bin (and $bin.stripped, the copy to carry)" >&2
echo "  it needs at run time: $(readelf -d "$bin" | sed -n 's/.*NEEDED.*\[\(lib\(cu\|nvrtc\)[^]]*\)\].*/\1/p' | tr '\n' ' ')" >&2
echo "  found in /usr/local/cuda/lib64 or through LD_LIBRARY_PATH, with the NVIDIA driver (libcuda.so.1)" >&2
