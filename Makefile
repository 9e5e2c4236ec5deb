# gptc — one Makefile for the whole tree.
#
#   make            build/gptc (optimised, with debug info), gptc-nvrtc and the CUDA
#                   emulator's library next to it, the test binaries and the CUDA stand-in
#   make run        the main job (tools/main-job.sh): build build/gptc, check every variant
#                   with every preset, prepare the Brown corpus, train x02 at the tiny preset
#                   on the CPU and show its validation losses
#   make test       the whole test suite: builds what it runs (make asan, make fuzz, side by
#                   side), then tests/run.sh runs it under AddressSanitizer + UBSan
#   make asan       build-asan/gptc, the test binaries and the stand-in with ASan + UBSan
#   make fuzz       build-fuzz/fuzz_frontend (libFuzzer, clang; the library's front end only)
#   make clean
#
# Sources are picked up by folder: every base/ formats/ ir/ frontend/ step/ codegen/ runtime/
# trainer/ study/ *.c goes into the static library libgptc.a; cli/*.c is the command line;
# tests/test_*.c are test binaries linked against the library. Generated flex/bison sources live in $(B)/gen.

B        ?= build
CC       ?= cc
OPT      ?= -O2
SAN      ?=
CFLAGS   ?= $(OPT) -g
WARN      = -Wall -Wextra -Werror -Wno-unused-parameter -fopenmp
CPPFLAGS  = -std=c11 -D_GNU_SOURCE -I. -I$(B)/gen -MMD -MP
LDLIBS    = -fopenmp -lopenblas -lm -lpthread -ldl
FLEX     ?= flex
BISON    ?= bison
JOBS     ?= $(shell nproc)

STAGES    = base formats ir frontend step codegen runtime trainer study
SRCS      = $(foreach s,$(STAGES),$(wildcard $(s)/*.c))
GEN_SRCS  = $(B)/gen/lexer.c $(B)/gen/parser.c
OBJS      = $(SRCS:%.c=$(B)/%.o) $(GEN_SRCS:$(B)/gen/%.c=$(B)/gen/%.o)
TEST_SRCS = $(wildcard tests/test_*.c)
TEST_BINS = $(TEST_SRCS:tests/%.c=$(B)/tests/%)

.PHONY: all run test asan fuzz clean
all: $(B)/gptc $(B)/gptc-nvrtc $(TEST_BINS) $(B)/tests/libcudamock.so $(B)/libgptc-cudaemu.so $(B)/tests/libgptc-cudaemu-san.so

$(B)/gen/parser.c $(B)/gen/parser.h &: frontend/parser.y
	@mkdir -p $(B)/gen
	$(BISON) -Wall -Werror --defines=$(B)/gen/parser.h -o $(B)/gen/parser.c $<

$(B)/gen/lexer.c $(B)/gen/lexer.h &: frontend/lexer.l $(B)/gen/parser.h
	@mkdir -p $(B)/gen
	$(FLEX) --header-file=$(B)/gen/lexer.h -o $(B)/gen/lexer.c $<

# Generated code is compiled with the same warnings, minus the ones flex cannot avoid.
$(B)/gen/%.o: $(B)/gen/%.c
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) -Wno-sign-compare -Wno-unused-function -c $< -o $@

$(B)/%.o: %.c | $(B)/gen/parser.h $(B)/gen/lexer.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) -c $< -o $@

$(B)/libgptc.a: $(OBJS)
	rm -f $@ && ar rcs $@ $^

CLI_OBJS  = $(patsubst %.c,$(B)/%.o,$(filter-out cli/nvrtc_main.c,$(wildcard cli/*.c)))

# gptc compiles CUDA modules in gptc-nvrtc (below), so building gptc builds it too
$(B)/gptc: $(CLI_OBJS) $(B)/libgptc.a | $(B)/gptc-nvrtc
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(LDLIBS)

$(B)/tests/%: tests/%.c tests/test.h $(B)/libgptc.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) $< $(B)/libgptc.a -o $@ $(LDLIBS)

# gptc-nvrtc (cli/nvrtc_main.c): the process gptc compiles CUDA modules in, next to gptc.
# It is built like the emulator (EMU_SAN, EMU_OPT below): without sanitizers in build-asan,
# where NVRTC's allocations through AddressSanitizer's allocator would take 2-3x as long.
NVRTC_SRCS = cli/nvrtc_main.c codegen/compile.c $(wildcard base/*.c)
NVRTC_OBJS = $(NVRTC_SRCS:%.c=$(B)/nvrtc/%.o)
$(B)/nvrtc/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(EMU_OPT) -g $(EMU_SAN) $(WARN) -c $< -o $@
$(B)/gptc-nvrtc: $(NVRTC_OBJS)
	$(CC) $(EMU_OPT) -g $(EMU_SAN) $^ -o $@ -fopenmp -ldl

# The CUDA emulator (GPTC_CUDA_EMULATE=1): a shared library that gptc loads in place of
# libcuda, NVRTC, cuBLASLt and NCCL; it sits next to gptc. Its API alone is exported. The
# suite's gptc (build-asan) loads one built without sanitizers (EMU_SAN, EMU_OPT: the
# kernels it runs make every access a call into it, four times slower under ASan); the
# sanitized one, $(B)/tests/libgptc-cudaemu-san.so, is what test_cuda_emu loads.
EMU_SAN  ?= $(SAN)
EMU_OPT  ?= $(OPT)
EMU_SRCS  = $(wildcard emu/*.c)
EMU_OBJS  = $(EMU_SRCS:%.c=$(B)/emu/%.pic.o) $(B)/emu/prelude.pic.o
EMU_SOBJS = $(EMU_SRCS:%.c=$(B)/emu-san/%.pic.o) $(B)/emu/prelude.pic.o
$(B)/emu/emu/%.pic.o: emu/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(EMU_OPT) -g $(EMU_SAN) $(WARN) -fPIC -fvisibility=hidden -c $< -o $@
$(B)/emu-san/emu/%.pic.o: emu/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) -fPIC -fvisibility=hidden -c $< -o $@
$(B)/emu/prelude.pic.o: emu/prelude.S emu/prelude.cuh
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@
$(B)/libgptc-cudaemu.so: $(EMU_OBJS)
	$(CC) $(EMU_OPT) -g $(EMU_SAN) -shared $^ -o $@ -lpthread -ldl -lrt
$(B)/tests/libgptc-cudaemu-san.so: $(EMU_SOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -shared $^ -o $@ -lpthread -ldl -lrt

# the emulator's shared-memory collectives, tested on their own (emu/ is not in libgptc.a)
$(B)/tests/test_emu_comm: tests/test_emu_comm.c tests/test.h emu/comm.c emu/comm.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) tests/test_emu_comm.c emu/comm.c -o $@ -lpthread -lrt

# the differential fuzzer: the model generator is a source file of its own
$(B)/tests/test_diff_fuzz: tests/test_diff_fuzz.c tests/fuzz_gen.c tests/fuzz_gen.h $(B)/libgptc.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN) $(WARN) tests/test_diff_fuzz.c tests/fuzz_gen.c $(B)/libgptc.a -o $@ $(LDLIBS)

# the recording stand-in for the CUDA driver and cuBLASLt (tests/sh/cuda_mock.sh)
$(B)/tests/libcudamock.so: tests/cuda_mock.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -shared -fPIC $< -o $@

asan:
	$(MAKE) B=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	    EMU_SAN= EMU_OPT=-O2

# the fuzz target calls the front end only: its library holds the stages that needs
fuzz:
	$(MAKE) B=build-fuzz CC=clang OPT=-O1 SAN="-fsanitize=fuzzer-no-link,address,undefined" \
	    STAGES="base ir frontend" build-fuzz/libgptc.a
	clang -std=c11 -D_GNU_SOURCE -I. -Ibuild-fuzz/gen -O1 -g -fsanitize=fuzzer,address,undefined -fopenmp \
	    tests/fuzz_frontend.c build-fuzz/libgptc.a -o build-fuzz/fuzz_frontend $(LDLIBS)

# The main job (README): build gptc, then tools/main-job.sh.
run:
	tools/deps.sh
	$(MAKE) $(B)/gptc
	GPTC=$(B)/gptc tools/main-job.sh

# The suite runs build-asan and build-fuzz only; the two trees build at once, on every core.
test:
	tools/deps.sh
	$(MAKE) -j$(JOBS) asan fuzz
	tests/run.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(NVRTC_OBJS:.o=.d) $(EMU_OBJS:.o=.d) $(EMU_SOBJS:.o=.d)
