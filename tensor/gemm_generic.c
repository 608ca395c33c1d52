/* tensor/gemm_generic.c: the portable gemm kernel (plain C, 4 x 8 tiles), compiled with the
 * library's own flags. It runs where no vector kernel fits: another architecture, an x86-64
 * without AVX2, or NABLA_KERNEL=generic (tensor/gemm.c). */
#define GEMM_KERNEL nb_gemm_generic
#include "tensor/gemm_body.inc"
