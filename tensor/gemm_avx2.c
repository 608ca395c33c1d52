/* tensor/gemm_avx2.c: the gemm kernel for AVX2 with FMA (6 x 16 float tiles). On x86-64 the
 * Makefile compiles this file alone with -mavx2 -mfma, and tensor/gemm.c calls it only on a
 * CPU that has both; elsewhere it is empty. */
#if defined(__AVX2__) && defined(__FMA__)
#define GEMM_ISA_AVX2 1
#define GEMM_KERNEL   nb_gemm_avx2
#include "tensor/gemm_body.inc"
#else
typedef int nb_gemm_avx2_not_built; /* ISO C wants a declaration in every file */
#endif
