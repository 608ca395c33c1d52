# bench/peers.sh: the header of the benchmark tables, sourced by bench/run.sh and bench/ops.sh.
#
#   . bench/peers.sh; peers_header "$BUILD/bench/bench_vae"   # any bench binary with --kernel
#
# Prints the machine, nabla's gemm kernel and the OpenBLAS core each peer loads. Fair peers:
# OpenBLAS (under PyTorch and in bench_gemm) picks its kernels by CPU model, and on a model it
# does not know it falls back to its Prescott (SSE3) kernels, 3-4x slower. On that fallback,
# OPENBLAS_CORETYPE is exported for both peers as the nearest core it knows (SkylakeX with
# AVX-512, Zen or Haswell with AVX2), unless the caller set it. Needs BUILD and PY.

# The core OpenBLAS picks in a process (it prints it at load with OPENBLAS_VERBOSE=2).
blas_core() { OPENBLAS_VERBOSE=2 "$@" 2>&1 >/dev/null | sed -n 's/.*Core: *\([A-Za-z0-9_]*\).*/\1/p' | head -n 1; }
probe_torch() { blas_core $PY -c 'import torch; a = torch.ones(64, 64); a @ a'; }
probe_gemm() { [ -x "$BUILD/bench/bench_gemm" ] && blas_core "$BUILD/bench/bench_gemm" --kernel; }
nearest_core() { # the OpenBLAS core nearest this CPU, from its flags
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    case " $flags " in
    *" avx512f "*) echo SkylakeX ;;
    *" avx2 "*) if grep -q -m1 AuthenticAMD /proc/cpuinfo; then echo Zen; else echo Haswell; fi ;;
    *) echo "" ;;
    esac
}

peers_header() { # $1: a bench binary that prints nabla's gemm kernel with --kernel
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nabla: gemm kernel $("$1" --kernel) (NABLA_KERNEL=generic|avx2|avx512 chooses)"
    core=$(probe_torch)
    [ -n "$core" ] || core=$(probe_gemm)
    note="as OpenBLAS detected it"
    if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
        note="OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE was set by the caller"
    elif [ "$core" = Prescott ] && [ -n "$(nearest_core)" ]; then
        export OPENBLAS_CORETYPE=$(nearest_core)
        note="OpenBLAS fell back to Prescott on this CPU; OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE for both peers"
        core=$(probe_torch)
        [ -n "$core" ] || core=$(probe_gemm)
    fi
    echo "peers: PyTorch's OpenBLAS core ${core:-unknown}, bench_gemm's OpenBLAS core $(probe_gemm || echo n/a) ($note)"
}
