/* source.c — model files: reading, model text handed in through FeOptions.text, includes
 * spliced in place (relative to the including file, then -I folders; cycles are errors;
 * a file already included is not included again). */
#include "frontend/elab.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- sources and includes ------------------------------------------------------------ */

/* Files are the same when their canonical paths are. */
Source *find_source(FeCompile *c, const char *path) {
    char *real = realpath(path, NULL);
    Source *found = NULL;
    for (int i = 0; i < c->nsources && !found; i++)
        if (strcmp(c->sources[i]->name, path) == 0 || (real && c->sources[i]->real && !strcmp(c->sources[i]->real, real)))
            found = c->sources[i];
    free(real);
    return found;
}

bool fe_source_loaded(FeCompile *c, const char *path) { return find_source(c, path) != NULL; }

/* A NUL byte in the text: reported where it is (the lexer would stop there). */
static bool nul_byte(FeCompile *c, const Source *src) {
    const char *nul = memchr(src->text, 0, src->len);
    if (!nul) return false;
    Loc at = {src, 1, 1};
    for (const char *p = src->text; p < nul; p++) {
        if (*p == '\n') at.line++, at.col = 1;
        else at.col++;
    }
    diag_error(&c->diag, at, "unexpected byte 0x00 (NUL): a model file is text");
    return true;
}

Source *fe_load_source(FeCompile *c, const char *path, Loc from) {
    Source *old = find_source(c, path);
    if (old) return old;
    if (c->nsources == (int)(sizeof c->sources / sizeof c->sources[0])) {
        diag_error(&c->diag, from, "too many included files");
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        if (f) fclose(f);
        diag_error(&c->diag, from, "cannot read model file '%s'", path);
        return NULL;
    }
    if (st.st_size > (16 << 20)) {
        fclose(f);
        diag_error(&c->diag, from, "model file '%s' is larger than 16 MiB", path);
        return NULL;
    }
    char *text = arena_alloc(&c->arena, (size_t)st.st_size + 1);
    size_t n = fread(text, 1, (size_t)st.st_size, f);
    fclose(f);
    text[n] = 0;
    Source *src = arena_alloc(&c->arena, sizeof *src);
    src->name = arena_strdup(&c->arena, path);
    src->text = text;
    src->len = n;
    if (nul_byte(c, src)) return NULL;
    char *real = realpath(path, NULL);
    if (real) {
        src->real = arena_strdup(&c->arena, real);
        free(real);
    }
    src->index = c->nsources;
    c->sources[c->nsources++] = src;
    return src;
}

/* Path of an included file: relative to the including file, then the -I folders. */
static char *include_path(Elab *E, const Node *inc, const char **dirs) {
    char *dup = arena_strdup(E->A, inc->loc.src->name);
    const char *dir = dirname(dup);
    char *p = inc->name[0] == '/' ? arena_strdup(E->A, inc->name) : arena_printf(E->A, "%s/%s", dir, inc->name);
    if (access(p, R_OK) == 0 || !dirs) return p;
    for (int i = 0; dirs[i]; i++) {
        char *q = arena_printf(E->A, "%s/%s", dirs[i], inc->name);
        if (access(q, R_OK) == 0) return q;
    }
    return p;
}

/* Parse `src` and splice the statements of its includes in place. `stack` holds the
 * files being included, for cycle detection. Records in src->includes every file it
 * includes, through others too, even those spliced earlier. Returns the flat statement
 * list. */
Node *load_flat(Elab *E, Source *src, const Source **stack, int depth) {
    Node *stmts = fe_parse_source(E->A, E->D, src);
    Node head = {0}, *tail = &head;
    for (Node *n = stmts, *next; n; n = next) {
        next = n->next;
        n->next = NULL;
        if (n->kind != N_INCLUDE) {
            tail = tail->next = n;
            continue;
        }
        const char *path = include_path(E, n, E->include_dirs);
        bool seen = fe_source_loaded(E->c, path);
        Source *inc = fe_load_source(E->c, path, n->loc);
        if (!inc) continue;
        bool cycle = inc == src;
        for (int i = 0; i < depth; i++) cycle |= stack[i] == inc;
        if (cycle || depth >= 15) {
            diag_error(E->D, n->loc, "include cycle: '%s' is already being included", inc->name);
            continue;
        }
        if (!seen) {   /* a file included before is not spliced again */
            stack[depth] = src;
            tail->next = load_flat(E, inc, stack, depth + 1);
            while (tail->next) tail = tail->next;
        }
        src->includes |= (uint64_t)1 << inc->index | inc->includes;
    }
    return head.next;
}


Source *source_from_text(FeCompile *c, const FeOptions *opt) {
    Source *src = arena_alloc(&c->arena, sizeof *src);
    src->name = arena_strdup(&c->arena, opt->path);
    src->text = arena_strndup(&c->arena, opt->text, opt->text_len);
    src->len = opt->text_len;
    if (nul_byte(c, src)) return NULL;
    src->index = c->nsources;
    c->sources[c->nsources++] = src;
    return src;
}
