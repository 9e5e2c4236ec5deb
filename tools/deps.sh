#!/usr/bin/env bash
# Installs what building and testing gptc needs on a Debian machine, when it is missing.
set -e
need=()
command -v flex  >/dev/null || need+=(flex)
command -v bison >/dev/null || need+=(bison)
command -v cc    >/dev/null || need+=(gcc)
command -v c++   >/dev/null || need+=(g++)       # the CUDA emulator compiles kernels for the host with it
command -v clang >/dev/null || need+=(clang)
command -v make  >/dev/null || need+=(make)
command -v node  >/dev/null || need+=(nodejs)
command -v npm   >/dev/null || need+=(npm)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)   # gptc report draws its figures with it
[ -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ] \
    || ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 \
    || need+=(libclang-rt-dev)
[ -e /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h ] || [ -e /usr/include/openblas/cblas.h ] \
    || dpkg -s libopenblas-dev >/dev/null 2>&1 || need+=(libopenblas-dev)
# Open MPI for multi-process training (mpirun; gptc dlopens libmpi.so.40, no headers needed)
{ command -v mpirun >/dev/null && ls /usr/lib/*/libmpi.so.40 >/dev/null 2>&1; } || need+=(openmpi-bin)
if [ ${#need[@]} -gt 0 ]; then
    echo "deps: installing ${need[*]}"
    SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
