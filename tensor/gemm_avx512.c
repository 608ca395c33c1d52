/* tensor/gemm_avx512.c: the gemm kernel for AVX-512 (14 x 32 float tiles). On x86-64 the
 * Makefile compiles this file alone with -mavx512f, and tensor/gemm.c calls it only on a CPU
 * (and OS) with AVX-512F; elsewhere it is empty. */
#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define GEMM_ISA_AVX512 1
#define GEMM_KERNEL     nb_gemm_avx512
#include "tensor/gemm_body.inc"
#else
typedef int nb_gemm_avx512_not_built; /* ISO C wants a declaration in every file */
#endif
