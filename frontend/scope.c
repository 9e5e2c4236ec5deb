/* scope.c — scopes of compile-time names, and the nearest-name suggestions of messages. */
#include "frontend/elab.h"

#include <string.h>

/* ---- scopes ------------------------------------------------------------------------ */

Scope *scope_new(Elab *E, Scope *parent) {
    Scope *s = arena_alloc(E->A, sizeof *s);
    s->parent = parent;
    return s;
}

Binding *scope_find(Scope *s, const char *name) {
    for (; s; s = s->parent)
        for (Binding *b = s->head; b; b = b->next)
            if (strcmp(b->name, name) == 0) return b;
    return NULL;
}

void scope_bind(Elab *E, Scope *s, const char *name, Value *v, Loc loc) {
    for (Binding *b = s->head; b; b = b->next)
        if (strcmp(b->name, name) == 0) {
            b->val = v;
            b->loc = loc;
            return;
        }
    Binding *b = arena_alloc(E->A, sizeof *b);
    b->name = name;
    b->val = v;
    b->loc = loc;
    b->next = s->head;
    s->head = b;
}

int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

int suggest_limit(const char *name) {
    size_t len = strlen(name);
    return len <= 1 ? 0 : len <= 3 ? 2 : 3;
}

const char *scope_suggest(Scope *s, const char *name) {
    const char *best = NULL;
    int bestd = suggest_limit(name);
    for (; s; s = s->parent)
        for (Binding *b = s->head; b; b = b->next) {
            int d = edit_distance(name, b->name);
            if (d < bestd) {
                bestd = d;
                best = b->name;
            }
        }
    return best;
}
