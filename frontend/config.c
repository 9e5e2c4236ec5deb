/* config.c — config entries, `set`, presets and --set: collected in file order, the
 * overrides applied (file `set` < preset < --set), then evaluated entry by entry. */
#include "frontend/elab.h"

#include <math.h>
#include <string.h>

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
        for (Node *e = st->block.body; e; e = e->next) {
            if (e->kind != N_ASSIGN || e->assign.target->kind != N_NAME) {
                diag_error(E->D, e->loc, "a config entry is NAME = EXPRESSION");
                continue;
            }
            const Node *name = e->assign.target;
            ConfigSlot *old = find_slot(slots, n, name->name);
            if (old) {
                diag_error(E->D, name->loc, "config '%s' is defined twice; use 'set %s = …' to change it",
                           name->name, name->name);
                diag_note(E->D, old->loc, "first defined here");
                continue;
            }
            if (n == max) {
                diag_error(E->D, e->loc, "too many config entries");
                return n;
            }
            slots[n++] = (ConfigSlot){.name = name->name, .expr = e->assign.value, .loc = name->loc};
        }
    }
    return n;
}

static void apply_overrides(Elab *E, Node *stmts, ConfigSlot *slots, int n, const FeOptions *opt) {
    const Node *preset = NULL;
    for (Node *st = stmts; st; st = st->next) {
        if (st->kind == N_SET) {
            ConfigSlot *s = find_slot(slots, n, st->name);
            if (s) s->override = st->def.value;
            else unknown_config(E, slots, n, st->def.ident->loc, st->name);
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
    for (Node *e = preset ? preset->block.body : NULL; e; e = e->next) {
        if (e->kind != N_ASSIGN || e->assign.target->kind != N_NAME) {
            diag_error(E->D, e->loc, "a preset entry is NAME = EXPRESSION");
            continue;
        }
        const Node *name = e->assign.target;
        ConfigSlot *s = find_slot(slots, n, name->name);
        if (s) s->override = e->assign.value;
        else unknown_config(E, slots, n, name->loc, name->name);
    }
    /* check every preset's names, not only the chosen one */
    for (Node *st = stmts; st; st = st->next)
        if (st->kind == N_PRESET && st != preset)
            for (Node *e = st->block.body; e; e = e->next) {
                const Node *name = e->kind == N_ASSIGN ? e->assign.target : NULL;
                if (name && name->kind == N_NAME && !find_slot(slots, n, name->name))
                    unknown_config(E, slots, n, name->loc, name->name);
            }
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

/* --set NAME=VALUE with a non-integer VALUE for an entry that is an integer without it:
 * an integral VALUE becomes an integer, another is refused (NULL). */
static Value *cli_value(Elab *E, const ConfigSlot *s) {
    const ConfigOverride *o = s->cli;
    if (o->is_int) return v_int(E, (int64_t)o->value);
    Value *d = eval(E, s->override ? s->override : s->expr, E->global);
    if (!d || (d->kind != V_INT && d->kind != V_BOOL)) return v_float(E, o->value);
    if (o->value == floor(o->value) && fabs(o->value) < 9e15) return v_int(E, (int64_t)o->value);
    diag_error(E->D, (Loc){0}, "--set %s=%g: config '%s' is an integer (%lld without --set), not %g", o->name, o->value,
               s->name, (long long)d->i, o->value);
    diag_note(E->D, s->loc, "'%s' is defined here", s->name);
    return NULL;
}

/* A value of an entry the trainer reads (steps), checked where it is set, before a schedule
 * turns it into a follow-on error: at the --set, or at the entry in the file. */
static void trainer_entry_ok(Elab *E, const ConfigSlot *s, const Value *v) {
    const char *why = fe_trainer_entry_error(s->name, v_num(v));
    if (why && s->cli) diag_error(E->D, (Loc){0}, "--set %s=%g: config '%s' %s", s->name, v_num(v), s->name, why);
    else if (why) diag_error(E->D, s->loc, "config '%s' %s, not %g", s->name, why, v_num(v));
}

void eval_config(Elab *E, Node *stmts, const FeOptions *opt) {
    ConfigSlot *slots = arena_alloc(E->A, sizeof(ConfigSlot) * 512);
    int n = collect_config(E, stmts, slots, 512);
    apply_overrides(E, stmts, slots, n, opt);
    E->P->config = arena_alloc(E->A, sizeof(ConfigEntry) * (size_t)(n ? n : 1));
    int saved = E->context;
    E->context = CTX_CONFIG;
    for (int i = 0; i < n; i++) {
        ConfigSlot *s = &slots[i];
        Value *v;
        if (s->cli) v = cli_value(E, s);
        else v = eval(E, s->override ? s->override : s->expr, E->global);
        if (!v) continue;
        if (v->kind == V_BOOL) v = v_int(E, v->i);
        if (!v_is_num(v)) {
            diag_error(E->D, (s->override ? s->override : s->expr)->loc,
                       "config '%s' must be a number, got %s", s->name, v_describe(E, v));
            continue;
        }
        trainer_entry_ok(E, s, v);   /* reported; still bound, so that nothing follows from it */
        scope_bind(E, E->global, s->name, v, s->loc);
        E->P->config[E->P->nconfig++] = (ConfigEntry){s->name, v_num(v), v->kind == V_INT, s->loc};
    }
    E->context = saved;
}
