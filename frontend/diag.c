/* diag.c — the one reporter of model-file diagnostics.
 *
 *   models/x.gptc:12:9: error: unknown name 'dimm'
 *      12 |     x = dimm * 2
 *         |         ^
 */
#include "frontend/frontend.h"

#include <string.h>

/* The text of line `line` of src: pointer and length (without the newline). */
static const char *line_text(const Source *src, int line, int *len) {
    const char *p = src->text, *end = src->text + src->len;
    for (int l = 1; l < line && p < end; p++)
        if (*p == '\n') l++;
    const char *q = p;
    while (q < end && *q != '\n') q++;
    *len = (int)(q - p);
    return p;
}

static void print_caret(FILE *out, Loc loc) {
    int len;
    const char *text = line_text(loc.src, loc.line, &len);
    fprintf(out, "%5d | ", loc.line);
    for (int i = 0; i < len; i++) fputc(text[i] == '\t' || text[i] == '\r' || text[i] == 0 ? ' ' : text[i], out);
    fprintf(out, "\n      | ");
    for (int i = 1; i < loc.col && i <= len; i++) fputc(' ', out);
    fprintf(out, "^\n");
}

void diag_vreport(Diag *d, Loc loc, const char *kind, const char *fmt, va_list ap) {
    FILE *out = d->out ? d->out : stderr;
    if (loc.src) fprintf(out, "%s:%d:%d: %s: ", loc.src->name, loc.line, loc.col, kind);
    else fprintf(out, "gptc: %s: ", kind);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    if (loc.src && loc.line > 0) print_caret(out, loc);
}

/* An error at the same place with the same text (a loop body, an inlined fn) is
 * reported once. */
static bool seen_before(Diag *d, Loc loc, const char *fmt, va_list ap) {
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = msg; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h ^= (uint64_t)(uintptr_t)loc.src * 31 + (uint64_t)loc.line * 4099 + (uint64_t)loc.col;
    for (int i = 0; i < d->nseen && i < DIAG_SEEN; i++)
        if (d->seen[i] == h) return true;
    d->seen[d->nseen++ % DIAG_SEEN] = h;
    return false;
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
    int max = d->max_errors ? d->max_errors : 50;
    va_list ap0;
    va_start(ap0, fmt);
    bool dup = seen_before(d, loc, fmt, ap0);
    va_end(ap0);
    if (dup) {
        d->nerrors++;
        return;
    }
    d->nerrors++;
    if (d->nerrors > max) {
        if (d->nerrors == max + 1) fprintf(d->out ? d->out : stderr, "gptc: too many errors, stopping\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, loc, "error", fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...) {
    d->nwarnings++;
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, loc, "warning", fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...) {
    int max = d->max_errors ? d->max_errors : 50;
    if (d->nerrors > max) return;
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, loc, "note", fmt, ap);
    va_end(ap);
}
