/* nvrtc_main.c — gptc-nvrtc, the process in which gptc runs NVRTC (codegen/compile.c says
 * why). Built next to gptc, without sanitizers even in build-asan. */
#include "codegen/codegen.h"

int main(int argc, char **argv) { return cg_nvrtc_main(argc, argv); }
