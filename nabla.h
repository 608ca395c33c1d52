/* nabla.h: the whole core in one include: tensors, autograd, layers, losses, optimizers,
 * checkpoints, data iteration and the VAE family.
 *
 *   #include <nabla.h>      // after `make install PREFIX=...`:
 *   // cc prog.c $(pkg-config --cflags --libs nabla)
 *
 * Installed, the headers keep the repository's layout under PREFIX/include/nabla (tensor/,
 * autograd/, nn/, models/, io/), and pkg-config's Cflags put that directory on the include path,
 * so `#include "nn/layers.h"` works as it does in the tree. The file formats outside the core
 * (io/idx.h, io/png.h, io/chart.h; they need zlib, which pkg-config's Libs link) are included
 * one by one. A program built against a DOUBLE=1 install gets -DNB_DOUBLE from pkg-config. */
#ifndef NABLA_H
#define NABLA_H

#include "tensor/base.h"
#include "tensor/gemm.h"
#include "tensor/kernels.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"

#include "nn/checkpoint.h"
#include "nn/data.h"
#include "nn/dist.h"
#include "nn/init.h"
#include "nn/json.h"
#include "nn/layers.h"
#include "nn/loss.h"
#include "nn/module.h"
#include "nn/optim.h"
#include "nn/params.h"
#include "nn/safetensors.h"

#include "models/vae.h"

#endif
