#!/usr/bin/env bash
# Prepares .gpu/ (ignored through .git/info/exclude) with what a lent GPU machine may lack,
# for tools/gpu-check.sh run there with `carry: [".gpu"]` (docs/gpu-check.md):
#   .gpu/gptc             a release build of gptc (make build/gptc, then a copy), and beside
#                         it gptc-nvrtc, the process it compiles CUDA modules in
#   .gpu/lib.tar.xz       the shared libraries gptc links that are not glibc's or gcc's
#                         (ldd: libopenblas.so.0, libgfortran.so.5, libquadmath.so.0), the
#                         real files, plus fallback/libgomp.so.1; xz-compressed because
#                         OpenBLAS alone is 36 MB and the whole travelling tree (tests/golden
#                         is 45 MB of it) must stay under 64 MiB; gpu-check.sh unpacks it
#   .gpu/gen/             flex/bison output, .gpu/include/ cblas.h: to build gptc there
#                         without flex, bison or OpenBLAS's headers
#   .gpu/data/brown/      the Brown-corpus token shards of the main job (made if missing)
#   .gpu/SOURCES.sha256   a hash of the sources .gpu/gptc was built from
#   .gpu/MANIFEST         what was bundled, from which commit, when
# Prints the bundle's size and the size of everything a device call would send.
#   tools/gpu-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
G=.gpu
MAX_BUNDLE_MB=60
LIMIT_MIB=64

# the sources gptc is built from, hashed the same way by gpu-check.sh (no git needed there)
source_hash() {
    find base formats ir frontend step codegen runtime trainer study cli . -maxdepth 1 -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.l' -o -name '*.y' -o -name '*.def' -o -name Makefile \) \
        2>/dev/null | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# 1. ignore .gpu/
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || { echo '/.gpu/' >>"$exclude"; echo "added /.gpu/ to $exclude"; }

# 2. a release build of gptc
echo "== build (make build/gptc)"
make -j"$(nproc)" build/gptc
[ -x build/gptc ] || { echo "gpu-bundle: build/gptc was not built" >&2; exit 1; }

new=$G.new
rm -rf "$new"
mkdir -p "$new/gen" "$new/include" "$new/data/brown"
cp build/gptc build/gptc-nvrtc "$new/"
source_hash >"$new/SOURCES.sha256"

# 3. the shared libraries: every ldd entry outside glibc and gcc's runtime, as real files
echo "== shared libraries"
ldd build/gptc | grep -q 'not found' && { ldd build/gptc; echo "gpu-bundle: build/gptc has unresolved libraries" >&2; exit 1; }
libs=$(mktemp -d); trap 'rm -rf "$libs"' EXIT
mkdir -p "$libs/fallback"
base_re='^(linux-vdso|linux-gate|ld-linux.*|libc|libm|libdl|libpthread|librt|libutil|libresolv|libmvec|libgcc_s|libgomp|libstdc\+\+|libatomic)\.so'
ldd build/gptc | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
    if [[ $name =~ $base_re ]]; then continue; fi
    cp -L "$path" "$libs/$name"
    echo "  $name  <- $(readlink -f "$path")  ($(mib "$(stat -c %s "$libs/$name")"))"
done
# libgomp is gcc's, but a GPU image without gcc may lack it: unpacked aside, used only if needed
gomp=$(ldd build/gptc | awk '$1 == "libgomp.so.1" { print $3 }')
if [ -n "$gomp" ]; then cp -L "$gomp" "$libs/fallback/libgomp.so.1"; echo "  fallback/libgomp.so.1  <- $(readlink -f "$gomp")"; fi
sum=$( (cd "$libs" && find . -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)
if [ -f "$G/lib.tar.xz" ] && [ "$(cat "$G/lib.sha256" 2>/dev/null)" = "$sum" ]; then
    cp "$G/lib.tar.xz" "$new/lib.tar.xz"        # same libraries: skip the 25 s of xz
else
    echo "  compressing (xz)…"
    tar -C "$libs" -cf - . | xz -T0 -6 >"$new/lib.tar.xz"
fi
echo "$sum" >"$new/lib.sha256"

# 4. flex/bison output and OpenBLAS's C headers, for a build on the GPU machine
cp build/gen/lexer.c build/gen/lexer.h build/gen/parser.c build/gen/parser.h "$new/gen/"
cc -M -x c - <<<'#include <cblas.h>' | grep -oE '/[^ ]*/(cblas|openblas_config)\.h' |
    while read -r h; do cp -L "$h" "$new/include/"; done

# 5. the Brown-corpus shards (as tools/main-job.sh makes them)
echo "== data (data/brown)"
if ls data/brown/*train*.bin >/dev/null 2>&1; then echo "data/brown exists"; else build/gptc data brown -o data/brown; fi
cp data/brown/*.bin "$new/data/brown/"

cat >"$new/MANIFEST" <<EOF
gptc bundle for tools/gpu-check.sh
made: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(ldd --version | head -1)
commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (with uncommitted changes)')
sources sha256: $(cat "$new/SOURCES.sha256")
gptc needs glibc: $(objdump -T build/gptc 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
$(cd "$new" && find . -type f ! -name MANIFEST | LC_ALL=C sort | xargs ls -l | awk '{ printf "%10d %s\n", $5, $9 }')
EOF
rm -rf "$G"
mv "$new" "$G"

# 6. sizes
bundle=$(du -sb "$G" | cut -f1)
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
total=$((bundle + tree))
echo
echo "bundle: $G $(mib "$bundle") (must stay under $MAX_BUNDLE_MB MiB)"
echo "travelling: working tree $(mib "$tree") + bundle = $(mib "$total") (device limit $LIMIT_MIB MiB)"
if [ "$bundle" -gt $((MAX_BUNDLE_MB * 1048576)) ]; then echo "gpu-bundle: the bundle is over $MAX_BUNDLE_MB MiB" >&2; exit 1; fi
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then echo "gpu-bundle: tree + bundle is over the $LIMIT_MIB MiB a device call may send" >&2; exit 1; fi
echo "run there: bash tools/gpu-check.sh   (carry: [\".gpu\"], timeout_s 360; docs/gpu-check.md)"
