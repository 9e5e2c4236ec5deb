/* override.c — `override let NAME = …`, `override schedule NAME = …`, `override fn NAME(…) …`:
 * a file replaces a top-level definition of a file it includes.
 *
 * The overriding definition takes the place of the original in the flat statement list,
 * before any statement runs, so every use sees it: those of the included file, those
 * written before the override line, and fn bodies called from anywhere. A let or schedule
 * is therefore evaluated where the original stood and sees only the names defined before
 * it; a fn body resolves its names when it is called, as any fn's does.
 *
 * A name may be overridden in several files (a variant of a variant): the override whose
 * file includes the files of all the others wins. Two overrides in one file are an error,
 * and so are overrides with no such winner (two files neither of which includes the other,
 * and no file including both that overrides the name too). */
#include "frontend/elab.h"

#include <string.h>

static bool file_includes(const Source *a, const Source *b) { return a != b && (a->includes >> b->index & 1); }

static bool is_definition(const Node *st) { return st->kind == N_LET || st->kind == N_SCHEDULE || st->kind == N_FN; }

static Loc name_loc(const Node *def) { return def->kind == N_FN ? def->fn.ident->loc : def->def.ident->loc; }

/* The link of the list that points to the top-level definition of `name`, or NULL. */
static Node **find_definition(Node **list, const char *name) {
    for (Node **p = list; *p; p = &(*p)->next)
        if (is_definition(*p) && strcmp((*p)->name, name) == 0) return p;
    return NULL;
}

/* The top-level definition nearest to `name`, at edit distance 2 or less, or NULL. */
static const Node *nearest_definition(const Node *stmts, const char *name) {
    const Node *best = NULL;
    int bestd = 3;
    for (const Node *st = stmts; st; st = st->next) {
        int d = is_definition(st) ? edit_distance(name, st->name) : 99;
        if (d < bestd) bestd = d, best = st;
    }
    return best;
}

static const Node *find_config_entry(const Node *stmts, const char *name) {
    for (const Node *st = stmts; st; st = st->next)
        for (const Node *e = st->kind == N_CONFIG ? st->block.body : NULL; e; e = e->next)
            if (e->kind == N_ASSIGN && e->assign.target->kind == N_NAME && !strcmp(e->assign.target->name, name))
                return e->assign.target;
    return NULL;
}

/* One override against the original definition; false after reporting why it cannot
 * replace it. */
static bool override_ok(Elab *E, const Node *stmts, const Node *ov, const Node *orig) {
    const Node *def = ov->over.def;
    if (!orig || !file_includes(ov->loc.src, orig->loc.src)) {
        const Node *near = orig ? NULL : nearest_definition(stmts, ov->name);
        diag_error(E->D, name_loc(def), "override of '%s': no file included by this one defines '%s' at top level%s%s%s",
                   ov->name, ov->name, near ? "; did you mean '" : "", near ? near->name : "", near ? "'?" : "");
        const Node *cfg = find_config_entry(stmts, ov->name);
        if (orig) diag_note(E->D, name_loc(orig), "'%s' is defined here", ov->name);
        else if (cfg) diag_note(E->D, cfg->loc, "'%s' is a config entry: change it with 'set %s = …'", ov->name, ov->name);
        return false;
    }
    if (def->kind != orig->kind) {
        diag_error(E->D, def->loc, "'%s' is defined by '%s', so its override is 'override %s %s%s'", ov->name,
                   ast_kind_name(orig->kind), ast_kind_name(orig->kind), ov->name, orig->kind == N_FN ? "(…) …" : " = …");
        diag_note(E->D, name_loc(orig), "defined here");
        return false;
    }
    return true;
}

static bool same_name(const Node *a, const Node *b) { return b->kind == N_OVERRIDE && !strcmp(a->name, b->name); }

/* The override of first's name whose file includes the files of all the others, or NULL. */
static const Node *outermost(const Node *first) {
    for (const Node *w = first; w; w = w->next) {
        bool all = same_name(first, w);
        for (const Node *ov = first; all && ov; ov = ov->next)
            all = ov == w || !same_name(first, ov) || file_includes(w->loc.src, ov->loc.src);
        if (all) return w;
    }
    return NULL;
}

/* Two overrides of one name in one file; or, when no override is outermost, in two files
 * neither of which includes the other. False after reporting. */
static bool overrides_ordered(Elab *E, const Node *first, bool have_outermost) {
    bool ok = true;
    for (const Node *ov = first; ov; ov = ov->next) {
        if (!same_name(first, ov)) continue;
        for (const Node *p = first; p != ov; p = p->next) {
            const Source *a = p->loc.src, *b = ov->loc.src;
            bool unordered = !have_outermost && !file_includes(a, b) && !file_includes(b, a);
            if (!same_name(first, p) || (a != b && !unordered)) continue;
            if (a == b) diag_error(E->D, name_loc(ov->over.def), "'%s' is overridden twice in this file", ov->name);
            else diag_error(E->D, name_loc(ov->over.def), "'%s' is overridden here and in '%s', neither file includes "
                            "the other, and no file that includes both overrides it", ov->name, a->name);
            diag_note(E->D, name_loc(p->over.def), "the other override");
            ok = false;
        }
    }
    return ok;
}

/* Every override of the name of `first` (the first one in the list): checked, then the
 * outermost one put in the original's place. */
static void override_name(Elab *E, Node **stmts, const Node *first) {
    Node **link = find_definition(stmts, first->name);
    const Node *orig = link ? *link : NULL, *winner = outermost(first);
    bool ok = true;
    for (const Node *ov = first; ov; ov = ov->next)
        if (same_name(first, ov)) ok &= override_ok(E, *stmts, ov, orig);
    ok &= overrides_ordered(E, first, winner != NULL);
    if (!ok) return;
    Node *def = winner->over.def;
    def->next = orig->next;
    if (def->kind != N_FN) def->def.replaced = *link;
    *link = def;
}

void override_definitions(Elab *E, Node **stmts) {
    for (const Node *ov = *stmts; ov; ov = ov->next) {
        if (ov->kind != N_OVERRIDE) continue;
        bool seen = false;
        for (const Node *p = *stmts; p != ov; p = p->next) seen |= same_name(ov, p);
        if (!seen) override_name(E, stmts, ov);
    }
}

/* After an error in an override's expression: where it was evaluated, and why there. */
void override_note(Elab *E, const Node *def) {
    if (def->def.replaced)
        diag_note(E->D, name_loc(def->def.replaced), "the override of '%s' is evaluated here, in place of this "
                  "definition: it sees only the names defined before this line", def->name);
}

/* The end of "'NAME' is already defined…" for a definition at file level of a name an
 * included file defines: how to replace it. */
const char *redefinition_hint(Elab *E, const Node *def, const Binding *old, Scope *s) {
    if (s != E->global || !old->loc.src || !file_includes(def->loc.src, old->loc.src)) return "";
    if (fe_config(E->P, def->name)) return arena_printf(E->A, "; change a config entry with 'set %s = …'", def->name);
    if (old->val && old->val->kind == V_TENSOR) return "";   /* an input */
    return arena_printf(E->A, "; to replace the definition of an included file, write 'override %s %s%s'",
                        ast_kind_name(def->kind), def->name, def->kind == N_FN ? "(…) …" : " = …");
}
