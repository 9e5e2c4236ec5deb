/* fuzz_frontend.c — libFuzzer target: any bytes as a model file must give either a clean
 * compile or located errors, never a crash, a hang or a leak (ASan + UBSan build).
 * Built by `make fuzz`; tests/sh/fuzz.sh runs it for a bounded time on a seed corpus of
 * the models and tests/bad. The file is named models/fuzz.gptc, so `include "gpt2m.gptc"`
 * reaches the real model. */
#include <stdint.h>
#include <stdio.h>

#include "frontend/frontend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    FeCompile c;
    FeOptions o = {.path = "models/fuzz.gptc", .text = (const char *)data, .text_len = size};
    int rc = fe_compile(&c, &o, sink);
    if ((rc != 0) != (c.diag.nerrors != 0)) __builtin_trap();   /* status and count must agree */
    fe_free(&c);
    return 0;
}
