/* elab.c — from parsed files to a checked program: includes, config and presets, name
 * resolution, compile-time evaluation (loops, conditions, inlined functions) and the
 * forward graph with every shape and dtype checked.
 *
 * Phases (fe_compile): load + include → config (defaults, `set`, preset, --set) →
 * top-level declarations in order → the model body → unused-name warnings. */
#include "frontend/elab.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void exec_list(Elab *E, const Node *list, Scope *s);

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

static int edit_distance(const char *a, const char *b) {
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

const char *scope_suggest(Scope *s, const char *name) {
    const char *best = NULL;
    size_t len = strlen(name);
    int bestd = len <= 1 ? 0 : len <= 3 ? 2 : 3;   /* suggest at distance < bestd */
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

/* ---- sources and includes ------------------------------------------------------------ */

/* Files are the same when their canonical paths are. */
static Source *find_source(FeCompile *c, const char *path) {
    char *real = realpath(path, NULL);
    Source *found = NULL;
    for (int i = 0; i < c->nsources && !found; i++)
        if (strcmp(c->sources[i]->name, path) == 0 || (real && c->sources[i]->real && !strcmp(c->sources[i]->real, real)))
            found = c->sources[i];
    free(real);
    return found;
}

bool fe_source_loaded(FeCompile *c, const char *path) { return find_source(c, path) != NULL; }

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
    if (memchr(text, 0, n)) {
        diag_error(&c->diag, from, "model file '%s' contains a NUL byte", path);
        return NULL;
    }
    Source *src = arena_alloc(&c->arena, sizeof *src);
    src->name = arena_strdup(&c->arena, path);
    char *real = realpath(path, NULL);
    if (real) {
        src->real = arena_strdup(&c->arena, real);
        free(real);
    }
    src->text = text;
    src->len = n;
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
 * files being included, for cycle detection. Returns the flat statement list. */
static Node *load_flat(Elab *E, const Source *src, const Source **stack, int depth) {
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
        if (seen) continue;   /* included before: its declarations are already there */
        stack[depth] = src;
        Node *sub = load_flat(E, inc, stack, depth + 1);
        tail->next = sub;
        while (tail->next) tail = tail->next;
    }
    return head.next;
}

/* ---- config, presets and overrides ---------------------------------------------------- */

typedef struct {
    const char *name;
    const Node *expr;        /* default expression */
    const Node *override;    /* from `set` or the preset; NULL if none */
    const ConfigOverride *cli;
    Loc loc;
} ConfigSlot;

static ConfigSlot *find_slot(ConfigSlot *slots, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(slots[i].name, name) == 0) return &slots[i];
    return NULL;
}

static const char *suggest_slot(ConfigSlot *slots, int n, const char *name) {
    const char *best = NULL;
    int bestd = 3;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(name, slots[i].name);
        if (d < bestd) { bestd = d; best = slots[i].name; }
    }
    return best;
}

static void unknown_config(Elab *E, ConfigSlot *slots, int n, Loc loc, const char *name) {
    const char *s = suggest_slot(slots, n, name);
    if (s) diag_error(E->D, loc, "unknown config name '%s'; did you mean '%s'?", name, s);
    else diag_error(E->D, loc, "unknown config name '%s'", name);
}

/* Collect config entries in order; `set` and preset entries become overrides. */
static int collect_config(Elab *E, Node *stmts, ConfigSlot *slots, int max) {
    int n = 0;
    for (Node *st = stmts; st; st = st->next) {
        if (st->kind != N_CONFIG) continue;
        for (Node *e = st->list; e; e = e->next) {
            if (e->kind != N_ASSIGN || e->a->kind != N_NAME) {
                diag_error(E->D, e->loc, "a config entry is NAME = EXPRESSION");
                continue;
            }
            ConfigSlot *old = find_slot(slots, n, e->a->name);
            if (old) {
                diag_error(E->D, e->a->loc, "config '%s' is defined twice; use 'set %s = …' to change it",
                           e->a->name, e->a->name);
                diag_note(E->D, old->loc, "first defined here");
                continue;
            }
            if (n == max) {
                diag_error(E->D, e->loc, "too many config entries");
                return n;
            }
            slots[n++] = (ConfigSlot){.name = e->a->name, .expr = e->b, .loc = e->a->loc};
        }
    }
    return n;
}

static void apply_overrides(Elab *E, Node *stmts, ConfigSlot *slots, int n, const FeOptions *opt) {
    const Node *preset = NULL;
    for (Node *st = stmts; st; st = st->next) {
        if (st->kind == N_SET) {
            ConfigSlot *s = find_slot(slots, n, st->name);
            if (s) s->override = st->a;
            else unknown_config(E, slots, n, st->b->loc, st->name);
        } else if (st->kind == N_PRESET && opt->preset && strcmp(st->name, opt->preset) == 0) {
            preset = st;
        }
    }
    if (opt->preset && !preset) {
        char names[512] = "";
        for (Node *st = stmts; st; st = st->next)
            if (st->kind == N_PRESET && strlen(names) + strlen(st->name) + 3 < sizeof names)
                strcat(strcat(names, names[0] ? ", " : ""), st->name);
        diag_error(E->D, (Loc){0}, "unknown preset '%s' (this model has: %s)", opt->preset,
                   names[0] ? names : "no presets");
    }
    for (Node *e = preset ? preset->list : NULL; e; e = e->next) {
        if (e->kind != N_ASSIGN || e->a->kind != N_NAME) {
            diag_error(E->D, e->loc, "a preset entry is NAME = EXPRESSION");
            continue;
        }
        ConfigSlot *s = find_slot(slots, n, e->a->name);
        if (s) s->override = e->b;
        else unknown_config(E, slots, n, e->a->loc, e->a->name);
    }
    /* check every preset's names, not only the chosen one */
    for (Node *st = stmts; st; st = st->next)
        if (st->kind == N_PRESET && st != preset)
            for (Node *e = st->list; e; e = e->next)
                if (e->kind == N_ASSIGN && e->a->kind == N_NAME && !find_slot(slots, n, e->a->name))
                    unknown_config(E, slots, n, e->a->loc, e->a->name);
    for (int i = 0; i < opt->nsets; i++) {
        ConfigSlot *s = find_slot(slots, n, opt->sets[i].name);
        if (s) s->cli = &opt->sets[i];
        else {
            const char *sug = suggest_slot(slots, n, opt->sets[i].name);
            diag_error(E->D, (Loc){0}, "--set %s: the model has no config named '%s'%s%s%s",
                       opt->sets[i].name, opt->sets[i].name, sug ? "; did you mean '" : "",
                       sug ? sug : "", sug ? "'?" : "");
        }
    }
}

static void eval_config(Elab *E, Node *stmts, const FeOptions *opt) {
    ConfigSlot *slots = arena_alloc(E->A, sizeof(ConfigSlot) * 512);
    int n = collect_config(E, stmts, slots, 512);
    apply_overrides(E, stmts, slots, n, opt);
    E->P->config = arena_alloc(E->A, sizeof(ConfigEntry) * (size_t)(n ? n : 1));
    int saved = E->context;
    E->context = CTX_CONFIG;
    for (int i = 0; i < n; i++) {
        ConfigSlot *s = &slots[i];
        Value *v;
        if (s->cli) v = s->cli->is_int ? v_int(E, (int64_t)s->cli->value) : v_float(E, s->cli->value);
        else v = eval(E, s->override ? s->override : s->expr, E->global);
        if (!v) continue;
        if (v->kind == V_BOOL) v = v_int(E, v->i);
        if (!v_is_num(v)) {
            diag_error(E->D, (s->override ? s->override : s->expr)->loc,
                       "config '%s' must be a number, got %s", s->name, v_describe(E, v));
            continue;
        }
        scope_bind(E, E->global, s->name, v, s->loc);
        E->P->config[E->P->nconfig++] = (ConfigEntry){s->name, v_num(v), v->kind == V_INT, s->loc};
    }
    E->context = saved;
}

/* ---- parameter names and types --------------------------------------------------------- */

static const char *path_name_at(Elab *E, const Node *n, Scope *s);

/* NAME, PATH.NAME or PATH[INT] → "blocks.3.attn.qkvo"; NULL after an error. */
static const char *path_name(Elab *E, const Node *n, Scope *s) {
    if (E->eval_depth >= MAX_EVAL_DEPTH) {
        diag_error(E->D, n->loc, "name nested more than %d deep", MAX_EVAL_DEPTH);
        return NULL;
    }
    E->eval_depth++;
    const char *r = path_name_at(E, n, s);
    E->eval_depth--;
    return r;
}

static const char *path_name_at(Elab *E, const Node *n, Scope *s) {
    switch (n->kind) {
    case N_NAME: return n->name;
    case N_MEMBER: {
        const char *a = path_name(E, n->a, s);
        return a ? arena_printf(E->A, "%s.%s", a, n->name) : NULL;
    }
    case N_INDEX: {
        const char *a = path_name(E, n->a, s);
        if (!a) return NULL;
        if (ast_count(n->list) != 1 || n->list->kind == N_SLICE) {
            diag_error(E->D, n->loc, "a name path takes one integer index, as in blocks[i]");
            return NULL;
        }
        int64_t i;
        if (!v_to_int(E, eval(E, n->list, s), n->list->loc, "the index", &i)) return NULL;
        if (i < 0) {
            diag_error(E->D, n->list->loc, "a name path index must not be negative, got %lld", (long long)i);
            return NULL;
        }
        return arena_printf(E->A, "%s.%lld", a, (long long)i);
    }
    default:
        diag_error(E->D, n->loc, "expected a name such as lm_head, embed[k] or blocks[i].mlp.fc");
        return NULL;
    }
}

static ParamDecl *find_param(Program *P, const char *name) {
    for (int i = 0; i < P->nparams; i++)
        if (strcmp(P->params[i].name, name) == 0) return &P->params[i];
    return NULL;
}

static bool is_family(Program *P, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < P->nparams; i++)
        if (strncmp(P->params[i].name, prefix, n) == 0 && P->params[i].name[n] == '.') return true;
    return false;
}

/* Resolve a (partial) parameter path to its tensor or family value. */
static Value *resolve_path(Elab *E, const char *name, Loc loc, bool report) {
    ParamDecl *p = find_param(E->P, name);
    if (p) {
        if (E->context == CTX_MODEL || E->context == CTX_FN) p->used = true;
        return v_tensor(E, p->node);
    }
    if (is_family(E->P, name)) {
        Value *v = v_new(E, V_FAMILY);
        v->s = name;
        return v;
    }
    if (report) diag_error(E->D, loc, "no parameter '%s'", name);
    return NULL;
}

static bool dtype_by_name(const char *s, IrDtype *out) {
    static const struct { const char *name; IrDtype t; } tab[] = {
        {"f32", IR_F32}, {"f64", IR_F64}, {"bf16", IR_BF16}, {"i32", IR_I32}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) { *out = tab[i].t; return true; }
    return false;
}

/* DTYPE[D0, D1, …] → dtype and shape; every dim a positive integer. */
static bool eval_type(Elab *E, const Node *n, Scope *s, IrDtype *dt, int *ndim, int64_t *shape) {
    if (n->kind != N_INDEX || n->a->kind != N_NAME || !dtype_by_name(n->a->name, dt)) {
        diag_error(E->D, n->loc, "expected a tensor type such as f32[dim] or bf16[vocab, dim]");
        return false;
    }
    *ndim = 0;
    for (const Node *d = n->list; d; d = d->next) {
        if (*ndim == IR_MAX_DIMS) {
            diag_error(E->D, d->loc, "a tensor has at most %d dimensions", IR_MAX_DIMS);
            return false;
        }
        int64_t v;
        if (d->kind == N_SLICE || !v_to_int(E, eval(E, d, s), d->loc, "a dimension", &v)) {
            if (d->kind == N_SLICE) diag_error(E->D, d->loc, "a dimension must be an integer");
            return false;
        }
        if (v <= 0) {
            diag_error(E->D, d->loc, "a dimension must be positive, got %lld", (long long)v);
            return false;
        }
        shape[(*ndim)++] = v;
    }
    return shape_check_numel(E, *ndim, shape, n->loc);
}

/* ---- expressions ----------------------------------------------------------------------- */

void graph_at(Elab *E, Loc loc) {
    E->g->cur_file = loc.src ? loc.src->name : NULL;
    E->g->cur_line = loc.line;
}

IrNode *sched_node(Elab *E, const char *name) {
    for (int i = 0; i < E->nsched_nodes; i++)
        if (strcmp(E->sched_names[i], name) == 0) return E->sched_nodes[i];
    IrNode *n = ir_leaf(E->g, IR_SCALAR, name, IR_F32, 0, NULL);
    if (E->nsched_nodes < 64) {
        E->sched_names[E->nsched_nodes] = name;
        E->sched_nodes[E->nsched_nodes++] = n;
    }
    return n;
}

IrNode *as_tensor(Elab *E, Value *v, Loc loc, const char *what) {
    if (!v) return NULL;
    if (v->kind == V_TENSOR) return v->t;
    if (v_is_num(v)) return ir_const(E->g, v_num(v));
    if (v->kind == V_SCHED) {
        if (E->context != CTX_MODEL && E->context != CTX_FN) {
            diag_error(E->D, loc, "schedule values are only known inside fn and model");
            return NULL;
        }
        return sched_node(E, v->s);
    }
    diag_error(E->D, loc, "%s must be a tensor or a number, got %s", what, v_describe(E, v));
    return NULL;
}

/* The root of a parameter name ("embed" of "embed.0") close to `name`, or NULL. */
static const char *suggest_param(Elab *E, const char *name) {
    if (strlen(name) <= 3) return NULL;
    for (int i = 0; i < E->P->nparams; i++) {
        const char *full = E->P->params[i].name, *dot = strchr(full, '.');
        char *root = arena_strndup(E->A, full, dot ? (size_t)(dot - full) : strlen(full));
        if (edit_distance(name, root) <= 2) return root;
    }
    return NULL;
}

static Value *eval_name(Elab *E, const Node *n, Scope *s) {
    Binding *b = scope_find(s, n->name);
    if (b) {
        b->used = true;
        return b->val->kind == V_NONE ? NULL : b->val;   /* NONE: its definition failed */
    }
    Value *v = resolve_path(E, n->name, n->loc, false);
    if (v) return v;
    int bi = builtin_lookup(n->name);
    if (bi >= 0) {
        v = v_new(E, V_BUILTIN);
        v->i = bi;
        return v;
    }
    for (int i = 0; i < E->nfailed; i++) {
        size_t len = strlen(n->name);
        if (strncmp(E->failed[i], n->name, len) == 0 && (E->failed[i][len] == 0 || E->failed[i][len] == '.'))
            return NULL;   /* a parameter whose declaration failed (reported there) */
    }
    if (strcmp(n->name, "step") == 0 && E->context == CTX_TOP) {
        diag_error(E->D, n->loc, "'step' is only known in schedule and optim expressions");
        return NULL;
    }
    const char *sug = scope_suggest(s, n->name);
    if (!sug) sug = suggest_param(E, n->name);
    if (sug) diag_error(E->D, n->loc, "unknown name '%s'; did you mean '%s'?", n->name, sug);
    else diag_error(E->D, n->loc, "unknown name '%s'", n->name);
    return NULL;
}

static Value *eval_member(Elab *E, const Node *n, Scope *s) {
    Value *a = eval(E, n->a, s);
    if (!a) return NULL;
    if (a->kind != V_FAMILY) {
        diag_error(E->D, n->loc, "'.%s': only parameter families have members, this is a %s", n->name,
                   v_describe(E, a));
        return NULL;
    }
    return resolve_path(E, arena_printf(E->A, "%s.%s", a->s, n->name), n->loc, true);
}

static Value *eval_index(Elab *E, const Node *n, Scope *s) {
    Value *a = eval(E, n->a, s);
    if (!a) return NULL;
    int nidx = ast_count(n->list);
    if (a->kind == V_TENSOR) return t_index(E, a, n, s);
    if (nidx != 1 || n->list->kind == N_SLICE) {
        diag_error(E->D, n->loc, "a %s takes exactly one index", v_kind_name(a));
        return NULL;
    }
    Value *k = eval(E, n->list, s);
    if (!k) return NULL;
    switch (a->kind) {
    case V_FAMILY: {
        int64_t i;
        if (!v_to_int(E, k, n->list->loc, "a parameter family index", &i)) return NULL;
        return resolve_path(E, arena_printf(E->A, "%s.%lld", a->s, (long long)i), n->loc, true);
    }
    case V_LIST: {
        int64_t i;
        if (!v_to_int(E, k, n->list->loc, "a list index", &i)) return NULL;
        if (i < 0) i += a->n;
        if (i < 0 || i >= a->n) {
            diag_error(E->D, n->list->loc, "index %lld is out of range for a list of %d", (long long)i, a->n);
            return NULL;
        }
        return a->items[i];
    }
    case V_MAP: {
        Value *v = v_map_get(a, k);
        if (!v) diag_error(E->D, n->list->loc, "key %s is not in the map", v_describe(E, k));
        return v;
    }
    default:
        diag_error(E->D, n->loc, "cannot index a %s", v_describe(E, a));
        return NULL;
    }
}

static bool count_iteration(Elab *E, Loc loc) {
    if (++E->iterations <= MAX_ITERATIONS) return true;
    if (E->iterations == MAX_ITERATIONS + 1)
        diag_error(E->D, loc, "more than %d compile-time loop iterations", MAX_ITERATIONS);
    return false;
}

/* The values a `for` or comprehension runs over: 0..n-1, a list's items, a map's keys. */
static Value **iteration_values(Elab *E, int op, const Node *bound, Scope *s, int *count) {
    Value *b = eval(E, bound, s);
    *count = -1;   /* -1: error (reported) */
    if (!b) return NULL;
    if (op == '<') {
        int64_t n;
        if (!v_to_int(E, b, bound->loc, "a loop bound", &n)) return NULL;
        if (n > MAX_ITERATIONS) {
            diag_error(E->D, bound->loc, "loop bound %lld is too large", (long long)n);
            return NULL;
        }
        *count = 0;
        if (n <= 0) return NULL;
        Value **vals = arena_alloc(E->A, sizeof(Value *) * (size_t)n);
        for (int64_t i = 0; i < n; i++) vals[i] = v_int(E, i);
        *count = (int)n;
        return vals;
    }
    if (b->kind == V_LIST) {
        *count = b->n;
        return b->items;
    }
    if (b->kind == V_MAP) {
        Value **vals = arena_alloc(E->A, sizeof(Value *) * (size_t)(b->n ? b->n : 1));
        for (int i = 0; i < b->n; i++) vals[i] = b->items[2 * i];
        *count = b->n;
        return vals;
    }
    diag_error(E->D, bound->loc, "'for … in' needs a list or a map, got %s", v_describe(E, b));
    return NULL;
}

static bool eval_cond(Elab *E, const Node *n, Scope *s, bool *out) {
    Value *v = eval(E, n, s);
    if (!v) return false;
    if (v->kind == V_BOOL) { *out = v->i != 0; return true; }
    if (v->kind == V_TENSOR || v->kind == V_SCHED)
        diag_error(E->D, n->loc, "a condition must be known at compile time, got %s", v_describe(E, v));
    else diag_error(E->D, n->loc, "a condition must be a bool, got %s", v_describe(E, v));
    return false;
}

static Value *eval_comp(Elab *E, const Node *n, Scope *s) {
    int count;
    Value **vals = iteration_values(E, n->op, n->b, s, &count);
    if (count < 0) return NULL;
    Value *list = v_new(E, V_LIST);
    list->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(count ? count : 1));
    for (int i = 0; i < count; i++) {
        if (!count_iteration(E, n->loc)) return NULL;
        Scope *inner = scope_new(E, s);
        scope_bind(E, inner, n->name, vals[i], n->loc);
        bool keep = true;
        if (n->c && !eval_cond(E, n->c, inner, &keep)) return NULL;
        if (!keep) continue;
        Value *v = eval(E, n->a, inner);
        if (!v) return NULL;
        list->items[list->n++] = v;
    }
    return list;
}

static Value *eval_list(Elab *E, const Node *n, Scope *s) {
    Value *list = v_new(E, V_LIST);
    int count = ast_count(n->list);
    list->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(count ? count : 1));
    for (const Node *e = n->list; e; e = e->next) {
        if (e->kind == N_KWARG) {
            diag_error(E->D, e->loc, "'%s = …' is only allowed in a call", e->name);
            return NULL;
        }
        Value *v = eval(E, e, s);
        if (!v) return NULL;
        list->items[list->n++] = v;
    }
    return list;
}

static Value *eval_map(Elab *E, const Node *n, Scope *s) {
    Value *map = v_new(E, V_MAP);
    for (const Node *p = n->list; p; p = p->next) {
        Value *k = eval(E, p->a, s), *v = eval(E, p->b, s);
        if (!k || !v) return NULL;
        if (!v_is_num(k) && k->kind != V_STRING && k->kind != V_BOOL) {
            diag_error(E->D, p->a->loc, "a map key must be a number, a bool or a string, got %s", v_describe(E, k));
            return NULL;
        }
        if (v_map_get(map, k)) {
            diag_error(E->D, p->a->loc, "key %s appears twice in the map", v_describe(E, k));
            return NULL;
        }
        v_map_put(E, map, k, v);
    }
    return map;
}

/* ---- arithmetic ------------------------------------------------------------------------- */

static Value *int_arith(Elab *E, int op, int64_t a, int64_t b, Loc loc) {
    int64_t r = 0;
    bool ovf = false;
    switch (op) {
    case '+': ovf = __builtin_add_overflow(a, b, &r); break;
    case '-': ovf = __builtin_sub_overflow(a, b, &r); break;
    case '*': ovf = __builtin_mul_overflow(a, b, &r); break;
    case T_FLOORDIV:
    case '%':
        if (b == 0) {
            diag_error(E->D, loc, "division by zero");
            return NULL;
        }
        if (a == INT64_MIN && b == -1) { ovf = true; break; }
        r = op == '%' ? a % b : a / b;
        if (op == T_FLOORDIV && (a % b != 0) && ((a < 0) != (b < 0))) r--;
        if (op == '%' && r != 0 && ((r < 0) != (b < 0))) r += b;
        break;
    case T_POW:
        /* b >= 0; |a| >= 2 overflows within 63 steps, so the loop is short */
        if (a == 0 || a == 1) r = b == 0 ? 1 : a;
        else if (a == -1) r = b % 2 ? -1 : 1;
        else {
            r = 1;
            for (int64_t i = 0; i < b && !ovf; i++) ovf = __builtin_mul_overflow(r, a, &r);
        }
        break;
    default: return NULL;
    }
    if (ovf) {
        diag_error(E->D, loc, "integer overflow");
        return NULL;
    }
    return v_int(E, r);
}

static bool is_arith(int op) {
    return op == '+' || op == '-' || op == '*' || op == T_FLOORDIV || op == '%' || op == T_POW;
}

static Value *num_binary(Elab *E, int op, Value *a, Value *b, Loc loc) {
    /* int op int stays an int (except '/' and negative powers); errors return NULL */
    if (a->kind == V_INT && b->kind == V_INT && is_arith(op) && !(op == T_POW && b->i < 0))
        return int_arith(E, op, a->i, b->i, loc);
    double x = v_num(a), y = v_num(b), r;
    switch (op) {
    case '+': r = x + y; break;
    case '-': r = x - y; break;
    case '*': r = x * y; break;
    case '/':
    case T_FLOORDIV:
    case '%':
        if (y == 0) {
            diag_error(E->D, loc, "division by zero");
            return NULL;
        }
        r = op == '/' ? x / y : op == T_FLOORDIV ? floor(x / y) : x - y * floor(x / y);
        break;
    case T_POW: r = pow(x, y); break;
    case T_EQ: return v_bool(E, x == y);
    case T_NE: return v_bool(E, x != y);
    case '<': return v_bool(E, x < y);
    case T_LE: return v_bool(E, x <= y);
    case '>': return v_bool(E, x > y);
    case T_GE: return v_bool(E, x >= y);
    default:
        diag_error(E->D, loc, "this operator does not apply to numbers");
        return NULL;
    }
    if (!isfinite(r)) {
        diag_error(E->D, loc, "the result is not a finite number");
        return NULL;
    }
    return v_float(E, r);
}

static Value *list_binary(Elab *E, int op, Value *a, Value *b, Loc loc) {
    if (op == '+' && b->kind == V_LIST) {
        if ((int64_t)a->n + b->n > MAX_LIST) goto too_long;
        Value *r = v_new(E, V_LIST);
        r->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(a->n + b->n + 1));
        for (int i = 0; i < a->n; i++) r->items[r->n++] = a->items[i];
        for (int i = 0; i < b->n; i++) r->items[r->n++] = b->items[i];
        return r;
    }
    if (op == '*' && b->kind == V_INT) {
        int64_t k = b->i < 0 ? 0 : b->i;
        if (k > MAX_LIST || (int64_t)a->n * k > MAX_LIST) goto too_long;
        Value *r = v_new(E, V_LIST);
        r->items = arena_alloc(E->A, sizeof(Value *) * (size_t)(a->n * k + 1));
        for (int64_t j = 0; j < k; j++)
            for (int i = 0; i < a->n; i++) r->items[r->n++] = a->items[i];
        return r;
    }
    if (op == T_EQ || op == T_NE) return v_bool(E, v_equal(a, b) == (op == T_EQ));
    diag_error(E->D, loc, "this operator does not apply to a list and a %s", v_kind_name(b));
    return NULL;
too_long:
    diag_error(E->D, loc, "list longer than %d elements", MAX_LIST);
    return NULL;
}

static Value *tensor_binary(Elab *E, int op, Value *a, Value *b, const Node *n) {
    IrNode *x = as_tensor(E, a, n->a->loc, "the left operand");
    IrNode *y = as_tensor(E, b, n->b->loc, "the right operand");
    if (!x || !y) return NULL;
    graph_at(E, n->loc);
    if (op == T_POW) {
        if (!v_is_num(b) || v_num(b) != 2 || !ir_dtype_is_float(x->dtype)) {
            diag_error(E->D, n->loc, "only a float tensor can be raised to a power, and only to 2 (use square)");
            return NULL;
        }
        return v_tensor(E, ir_unary(E->g, IR_SQUARE, x));
    }
    if (op == '@') {
        CallArgs ca = {.args = (Value *[]){v_tensor(E, x), v_tensor(E, y)},
                       .locs = (Loc[]){n->a->loc, n->b->loc}, .nargs = 2, .at = n->loc, .name = "@"};
        return builtin_call(E, builtin_lookup("matmul"), &ca);
    }
    if (op != '+' && op != '-' && op != '*' && op != '/') {
        diag_error(E->D, n->loc, "this operator needs values known at compile time, not tensors");
        return NULL;
    }
    IrNode *r = t_binary(E, op, x, y, n->loc);
    return r ? v_tensor(E, r) : NULL;
}

static Value *eval_binary(Elab *E, const Node *n, Scope *s) {
    int op = n->op;
    Value *a = eval(E, n->a, s);
    if (!a && op != T_AND && op != T_OR) {
        eval(E, n->b, s);   /* report its errors too */
        return NULL;
    }
    if (!a) return NULL;
    if (op == T_AND || op == T_OR) {
        if (a->kind != V_BOOL) {
            diag_error(E->D, n->a->loc, "'%s' needs bools, got %s", op == T_AND ? "and" : "or", v_describe(E, a));
            return NULL;
        }
        if ((op == T_AND) != (a->i != 0)) return a;   /* short circuit */
        Value *b = eval(E, n->b, s);
        if (b && b->kind != V_BOOL) {
            diag_error(E->D, n->b->loc, "'%s' needs bools, got %s", op == T_AND ? "and" : "or", v_describe(E, b));
            return NULL;
        }
        return b;
    }
    Value *b = eval(E, n->b, s);
    if (!a || !b) return NULL;
    if (op == T_IN) {
        if (b->kind == V_LIST) {
            for (int i = 0; i < b->n; i++)
                if (v_equal(a, b->items[i])) return v_bool(E, true);
            return v_bool(E, false);
        }
        if (b->kind == V_MAP) return v_bool(E, v_map_get(b, a) != NULL);
        diag_error(E->D, n->b->loc, "'in' needs a list or a map on its right, got %s", v_describe(E, b));
        return NULL;
    }
    if (v_is_num(a) && v_is_num(b)) return num_binary(E, op, a, b, n->loc);
    if (a->kind == V_LIST) return list_binary(E, op, a, b, n->loc);
    if (a->kind == V_STRING && b->kind == V_STRING) {
        if (op == '+') return v_string(E, arena_printf(E->A, "%s%s", a->s, b->s));
        if (op == T_EQ || op == T_NE) return v_bool(E, (strcmp(a->s, b->s) == 0) == (op == T_EQ));
    }
    if (a->kind == V_BOOL && b->kind == V_BOOL && (op == T_EQ || op == T_NE))
        return v_bool(E, (a->i == b->i) == (op == T_EQ));
    bool ta = a->kind == V_TENSOR || a->kind == V_SCHED, tb = b->kind == V_TENSOR || b->kind == V_SCHED;
    if ((ta || v_is_num(a)) && (tb || v_is_num(b))) return tensor_binary(E, op, a, b, n);
    diag_error(E->D, n->loc, "this operator does not apply to %s and %s", v_describe(E, a), v_describe(E, b));
    return NULL;
}

static Value *eval_unary(Elab *E, const Node *n, Scope *s) {
    Value *a = eval(E, n->a, s);
    if (!a) return NULL;
    if (n->op == T_NOT) {
        if (a->kind == V_BOOL) return v_bool(E, !a->i);
        diag_error(E->D, n->loc, "'not' needs a bool, got %s", v_describe(E, a));
        return NULL;
    }
    if (a->kind == V_INT) {
        if (a->i == INT64_MIN) {
            diag_error(E->D, n->loc, "integer overflow");
            return NULL;
        }
        return v_int(E, -a->i);
    }
    if (a->kind == V_FLOAT) return v_float(E, -a->f);
    IrNode *t = as_tensor(E, a, n->a->loc, "the operand of '-'");
    if (!t) return NULL;
    if (!ir_dtype_is_float(t->dtype)) {
        diag_error(E->D, n->loc, "arithmetic needs a float tensor, got %s", v_describe(E, a));
        return NULL;
    }
    graph_at(E, n->loc);
    return v_tensor(E, ir_unary(E->g, IR_NEG, t));
}

/* ---- calls -------------------------------------------------------------------------------- */

Value *call_function(Elab *E, const Value *fnv, Value **args, const Loc *locs, int nargs, Loc at) {
    const Node *fn = fnv->fn;
    int nparams = ast_count(fn->list2);
    if (nargs != nparams) {
        diag_error(E->D, at, "fn '%s' takes %d argument%s, %d given", fn->name, nparams,
                   nparams == 1 ? "" : "s", nargs);
        return NULL;
    }
    if (E->depth >= MAX_INLINE_DEPTH) {
        diag_error(E->D, at, "calls nested more than %d deep (is '%s' recursive?)", MAX_INLINE_DEPTH, fn->name);
        return NULL;
    }
    Scope *local = scope_new(E, fnv->scope);
    int i = 0;
    for (const Node *p = fn->list2; p; p = p->next, i++) scope_bind(E, local, p->name, args[i], locs[i]);
    (void)locs;
    int saved_ctx = E->context;
    Value *saved_ret = E->ret;
    E->context = CTX_FN;
    E->depth++;
    Value *result;
    if (fn->a) {
        result = eval(E, fn->a, local);
    } else {
        E->ret = NULL;
        E->returned = false;
        exec_list(E, fn->list, local);
        result = E->ret;
        if (!E->returned && E->D->nerrors == 0)
            diag_error(E->D, fn->loc, "fn '%s' ends without 'return'", fn->name);
        E->returned = false;
    }
    E->depth--;
    E->context = saved_ctx;
    E->ret = saved_ret;
    return result;
}

static Value *eval_call(Elab *E, const Node *n, Scope *s) {
    Value *callee = eval(E, n->a, s);
    if (!callee) return NULL;
    if (callee->kind != V_FUNC && callee->kind != V_BUILTIN) {
        diag_error(E->D, n->a->loc, "%s is not a function", v_describe(E, callee));
        return NULL;
    }
    int count = ast_count(n->list) + (n->kind == N_GENCALL);
    CallArgs a = {.at = n->loc, .name = callee->kind == V_FUNC ? callee->fn->name : builtin_name((int)callee->i)};
    a.args = arena_alloc(E->A, sizeof(Value *) * (size_t)(count + 1));
    a.locs = arena_alloc(E->A, sizeof(Loc) * (size_t)(count + 1));
    a.kw = arena_alloc(E->A, sizeof(char *) * (size_t)(count + 1));
    a.kwv = arena_alloc(E->A, sizeof(Value *) * (size_t)(count + 1));
    a.kwloc = arena_alloc(E->A, sizeof(Loc) * (size_t)(count + 1));
    a.kw_used = arena_alloc(E->A, sizeof(bool) * (size_t)(count + 1));
    if (n->kind == N_GENCALL) {
        a.args[0] = eval_comp(E, n->b, s);
        a.locs[0] = n->b->loc;
        if (!a.args[0]) return NULL;
        a.nargs = 1;
    }
    bool failed = false;
    for (const Node *e = n->list; e; e = e->next) {
        Value *v = eval(E, e->kind == N_KWARG ? e->a : e, s);
        if (!v) {
            failed = true;   /* go on: the other arguments' errors are reported too */
            continue;
        }
        if (e->kind == N_KWARG) {
            for (int i = 0; i < a.nkw; i++)
                if (strcmp(a.kw[i], e->name) == 0) {
                    diag_error(E->D, e->loc, "argument '%s' is given twice", e->name);
                    return NULL;
                }
            a.kw[a.nkw] = e->name;
            a.kwloc[a.nkw] = e->loc;
            a.kwv[a.nkw++] = v;
        } else {
            if (a.nkw) {
                diag_error(E->D, e->loc, "a positional argument cannot follow a named one");
                return NULL;
            }
            a.locs[a.nargs] = e->loc;
            a.args[a.nargs++] = v;
        }
    }
    if (failed) return NULL;
    if (callee->kind == V_FUNC) {
        if (a.nkw) {
            diag_error(E->D, a.kwloc[0], "fn '%s' takes positional arguments only", callee->fn->name);
            return NULL;
        }
        return call_function(E, callee, a.args, a.locs, a.nargs, n->loc);
    }
    Value *r = builtin_call(E, (int)callee->i, &a);
    for (int i = 0; r && i < a.nkw; i++)
        if (!a.kw_used[i]) {
            diag_error(E->D, a.kwloc[i], "%s() has no argument named '%s'", a.name, a.kw[i]);
            return NULL;
        }
    return r;
}

static Value *eval_node(Elab *E, const Node *n, Scope *s);

/* Every expression passes here: a guard on nesting depth keeps hostile inputs (a file of
 * 1+1+1+… ) from overflowing the C stack. */
Value *eval(Elab *E, const Node *n, Scope *s) {
    if (!n) return NULL;
    if (E->eval_depth >= MAX_EVAL_DEPTH) {
        diag_error(E->D, n->loc, "expression nested more than %d deep", MAX_EVAL_DEPTH);
        return NULL;
    }
    E->eval_depth++;
    Value *v = eval_node(E, n, s);
    E->eval_depth--;
    return v;
}

static Value *eval_node(Elab *E, const Node *n, Scope *s) {
    switch (n->kind) {
    case N_INT: return v_int(E, n->ival);
    case N_FLOAT: return v_float(E, n->fval);
    case N_STRING: return v_string(E, n->name);
    case N_BOOL: return v_bool(E, n->ival != 0);
    case N_NAME: return eval_name(E, n, s);
    case N_MEMBER: return eval_member(E, n, s);
    case N_INDEX: return eval_index(E, n, s);
    case N_CALL:
    case N_GENCALL: return eval_call(E, n, s);
    case N_UNARY: return eval_unary(E, n, s);
    case N_BINARY: return eval_binary(E, n, s);
    case N_COND: {
        bool c;
        if (!eval_cond(E, n->a, s, &c)) return NULL;
        return eval(E, c ? n->b : n->c, s);
    }
    case N_LIST: return eval_list(E, n, s);
    case N_MAP: return eval_map(E, n, s);
    case N_COMP: return eval_comp(E, n, s);
    case N_SLICE: diag_error(E->D, n->loc, "a slice a:b is only allowed inside a tensor index"); return NULL;
    case N_KWARG: diag_error(E->D, n->loc, "'%s = …' is only allowed in a call", n->name); return NULL;
    default: diag_error(E->D, n->loc, "expected an expression"); return NULL;
    }
}

/* ---- declarations -------------------------------------------------------------------------- */

static bool grow(Elab *E, void **arr, int *cap, int n, size_t elem) {
    if (n < *cap) return true;
    int nc = *cap ? 2 * *cap : 32;
    void *p = arena_alloc(E->A, elem * (size_t)nc);
    if (n) memcpy(p, *arr, elem * (size_t)n);
    *arr = p;
    *cap = nc;
    return true;
}

/* init normal(mean, std) | uniform(lo, hi) | zeros() | ones() | constant(v) */
static bool eval_init(Elab *E, const Node *call, Scope *s, const ParamDecl *p, int first_axis, InitSpec *out) {
    static const struct { const char *name; InitKind kind; int nargs; } inits[] = {
        {"normal", INIT_NORMAL, 2}, {"uniform", INIT_UNIFORM, 2}, {"zeros", INIT_ZEROS, 0},
        {"ones", INIT_CONSTANT, 0}, {"constant", INIT_CONSTANT, 1}};
    if (call->kind != N_CALL || call->a->kind != N_NAME) {
        diag_error(E->D, call->loc, "expected an initializer: normal(mean, std), uniform(lo, hi), zeros(), ones() or constant(v)");
        return false;
    }
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(call->a->name, inits[i].name) == 0) k = i;
    if (k < 0) {
        diag_error(E->D, call->a->loc, "unknown initializer '%s' (normal, uniform, zeros, ones, constant)", call->a->name);
        return false;
    }
    if (ast_count(call->list) != inits[k].nargs) {
        diag_error(E->D, call->loc, "%s() takes %d argument%s", inits[k].name, inits[k].nargs, inits[k].nargs == 1 ? "" : "s");
        return false;
    }
    *out = (InitSpec){.kind = inits[k].kind, .slice = -1};
    if (strcmp(inits[k].name, "ones") == 0) {
        out->values = arena_alloc(E->A, sizeof(double));
        out->values[0] = 1;
        out->nvalues = 1;
        return true;
    }
    double nums[2] = {0, 0};
    int i = 0;
    for (const Node *a = call->list; a; a = a->next, i++) {
        if (a->kind == N_KWARG) {
            diag_error(E->D, a->loc, "%s() takes positional arguments", inits[k].name);
            return false;
        }
        Value *v = eval(E, a, s);
        if (!v) return false;
        if (out->kind == INIT_CONSTANT) {
            /* a number, or a list of numbers broadcast over the trailing axis */
            int n = v->kind == V_LIST ? v->n : 1;
            int64_t last = p->ndim > first_axis ? p->shape[p->ndim - 1] : 1;
            if (v->kind == V_LIST && n != last) {
                diag_error(E->D, a->loc, "constant() list has %d values, the last axis has %lld", n, (long long)last);
                return false;
            }
            out->values = arena_alloc(E->A, sizeof(double) * (size_t)n);
            out->nvalues = n;
            for (int j = 0; j < n; j++) {
                Value *x = v->kind == V_LIST ? v->items[j] : v;
                if (!v_is_num(x)) {
                    diag_error(E->D, a->loc, "constant() takes a number or a list of numbers");
                    return false;
                }
                out->values[j] = v_num(x);
            }
            return true;
        }
        if (!v_is_num(v)) {
            diag_error(E->D, a->loc, "%s() takes numbers, got %s", inits[k].name, v_describe(E, v));
            return false;
        }
        nums[i] = v_num(v);
    }
    out->a = nums[0];
    out->b = nums[1];
    if (out->kind == INIT_NORMAL && nums[1] < 0) {
        diag_error(E->D, call->list->next->loc, "normal() needs a standard deviation ≥ 0");
        return false;
    }
    if (out->kind == INIT_UNIFORM && nums[1] < nums[0]) {
        diag_error(E->D, call->loc, "uniform(lo, hi) needs lo ≤ hi");
        return false;
    }
    return true;
}

static bool param_inits(Elab *E, const Node *st, Scope *s, ParamDecl *p) {
    if (!st->c) {
        diag_error(E->D, st->loc, "parameter '%s' has no 'init' clause", p->name);
        return false;
    }
    if (!eval_init(E, st->c, s, p, 0, &p->init[0])) return false;
    p->ninit = 1;
    for (const Node *o = st->list; o; o = o->next) {
        int64_t k;
        if (p->ndim == 0) {
            diag_error(E->D, o->loc, "a scalar parameter has no slices to initialize");
            return false;
        }
        if (!v_to_int(E, eval(E, o->a, s), o->a->loc, "a slice index", &k)) return false;
        if (k < 0 || k >= p->shape[0]) {
            diag_error(E->D, o->a->loc, "slice %lld is out of range: the first axis has %lld", (long long)k,
                       (long long)p->shape[0]);
            return false;
        }
        if (p->ninit == 4) {
            diag_error(E->D, o->loc, "at most 3 slice initializers");
            return false;
        }
        if (!eval_init(E, o->b, s, p, 1, &p->init[p->ninit])) return false;
        p->init[p->ninit++].slice = (int)k;
    }
    return true;
}

static int find_optim(Program *P, const char *name) {
    for (int i = 0; i < P->noptims; i++)
        if (strcmp(P->optims[i].name, name) == 0) return i;
    return -1;
}

/* opt GROUP | opt GROUP(wd_mul = x, lr_mul = y) */
static bool param_optim(Elab *E, const Node *st, Scope *s, ParamDecl *p) {
    const Node *o = st->d;
    if (!o) {
        diag_error(E->D, st->loc, "parameter '%s' has no 'opt' clause", p->name);
        return false;
    }
    const Node *name = o->kind == N_CALL ? o->a : o;
    if (name->kind != N_NAME) {
        diag_error(E->D, o->loc, "expected an optimizer group, as in 'opt muon' or 'opt muon(wd_mul = 2)'");
        return false;
    }
    p->optim = find_optim(E->P, name->name);
    if (p->optim < 0) {
        diag_error(E->D, name->loc, "unknown optimizer group '%s' (declare it with 'optim %s = adam(…)' first)",
                   name->name, name->name);
        return false;
    }
    p->wd_mul = 1;
    p->lr_mul = 1;
    for (const Node *a = o->kind == N_CALL ? o->list : NULL; a; a = a->next) {
        double *dst = a->kind != N_KWARG ? NULL : strcmp(a->name, "wd_mul") == 0 ? &p->wd_mul
                    : strcmp(a->name, "lr_mul") == 0 ? &p->lr_mul : NULL;
        if (!dst) {
            diag_error(E->D, a->loc, "a parameter's optimizer takes wd_mul = … and lr_mul = …");
            return false;
        }
        for (const Node *b = o->list; b != a; b = b->next)
            if (strcmp(b->name, a->name) == 0) {
                diag_error(E->D, a->loc, "'%s' is given twice", a->name);
                return false;
            }
        Value *v = eval(E, a->a, s);
        if (!v) return false;
        if (!v_is_num(v)) {
            diag_error(E->D, a->a->loc, "%s must be a number, got %s", a->name, v_describe(E, v));
            return false;
        }
        *dst = v_num(v);
    }
    return true;
}

static void decl_param(Elab *E, const Node *st, Scope *s) {
    const char *name = path_name(E, st->a, s);
    if (!name) return;
    ParamDecl *old = find_param(E->P, name);
    if (old) {
        diag_error(E->D, st->a->loc, "parameter '%s' is declared twice", name);
        diag_note(E->D, old->loc, "first declared here");
        return;
    }
    if (is_family(E->P, name)) {
        diag_error(E->D, st->a->loc, "'%s' already names a family of parameters (%s.…)", name, name);
        return;
    }
    for (int i = 0; i < E->P->nparams; i++) {
        size_t n = strlen(E->P->params[i].name);
        if (strncmp(name, E->P->params[i].name, n) == 0 && name[n] == '.') {
            diag_error(E->D, st->a->loc, "'%s' would be a member of parameter '%s'", name, E->P->params[i].name);
            return;
        }
    }
    ParamDecl p = {.name = name, .loc = st->a->loc};
    bool ok = eval_type(E, st->b, s, &p.dtype, &p.ndim, p.shape);
    if (ok && p.dtype == IR_I32) {
        diag_error(E->D, st->b->loc, "a parameter must have a float dtype (f32, f64 or bf16)");
        ok = false;
    }
    ok = ok && param_inits(E, st, s, &p);
    ok = ok && param_optim(E, st, s, &p);
    if (!ok) {
        /* uses of it later stay silent: the error above is the one to fix */
        if (E->nfailed < (int)(sizeof E->failed / sizeof E->failed[0])) E->failed[E->nfailed++] = name;
        return;
    }
    graph_at(E, st->loc);
    p.node = ir_leaf(E->g, IR_PARAM, name, p.dtype, p.ndim, p.shape);
    grow(E, (void **)&E->P->params, &E->cap_params, E->P->nparams, sizeof(ParamDecl));
    E->P->params[E->P->nparams++] = p;
}

static void decl_input(Elab *E, const Node *st, Scope *s) {
    IrDtype dt;
    int ndim;
    int64_t shape[IR_MAX_DIMS];
    if (scope_find(E->global, st->name)) {
        diag_error(E->D, st->a->loc, "'%s' is already defined", st->name);
        return;
    }
    if (!eval_type(E, st->b, s, &dt, &ndim, shape)) return;
    graph_at(E, st->loc);
    IrNode *t = ir_leaf(E->g, IR_INPUT, st->name, dt, ndim, shape);
    scope_bind(E, E->global, st->name, v_tensor(E, t), st->a->loc);
}

static const char *adam_keys[] = {"lr", "beta1", "beta2", "eps", NULL};
static const char *muon_keys[] = {"lr", "momentum", "wd", "ns_coeffs", "ns_eps", NULL};

static bool muon_coeffs(Elab *E, const Node *arg, Scope *s, OptimGroup *g) {
    Value *v = eval(E, arg->a, s);
    if (!v) return false;
    bool ok = v->kind == V_LIST && v->n >= 1 && v->n <= 8;
    for (int i = 0; ok && i < v->n; i++) {
        Value *t = v->items[i];
        ok = t->kind == V_LIST && t->n == 3;
        for (int j = 0; ok && j < 3; j++) {
            ok = v_is_num(t->items[j]);
            if (ok) g->ns_coeffs[i][j] = v_num(t->items[j]);
        }
    }
    if (!ok) {
        diag_error(E->D, arg->a->loc, "ns_coeffs is a list of 1 to 8 triples [a, b, c]");
        return false;
    }
    g->n_ns = v->n;
    return true;
}

/* One `key = value` of adam(…)/muon(…); false after reporting an error. */
static bool optim_arg(Elab *E, const Node *call, const Node *a, Scope *s, OptimGroup *g) {
    const char **keys = g->kind == OPT_ADAM ? adam_keys : muon_keys;
    if (a->kind != N_KWARG) {
        diag_error(E->D, a->loc, "%s() takes named arguments, as in lr = 0.3", call->a->name);
        return false;
    }
    bool known = false;
    for (int i = 0; keys[i]; i++) known |= strcmp(keys[i], a->name) == 0;
    if (!known) {
        diag_error(E->D, a->loc, "%s() has no argument '%s'", call->a->name, a->name);
        return false;
    }
    for (const Node *b = call->list; b != a; b = b->next)
        if (b->kind == N_KWARG && strcmp(b->name, a->name) == 0) {
            diag_error(E->D, a->loc, "argument '%s' is given twice", a->name);
            return false;
        }
    if (strcmp(a->name, "ns_coeffs") == 0) return muon_coeffs(E, a, s, g);
    double x;
    if (!sched_eval(E, a->a, s, 0, &x, true)) return false;
    if (!isfinite(x)) {
        diag_error(E->D, a->a->loc, "%s is not a finite number at step 0 (%g)", a->name, x);
        return false;
    }
    if (strcmp(a->name, "ns_eps") == 0) g->ns_eps = x;
    else if (g->nargs < 12) g->args[g->nargs++] = (OptArg){a->name, a->a, s};
    return true;
}

/* optim NAME = adam(lr = …, beta1 = …, …) | muon(lr = …, momentum = …, …). The group is
 * registered even when its arguments have errors, so that its users stay silent. */
static void decl_optim(Elab *E, const Node *st, Scope *s) {
    const Node *call = st->a;
    OptimGroup g = {.name = st->name, .loc = st->b->loc, .ns_eps = 1e-7};
    if (find_optim(E->P, st->name) >= 0) {
        diag_error(E->D, st->b->loc, "optimizer group '%s' is declared twice", st->name);
        return;
    }
    if (call->kind != N_CALL || call->a->kind != N_NAME ||
        (strcmp(call->a->name, "adam") != 0 && strcmp(call->a->name, "muon") != 0)) {
        diag_error(E->D, call->loc, "an optimizer group is adam(lr = …, …) or muon(lr = …, …)");
    } else {
        g.kind = strcmp(call->a->name, "adam") == 0 ? OPT_ADAM : OPT_MUON;
        bool ok = true;
        for (const Node *a = call->list; a; a = a->next) ok &= optim_arg(E, call, a, s, &g);
        bool has_lr = false;
        for (int i = 0; i < g.nargs; i++) has_lr |= strcmp(g.args[i].key, "lr") == 0;
        if (ok && !has_lr) diag_error(E->D, call->loc, "%s() needs lr = …", call->a->name);
        if (ok && g.kind == OPT_MUON && g.n_ns == 0) diag_error(E->D, call->loc, "muon() needs ns_coeffs = [[a, b, c], …]");
    }
    grow(E, (void **)&E->P->optims, &E->cap_optims, E->P->noptims, sizeof(OptimGroup));
    E->P->optims[E->P->noptims++] = g;   /* groups have their own namespace, used by 'opt' */
}

static void decl_schedule(Elab *E, const Node *st, Scope *s) {
    if (scope_find(E->global, st->name) || strcmp(st->name, "step") == 0) {
        diag_error(E->D, st->b->loc, "'%s' is already defined", st->name);
        return;
    }
    double x;
    bool ok = sched_eval(E, st->a, s, 0, &x, true);
    if (ok && !isfinite(x)) {
        diag_error(E->D, st->a->loc, "schedule '%s' is not a finite number at step 0 (%g)", st->name, x);
        ok = false;
    }
    if (!ok) {
        scope_bind(E, E->global, st->name, v_new(E, V_NONE), st->b->loc);   /* later uses stay silent */
        return;
    }
    Value *v = v_new(E, V_SCHED);
    v->sched = st->a;
    v->scope = s;
    v->s = st->name;
    scope_bind(E, E->global, st->name, v, st->b->loc);
    grow(E, (void **)&E->P->schedules, &E->cap_scheds, E->P->nschedules, sizeof(ScheduleDecl));
    E->P->schedules[E->P->nschedules++] = (ScheduleDecl){st->name, st->a, s, st->b->loc};
}

/* "x0{k}_lambdas" with k an integer in scope → "x00_lambdas" */
static const char *interpolate(Elab *E, const Node *name, Scope *s) {
    const char *p = name->name;
    char out[256];
    size_t o = 0;
    while (*p) {
        if (o + 24 >= sizeof out) {
            diag_error(E->D, name->loc, "log name is longer than %zu characters", sizeof out - 24);
            return NULL;
        }
        if (*p != '{') { out[o++] = *p++; continue; }
        const char *end = strchr(p, '}');
        if (!end || end - p > 40) {
            diag_error(E->D, name->loc, "'{' in a log name must enclose a name, as in \"x0{k}_lambdas\"");
            return NULL;
        }
        char *var = arena_strndup(E->A, p + 1, (size_t)(end - p - 1));
        Binding *b = scope_find(s, var);
        if (!b || b->val->kind != V_INT) {
            diag_error(E->D, name->loc, "'{%s}' in a log name must be an integer in scope", var);
            return NULL;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "%lld", (long long)b->val->i);
        p = end + 1;
    }
    out[o] = 0;
    return arena_strdup(E->A, out);
}

/* log NAME = PARAM | PARAM[i] | PARAM[:, j] …: one row of a parameter, read at logging time. */
static void decl_log(Elab *E, const Node *st, Scope *s) {
    const char *name = st->b->kind == N_STRING ? interpolate(E, st->b, s) : st->name;
    if (!name) return;
    for (int i = 0; i < E->P->nlogs; i++)
        if (strcmp(E->P->logs[i].name, name) == 0) {
            diag_error(E->D, st->b->loc, "log '%s' is declared twice", name);
            return;
        }
    const Node *e = st->a, *idx = NULL;
    Value *v;
    if (e->kind == N_INDEX) {
        v = eval(E, e->a, s);
        if (!v) return;
        if (v->kind == V_FAMILY) v = eval(E, e, s);   /* g[0] names a member, not an index */
        else {
            idx = e->list;
            e = e->a;
        }
    } else {
        v = eval(E, e, s);
    }
    if (!v) return;
    if (v->kind != V_TENSOR || v->t->op != IR_PARAM) {
        diag_error(E->D, e->loc, "a log reads a parameter, got %s", v_describe(E, v));
        return;
    }
    const IrNode *t = v->t;
    LogDecl L = {.name = name, .param = t->name, .offset = 0, .stride = 1, .count = ir_numel(t), .loc = st->b->loc};
    if (idx) {
        int64_t stride = ir_numel(t), axis = 0, free_axis = -1;
        for (const Node *a = idx; a; a = a->next, axis++) {
            if (axis >= t->ndim) {
                diag_error(E->D, a->loc, "too many indices for %s", v_describe(E, v));
                return;
            }
            stride /= t->shape[axis];
            if (a->kind == N_SLICE && !a->a && !a->b) {
                if (free_axis >= 0) {
                    diag_error(E->D, a->loc, "a log takes one ':' axis");
                    return;
                }
                free_axis = axis;
                L.stride = stride;
                L.count = t->shape[axis];
                continue;
            }
            int64_t k;
            if (a->kind == N_SLICE || !v_to_int(E, eval(E, a, s), a->loc, "a log index", &k)) {
                if (a->kind == N_SLICE) diag_error(E->D, a->loc, "a log index is an integer or ':'");
                return;
            }
            if (k < 0 || k >= t->shape[axis]) {
                diag_error(E->D, a->loc, "index %lld is out of range for axis %lld of size %lld", (long long)k,
                           (long long)axis, (long long)t->shape[axis]);
                return;
            }
            L.offset += k * stride;
        }
        if (axis != t->ndim || free_axis < 0) {
            diag_error(E->D, st->a->loc, "a log reads a vector: index every axis but one, which is ':'");
            return;
        }
    } else if (t->ndim != 1) {
        diag_error(E->D, st->a->loc, "a log reads a vector; index the parameter, as in lambdas[:, 0]");
        return;
    }
    grow(E, (void **)&E->P->logs, &E->cap_logs, E->P->nlogs, sizeof(LogDecl));
    E->P->logs[E->P->nlogs++] = L;
}

static void stmt_probe(Elab *E, const Node *st, Scope *s) {
    const char *name = path_name(E, st->a, s);
    Value *v = eval(E, st->b, s);
    if (!name || !v) return;
    if (v->kind != V_TENSOR) {
        diag_error(E->D, st->b->loc, "a probe records a tensor, got %s", v_describe(E, v));
        return;
    }
    for (int i = 0; i < E->P->nprobes; i++)
        if (strcmp(E->P->probes[i].name, name) == 0) {
            diag_error(E->D, st->a->loc, "probe '%s' is recorded twice", name);
            return;
        }
    grow(E, (void **)&E->P->probes, &E->cap_probes, E->P->nprobes, sizeof(ProbeDecl));
    E->P->probes[E->P->nprobes++] = (ProbeDecl){name, v->t};
}

/* ---- statements ------------------------------------------------------------------------------ */

static bool only_at_top(Elab *E, const Node *st) {
    if (E->context == CTX_TOP) return true;
    diag_error(E->D, st->loc, "'%s' is only allowed at top level (outside fn and model)", ast_kind_name(st->kind));
    return false;
}

static bool only_in_body(Elab *E, const Node *st) {
    if (E->context == CTX_FN || E->context == CTX_MODEL) return true;
    diag_error(E->D, st->kind == N_ASSIGN ? st->a->loc : st->loc, "%s is only allowed inside fn and model%s", st->kind == N_ASSIGN ? "assignment" :
               st->kind == N_RETURN ? "'return'" : "'probe'",
               st->kind == N_ASSIGN ? "; use 'let NAME = …' for a constant" : "");
    return false;
}

/* Assignment updates the nearest binding of the current fn or model, else binds here. */
static void stmt_assign(Elab *E, const Node *st, Scope *s) {
    Value *v = eval(E, st->b, s);
    const Node *lhs = st->a;
    if (!v && lhs->kind != N_NAME) return;
    if (!v) v = v_new(E, V_NONE);   /* later uses stay silent instead of 'unknown name' */
    if (lhs->kind == N_NAME) {
        for (Scope *sc = s; sc && sc != E->global; sc = sc->parent)
            for (Binding *b = sc->head; b; b = b->next)
                if (strcmp(b->name, lhs->name) == 0) {
                    b->val = v;
                    return;
                }
        scope_bind(E, s, lhs->name, v, lhs->loc);
        return;
    }
    if (lhs->kind == N_INDEX && lhs->a->kind == N_NAME && ast_count(lhs->list) == 1 && lhs->list->kind != N_SLICE) {
        Binding *b = scope_find(s, lhs->a->name);
        bool local = false;
        for (Scope *sc = s; sc && sc != E->global; sc = sc->parent)
            for (Binding *x = sc->head; x; x = x->next) local |= x == b;
        if (b && b->val->kind == V_MAP && !local) {
            diag_error(E->D, lhs->a->loc, "'%s' is a constant defined outside this fn or model; make a local map", lhs->a->name);
            return;
        }
        if (!b || b->val->kind != V_MAP) {
            diag_error(E->D, lhs->a->loc, "'%s[…] = …' needs '%s' to be a map, as in %s = {}", lhs->a->name,
                       lhs->a->name, lhs->a->name);
            return;
        }
        Value *k = eval(E, lhs->list, s);
        if (k) v_map_put(E, b->val, k, v);
        return;
    }
    diag_error(E->D, lhs->loc, "can only assign to NAME or NAME[KEY]");
}

static void stmt_for(Elab *E, const Node *st, Scope *s) {
    int count;
    Value **vals = iteration_values(E, st->op, st->a, s, &count);
    for (int i = 0; i < count && !E->returned; i++) {
        if (!count_iteration(E, st->loc)) return;
        Scope *inner = scope_new(E, s);
        scope_bind(E, inner, st->name, vals[i], st->b->loc);
        exec_list(E, st->list, inner);
    }
}

static void stmt_if(Elab *E, const Node *st, Scope *s) {
    bool c;
    if (!eval_cond(E, st->a, s, &c)) return;
    const Node *body = c ? st->list : st->list2;
    if (body) exec_list(E, body, scope_new(E, s));
}

static void stmt_let(Elab *E, const Node *st, Scope *s) {
    if (!only_at_top(E, st)) return;
    Binding *b = scope_find(s, st->name);
    if (b) {
        diag_error(E->D, st->b->loc, "'%s' is already defined%s", st->name,
                   strcmp(st->name, "T") == 0 ? " (T is the sequence length)" : "");
        if (b->loc.src) diag_note(E->D, b->loc, "defined here");
        return;
    }
    Value *v = eval(E, st->a, s);
    if (v && (v->kind == V_TENSOR || v->kind == V_SCHED)) {
        diag_error(E->D, st->a->loc, "'let' binds a compile-time value, got %s", v_describe(E, v));
        v = NULL;
    }
    scope_bind(E, s, st->name, v ? v : v_new(E, V_NONE), st->b->loc);
}

static void stmt_fn(Elab *E, const Node *st, Scope *s) {
    if (!only_at_top(E, st)) return;
    if (scope_find(s, st->name) || builtin_lookup(st->name) >= 0) {
        diag_error(E->D, st->loc, "'%s' is already defined", st->name);
        return;
    }
    for (const Node *p = st->list2; p; p = p->next)
        for (const Node *q = p->next; q; q = q->next)
            if (strcmp(p->name, q->name) == 0) diag_error(E->D, q->loc, "parameter '%s' appears twice", q->name);
    Value *v = v_new(E, V_FUNC);
    v->fn = st;
    v->scope = s;
    scope_bind(E, s, st->name, v, st->loc);
}

static void exec_stmt(Elab *E, const Node *st, Scope *s) {
    switch (st->kind) {
    case N_CONFIG:
    case N_PRESET:
    case N_SET:
        if (E->context != CTX_TOP || s != E->global)
            diag_error(E->D, st->loc, "'%s' is only allowed at the top level of a file", ast_kind_name(st->kind));
        break;
    case N_INCLUDE: diag_error(E->D, st->loc, "'include' is only allowed at the top level of a file"); break;
    case N_LET: stmt_let(E, st, s); break;
    case N_PARAM: if (only_at_top(E, st)) decl_param(E, st, s); break;
    case N_INPUT: if (only_at_top(E, st)) decl_input(E, st, s); break;
    case N_OPTIM: if (only_at_top(E, st)) decl_optim(E, st, s); break;
    case N_SCHEDULE: if (only_at_top(E, st)) decl_schedule(E, st, s); break;
    case N_LOG: if (only_at_top(E, st)) decl_log(E, st, s); break;
    case N_FN: stmt_fn(E, st, s); break;
    case N_MODEL: if (only_at_top(E, st)) diag_error(E->D, st->loc, "'model' must be at the top level of a file"); break;
    case N_PROBE: if (only_in_body(E, st)) stmt_probe(E, st, s); break;
    case N_ASSIGN: if (only_in_body(E, st)) stmt_assign(E, st, s); break;
    case N_RETURN:
        if (!only_in_body(E, st)) break;
        E->ret = eval(E, st->a, s);
        E->returned = true;
        break;
    case N_FOR: stmt_for(E, st, s); break;
    case N_IF: stmt_if(E, st, s); break;
    default: diag_error(E->D, st->loc, "an expression alone is not a statement"); break;
    }
}

/* False once the program is too big to go on with (reported once). */
static bool within_limits(Elab *E, const Node *st) {
    if (E->g->n <= MAX_NODES && E->P->nparams <= MAX_PARAMS) return E->D->nerrors <= 200;
    if (!E->too_big) diag_error(E->D, st->loc, "the program grows past %d graph nodes or %d parameters", MAX_NODES, MAX_PARAMS);
    E->too_big = true;
    return false;
}

static void exec_list(Elab *E, const Node *list, Scope *s) {
    for (const Node *st = list; st && !E->returned; st = st->next) {
        if (!within_limits(E, st)) return;
        exec_stmt(E, st, s);
    }
}

/* ---- the model and the whole compilation ---------------------------------------------------- */

static void elab_model(Elab *E, const Node *model) {
    Scope *local = scope_new(E, E->global);
    E->context = CTX_MODEL;
    E->returned = false;
    E->ret = NULL;
    exec_list(E, model->list, local);
    E->context = CTX_TOP;
    if (!E->returned) {
        if (E->D->nerrors == 0) diag_error(E->D, model->loc, "model does not return a loss");
        return;
    }
    Value *r = E->ret;
    if (!r) return;
    if (r->kind != V_TENSOR || r->t->ndim != 0 || !ir_dtype_is_float(r->t->dtype)) {
        diag_error(E->D, model->loc, "the model must return the loss, a float scalar tensor; it returns %s",
                   v_describe(E, r));
        return;
    }
    ir_add_output(E->g, r->t);
}

static void warn_unused(Elab *E) {
    for (int i = 0; i < E->P->nparams; i++)
        if (!E->P->params[i].used)
            diag_warning(E->D, E->P->params[i].loc, "parameter '%s' is never used by the model", E->P->params[i].name);
    for (Binding *b = E->global->head; b; b = b->next)
        if (b->val && b->val->kind == V_TENSOR && b->val->t->op == IR_INPUT && !b->used)
            diag_warning(E->D, b->loc, "input '%s' is never used", b->name);
}

static void bind_T(Elab *E, const FeOptions *opt) {
    const char *name = opt->seq_config ? opt->seq_config : "seq_len";
    const ConfigEntry *c = fe_config(E->P, name);
    if (!c) {
        if (E->D->nerrors == 0) diag_error(E->D, (Loc){0}, "the model's config has no '%s' (the sequence length T)", name);
        return;
    }
    if (!c->is_int || c->value <= 0) {
        diag_error(E->D, c->loc, "'%s' must be a positive integer", name);
        return;
    }
    E->P->T = (int64_t)c->value;
    scope_bind(E, E->global, "T", v_int(E, E->P->T), (Loc){0});
}

static Source *source_from_text(FeCompile *c, const FeOptions *opt) {
    if (memchr(opt->text, 0, opt->text_len)) {
        diag_error(&c->diag, (Loc){0}, "model text contains a NUL byte");
        return NULL;
    }
    Source *src = arena_alloc(&c->arena, sizeof *src);
    src->name = arena_strdup(&c->arena, opt->path);
    src->text = arena_strndup(&c->arena, opt->text, opt->text_len);
    src->len = opt->text_len;
    c->sources[c->nsources++] = src;
    return src;
}

int fe_compile(FeCompile *c, const FeOptions *opt, FILE *diag_out) {
    memset(c, 0, sizeof *c);
    c->diag.out = diag_out;
    Elab *E = arena_alloc(&c->arena, sizeof *E);
    c->elab = E;
    E->c = c;
    E->A = &c->arena;
    E->D = &c->diag;
    E->P = &c->prog;
    E->g = c->prog.graph = ir_graph_new();
    E->global = scope_new(E, NULL);
    E->context = CTX_TOP;
    E->include_dirs = opt->include_dirs;

    Source *src = opt->text ? source_from_text(c, opt) : fe_load_source(c, opt->path, (Loc){0});
    if (!src) return 1;
    const Source *stack[16];
    Node *stmts = load_flat(E, src, stack, 0);
    if (c->diag.nerrors) return 1;   /* syntax errors: the tree is incomplete */
    eval_config(E, stmts, opt);
    bind_T(E, opt);
    if (c->diag.nerrors) return 1;
    const Node *model = NULL;
    for (Node *st = stmts; st; st = st->next) {
        if (!within_limits(E, st)) break;
        if (st->kind != N_MODEL) {
            exec_stmt(E, st, E->global);
        } else if (model) {
            diag_error(E->D, st->loc, "a second 'model' block");
            diag_note(E->D, model->loc, "the first is here");
        } else {
            model = st;
        }
    }
    if (!model) diag_error(E->D, (Loc){src, 1, 1}, "no 'model { … }' block");
    else elab_model(E, model);
    if (c->diag.nerrors == 0) warn_unused(E);
    return c->diag.nerrors ? 1 : 0;
}

void fe_free(FeCompile *c) {
    ir_graph_free(c->prog.graph);
    c->prog.graph = NULL;
    arena_free(&c->arena);
}

const ConfigEntry *fe_config(const Program *p, const char *name) {
    for (int i = 0; i < p->nconfig; i++)
        if (strcmp(p->config[i].name, name) == 0) return &p->config[i];
    return NULL;
}

int64_t fe_param_count(const ParamDecl *p) {
    int64_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= p->shape[i];
    return n;
}

double fe_schedule_value(FeCompile *c, const char *name, int64_t step) {
    for (int i = 0; i < c->prog.nschedules; i++) {
        const ScheduleDecl *s = &c->prog.schedules[i];
        double v;
        if (strcmp(s->name, name) == 0 && sched_eval(c->elab, s->expr, s->scope, step, &v, false)) return v;
    }
    return NAN;
}

double fe_optim_arg(FeCompile *c, const OptimGroup *g, const char *key, int64_t step, double dflt) {
    for (int i = 0; i < g->nargs; i++) {
        double v;
        if (strcmp(g->args[i].key, key) == 0)
            return sched_eval(c->elab, g->args[i].expr, g->args[i].scope, step, &v, false) ? v : NAN;
    }
    return dflt;
}
