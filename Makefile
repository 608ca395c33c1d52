# nabla: a plain Makefile.
#
#   make            static library build/libnabla.a, the examples and build/vae
#   make run        train the VAE on the digits shipped in data/ and write pictures to out/
#   make test       unit tests (float and double builds)
#   make test-san   the same tests under AddressSanitizer + UndefinedBehaviorSanitizer (CI runs it)
#   make fuzz       libFuzzer harnesses (clang): replay the seeds in fuzz/corpus, then fuzz a while
#                   plus the checked examples and docs, and the API page check
#   make bench      speed and memory against the peers (PyTorch, OpenBLAS)
#   make bench-ops  each op's forward + backward against PyTorch's (bench/ops.sh)
#   make install PREFIX=/usr/local   headers, libnabla.a, libnabla_io.a and nabla.pc (pkg-config)
#
# Variables: OMP=0 builds without OpenMP; DOUBLE=1 makes the element type double;
# SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer; MPI=1 builds everything with
# mpicc, plus dist/ (build/mpi/libnabla_dist.a), examples/mpi/ and an MPI build/mpi/vae
# (`make MPI=1 test-mpi` runs the multi-rank tests). Each variant has its own build directory,
# so they never mix objects.

CC     ?= cc
OMP    ?= 1
DOUBLE ?= 0
SAN    ?= 0
MPI    ?= 0
NPROC  := $(shell nproc 2>/dev/null || echo 2)
# The default builds for any CPU of the architecture (baseline x86-64 here); on x86-64 the gemm
# kernels for AVX2 and AVX-512 are compiled next to it and chosen at run time. ARCH=-march=native
# tunes everything else for the building machine too (and runs only on machines like it).
ARCH   ?=
OPT    ?= -O3

BUILD := build
ifeq ($(DOUBLE),1)
BUILD := $(BUILD)/double
CPPFLAGS += -DNB_DOUBLE
endif
ifeq ($(SAN),1)
BUILD := $(BUILD)/san
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(MPI),1)
BUILD := $(BUILD)/mpi
CC := mpicc
endif
ifeq ($(OMP),1)
CFLAGS_OMP := -fopenmp
else
BUILD := $(BUILD)/noomp
endif

CFLAGS   ?=
CFLAGS   += -std=c11 -Wall -Wextra -pedantic -Werror $(OPT) $(ARCH) -fno-math-errno -fno-trapping-math -ffp-contract=fast $(CFLAGS_OMP)
CPPFLAGS += -I. -D_POSIX_C_SOURCE=200809L -MMD -MP
LDLIBS   += -lm
LDFLAGS  += $(CFLAGS_OMP)

# The core: C11, libm and (optionally) OpenMP; nothing else.
CORE_SRC := $(wildcard tensor/*.c autograd/*.c nn/*.c models/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libnabla.a

# File formats outside the core (IDX with gzip, PNG): these need zlib.
IO_SRC := $(wildcard io/*.c)
IO_OBJ := $(IO_SRC:%.c=$(BUILD)/obj/%.o)
IOLIB  := $(BUILD)/libnabla_io.a
ZLIB   := -lz

EXAMPLES := $(patsubst examples/%.c,$(BUILD)/%,$(wildcard examples/*.c))
VAE_SRC  := $(wildcard examples/vae/*.c)
VAE_OBJ  := $(VAE_SRC:%.c=$(BUILD)/obj/%.o)
VAE      := $(BUILD)/vae

TEST_SRC := $(wildcard tests/test_*.c)
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_LIB := $(BUILD)/obj/tests/testutil.o
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
# Not intermediates: kept, so an unchanged tree relinks and recompiles nothing.
.SECONDARY: $(TEST_OBJ)

# Data-parallel training over MPI (MPI=1 only): outside the core, which never sees mpi.h.
ifeq ($(MPI),1)
DIST_SRC := $(wildcard dist/*.c)
DIST_OBJ := $(DIST_SRC:%.c=$(BUILD)/obj/%.o)
DISTLIB  := $(BUILD)/libnabla_dist.a
MPI_EXAMPLES := $(patsubst examples/mpi/%.c,$(BUILD)/%,$(wildcard examples/mpi/*.c))
MPI_TESTS    := $(patsubst tests/mpi/%.c,$(BUILD)/tests/mpi/%,$(wildcard tests/mpi/test_*.c))
$(VAE_OBJ): CPPFLAGS += -DNB_MPI
endif

.PHONY: all lib run test tests-built check-api fuzz fuzz-build check-run test-mpi test-float test-double test-san bench bench-deps bench-ops bench-scaling deps data-fashion clean format install install-check
all: $(LIB) $(IOLIB) $(EXAMPLES) $(VAE) $(DISTLIB) $(MPI_EXAMPLES) $(MPI_TESTS)

lib: $(LIB)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The library's own calls skip the call-site macros meant for user code (tensor/base.h).
$(CORE_OBJ): CPPFLAGS += -DNB_INTERNAL

# x86-64 (or x86): each vector gemm kernel is its own file, compiled for its instruction set;
# tensor/gemm.c calls one only on a CPU that runs it. Elsewhere those files compile to nothing.
ifneq ($(filter x86_64% i386% i486% i586% i686%,$(shell $(CC) -dumpmachine)),)
$(BUILD)/obj/tensor/gemm.o: CPPFLAGS += -DNB_X86_KERNELS
$(BUILD)/obj/tensor/gemm_avx2.o: CFLAGS += -mavx2 -mfma
$(BUILD)/obj/tensor/gemm_avx512.o: CFLAGS += -mavx512f -mavx2 -mfma
endif

# GCC's -O3 unroll-and-jam pairs the taps of ops_conv.c's narrow-path kernel and then fails to
# vectorize them (scalar code, 2.4x slower); elsewhere it changes nothing measured. Compilers
# without the flag skip it.
NO_JAM := $(shell $(CC) -fno-loop-unroll-and-jam -E -x c /dev/null >/dev/null 2>&1 && echo -fno-loop-unroll-and-jam)
$(BUILD)/obj/autograd/ops_conv.o: CFLAGS += $(NO_JAM)

$(LIB): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(IOLIB): $(IO_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/%: examples/%.c $(LIB) $(IOLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(IOLIB) $(LIB) $(ZLIB) $(LDLIBS)

$(BUILD)/obj/examples/vae/main.o: CPPFLAGS += -DNB_VERSION=\"$(VERSION)\"

$(VAE): $(VAE_OBJ) $(LIB) $(IOLIB) $(DISTLIB)
	$(CC) $(LDFLAGS) $(VAE_OBJ) -o $@ $(DISTLIB) $(IOLIB) $(LIB) $(ZLIB) $(LDLIBS)

$(DISTLIB): $(DIST_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BUILD)/%: examples/mpi/%.c $(DISTLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(DISTLIB) $(LIB) $(LDLIBS)

$(BUILD)/tests/mpi/%: tests/mpi/%.c $(DISTLIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(DISTLIB) $(LIB) $(LDLIBS)

# The multi-rank tests (tests/mpi/run.sh: mpirun -np 1, 2, 3 on this machine).
test-mpi:
	@sh tools/need.sh ompi-c bin:mpicc bin:mpirun
	@$(MAKE) --no-print-directory MPI=1 -j2 all
	@BUILD=$(if $(filter 1,$(MPI)),$(BUILD),$(BUILD)/mpi) sh tests/mpi/run.sh

# ---- tests (Check) ----------------------------------------------------------------------------
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null)

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(CHECK_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_LIB) $(LIB) $(IOLIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< $(TEST_EXTRA) $(TEST_LIB) -o $@ $(IOLIB) $(LIB) $(ZLIB) $(CHECK_LIBS) $(LDLIBS)

# Unit tests of the vae command's own functions link its objects (all but main).
VAE_PARTS := $(filter-out %/main.o,$(VAE_OBJ))
$(BUILD)/tests/test_vae_units: $(VAE_PARTS)
$(BUILD)/tests/test_vae_units: TEST_EXTRA = $(VAE_PARTS)

# Sees st_save's fsync and rename calls: the library's references go to the test's wrappers.
$(BUILD)/tests/test_st_fsync: LDFLAGS += -Wl,--wrap=fsync -Wl,--wrap=rename

deps:
	@sh tools/need.sh check zlib

# Examples (and the tutorial's samples) that check their own results: each exits non-zero
# when its numbers are wrong, and check-run runs them all.
CHECKED_EXAMPLES := grad_basics spirals vae_custom micrograd linreg xor custom_op denoise char_rnn \
                    tut_scalar tut_vjp tut_views tut_vae_loss
# Trainings that check an accuracy (about 10 s of CPU each); the sanitizers make them ~8x slower,
# so SAN=1 builds them without running them.
CHECKED_TRAININGS := cnn_digits vae_mog
ifneq ($(SAN),1)
CHECKED_EXAMPLES += $(CHECKED_TRAININGS)
endif

# Build every test binary of this variant, then run them all; fail if any fails.
check-run: $(TESTS) $(VAE) $(EXAMPLES)
	@fail=0; for t in $(TESTS); do \
	    NABLA_BUILD=$(BUILD) CK_DEFAULT_TIMEOUT=600 $$t || fail=1; done; \
	    for e in $(CHECKED_EXAMPLES); do \
	        out=$$($(BUILD)/$$e 2>&1) || { echo "$$out" | tail -n 20; echo "$$e: its check FAILED"; fail=1; }; done; \
	    sh tools/check_docs.sh $(BUILD) || fail=1; \
	    if [ $$fail = 0 ]; then echo "nabla: all tests in $(BUILD) passed"; \
	    else echo "nabla: FAILED tests in $(BUILD)"; exit 1; fi

# Each variant builds in parallel first, then runs its tests one after another.
test-float: deps
	@$(MAKE) --no-print-directory -j$(NPROC) tests-built
	@$(MAKE) --no-print-directory check-run
test-double: deps
	@$(MAKE) --no-print-directory DOUBLE=1 -j$(NPROC) tests-built
	@$(MAKE) --no-print-directory DOUBLE=1 check-run
test-san: deps
	@$(MAKE) --no-print-directory SAN=1 -j$(NPROC) tests-built
	@$(MAKE) --no-print-directory SAN=1 check-run

tests-built: $(TESTS) $(VAE) $(EXAMPLES)

test: check-api test-float test-double

# docs/API.md lists every public function; fails naming any it lacks or lists in vain.
check-api:
	@sh tools/check_api.sh

# ---- fuzzing (libFuzzer, clang) ---------------------------------------------------------------
# One harness per reader of outside bytes: fuzz/fuzz_<name>.c with seeds in fuzz/corpus/<name>/.
# make fuzz replays every seed, then fuzzes each harness FUZZ_SECONDS; new inputs go to
# build/fuzz/corpus/<name>/ and a crash to build/fuzz/crash-<name>-* (make it a regression test).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FUZZ_DIR     := build/fuzz
FUZZ_FLAGS   := -g -O1 -std=c11 -I. -D_POSIX_C_SOURCE=200809L -MMD -MP -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_SRC     := $(CORE_SRC) $(IO_SRC) $(filter-out examples/vae/main.c,$(VAE_SRC))
FUZZ_OBJ     := $(FUZZ_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZERS      := $(patsubst fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard fuzz/fuzz_*.c))
.SECONDARY: $(FUZZ_OBJ)

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(if $(filter $<,$(CORE_SRC)),-DNB_INTERNAL) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJ) -o $@ $(ZLIB) -lm

fuzz-build: deps
	@command -v $(FUZZ_CC) >/dev/null || { echo "nabla: make fuzz needs clang (apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory -j$(NPROC) $(FUZZERS)

fuzz: fuzz-build
	@for f in $(FUZZERS); do n=$${f##*/fuzz_}; log=$(FUZZ_DIR)/$$n.log; \
	    mkdir -p $(FUZZ_DIR)/corpus/$$n; \
	    $$f -close_fd_mask=3 -runs=0 fuzz/corpus/$$n >$$log 2>&1 || { tail -n 40 $$log; exit 1; }; \
	    echo "fuzz: $$n: replayed fuzz/corpus/$$n: $$(tail -n 1 $$log)"; \
	    $$f -close_fd_mask=3 -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/crash-$$n- \
	        $(FUZZ_DIR)/corpus/$$n fuzz/corpus/$$n >$$log 2>&1 || { tail -n 40 $$log; exit 1; }; \
	    echo "fuzz: $$n: $(FUZZ_SECONDS) s: $$(grep -E '^#[0-9]+' $$log | tail -n 1)"; done

# ---- benchmarks (peers: PyTorch from python3-torch, OpenBLAS, Fashion-MNIST) -------------------
BENCH_DEBS := python3-torch python3-numpy libopenblas-dev dataset-fashion-mnist

$(BUILD)/bench/bench_vae: bench/bench_vae.c bench/timing.h $(LIB) $(IOLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(IOLIB) $(LIB) $(ZLIB) $(LDLIBS)

$(BUILD)/bench/bench_conv: bench/bench_conv.c bench/timing.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(LIB) $(LDLIBS)

$(BUILD)/bench/bench_ops: bench/bench_ops.c bench/timing.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(LIB) $(LDLIBS)

$(BUILD)/bench/bench_gemm: bench/bench_gemm.c bench/timing.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $$(pkg-config --cflags openblas) $< -o $@ $(LDFLAGS) $(LIB) \
	    $$(pkg-config --libs openblas) $(LDLIBS)

$(BUILD)/bench/bench_ew: bench/bench_ew.c bench/timing.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< -o $@ $(LDFLAGS) $(LIB) $(LDLIBS)

bench-deps:
	@missing=""; for p in $(BENCH_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then echo "bench: installing$$missing"; \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1 || \
	        { apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null 2>&1; } || \
	        echo "bench: could not install$$missing; those peers are skipped"; \
	    else echo "bench: missing$$missing (sudo apt-get install$$missing); those peers are skipped"; fi; fi

bench: deps bench-deps
	@$(MAKE) --no-print-directory $(BUILD)/bench/bench_vae $(BUILD)/bench/bench_conv $(BUILD)/bench/bench_ops
	@if pkg-config --exists openblas; then $(MAKE) --no-print-directory $(BUILD)/bench/bench_gemm; fi
	@BUILD=$(BUILD) bash bench/run.sh

# Each op's forward + backward against PyTorch's, alone (bench/ops.sh: ROUNDS, THREADS, REPS).
bench-ops: bench-deps $(BUILD)/bench/bench_ops
	@BUILD=$(BUILD) bash bench/ops.sh

bench-scaling: deps bench-deps
	@$(MAKE) --no-print-directory $(BUILD)/bench/bench_vae
	@BUILD=$(BUILD) bash bench/scaling.sh

# ---- the main job -----------------------------------------------------------------------------
run: deps
	@$(MAKE) --no-print-directory -j$(NPROC) $(VAE)
	$(VAE) train --epochs 30 --out out

data-fashion:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
	  { [ "$$(id -u)" = 0 ] && apt-get install -y -q dataset-fashion-mnist; } || \
	  { echo "nabla: run 'sudo apt-get install dataset-fashion-mnist'"; exit 1; }

# ---- install ----------------------------------------------------------------------------------
# The headers keep the tree's layout under PREFIX/include/nabla, next to the umbrella nabla.h, so
# their own #include "tensor/tensor.h" lines resolve with -I$(PREFIX)/include/nabla. nabla.pc
# carries the flags the library was built with that a program must share: -DNB_DOUBLE for a
# DOUBLE=1 build, -fopenmp for an OpenMP one.
PREFIX    ?= /usr/local
VERSION   := 0.1.0
HEADERS   := $(filter-out %_impl.h,$(wildcard tensor/*.h autograd/*.h nn/*.h models/*.h io/*.h)) # *_impl.h: private
PC_CFLAGS := -I$${includedir}/nabla$(if $(filter 1,$(DOUBLE)), -DNB_DOUBLE)$(if $(CFLAGS_OMP), $(CFLAGS_OMP))
PC_LIBS   := -L$${libdir} -lnabla_io -lnabla $(ZLIB) -lm$(if $(CFLAGS_OMP), $(CFLAGS_OMP))

install: $(LIB) $(IOLIB)
	@set -e; inc=$(DESTDIR)$(PREFIX)/include/nabla; lib=$(DESTDIR)$(PREFIX)/lib; \
	for h in nabla.h $(HEADERS); do mkdir -p $$inc/$$(dirname $$h); install -m 644 $$h $$inc/$$h; done; \
	mkdir -p $$lib/pkgconfig; install -m 644 $(LIB) $(IOLIB) $$lib/; \
	printf '%s\n' 'prefix=$(PREFIX)' 'includedir=$${prefix}/include' 'libdir=$${prefix}/lib' '' \
	    'Name: nabla' 'Description: reverse-mode autodiff tensors in C11, and the VAE' \
	    'Version: $(VERSION)' 'Cflags: $(PC_CFLAGS)' 'Libs: $(PC_LIBS)' > $$lib/pkgconfig/nabla.pc; \
	echo "nabla: installed into $(PREFIX) (build with: cc prog.c \$$(pkg-config --cflags --libs nabla))"

# Installs into a temporary PREFIX, then builds and runs, outside the tree and against that copy,
# examples/grad_basics.c and the README's one-file program (CI runs this).
install-check:
	@bash tools/install_check.sh

clean:
	rm -rf build

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

-include $(shell find build -name '*.d' 2>/dev/null)
