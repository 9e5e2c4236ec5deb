/* ast.c — the arena every compilation allocates from, and AST nodes: allocation (the
 * grammar's actions in parser.y fill in the children), list length, statement names. */
#include "frontend/frontend.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

struct ArenaBlock {
    ArenaBlock *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

void *arena_alloc(Arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    ArenaBlock *b = a->head;
    if (!b || b->used + n > b->cap) {
        size_t cap = n > 65536 ? n : 65536;
        b = xmalloc(sizeof *b + cap);
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void arena_free(Arena *a) {
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

Node *ast_new(Arena *a, NodeKind kind, Loc loc) {
    Node *n = arena_alloc(a, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    return n;
}

int ast_count(const Node *list) {
    int n = 0;
    for (; list; list = list->next) n++;
    return n;
}

const char *ast_kind_name(NodeKind k) {
    switch (k) {
    case N_INCLUDE: return "include";
    case N_CONFIG: return "config";
    case N_PRESET: return "preset";
    case N_SET: return "set";
    case N_LET: return "let";
    case N_PARAM: return "param";
    case N_INPUT: return "input";
    case N_OPTIM: return "optim";
    case N_SCHEDULE: return "schedule";
    case N_LOG: return "log";
    case N_PROBE: return "probe";
    case N_FN: return "fn";
    case N_OVERRIDE: return "override";
    case N_MODEL: return "model";
    case N_FOR: return "for";
    case N_IF: return "if";
    case N_ASSIGN: return "assignment";
    case N_RETURN: return "return";
    default: return "expression";
    }
}
