/* value.c — compile-time values: constructors, conversions, maps, descriptions. */
#include "frontend/elab.h"

#include <math.h>
#include <string.h>

Value *v_new(Elab *E, ValueKind k) {
    Value *v = arena_alloc(E->A, sizeof *v);
    v->kind = k;
    return v;
}

Value *v_int(Elab *E, int64_t i) { Value *v = v_new(E, V_INT); v->i = i; return v; }
Value *v_float(Elab *E, double f) { Value *v = v_new(E, V_FLOAT); v->f = f; return v; }
Value *v_bool(Elab *E, bool b) { Value *v = v_new(E, V_BOOL); v->i = b; return v; }
Value *v_string(Elab *E, const char *s) { Value *v = v_new(E, V_STRING); v->s = s; return v; }
Value *v_tensor(Elab *E, IrNode *t) { Value *v = v_new(E, V_TENSOR); v->t = t; return v; }

bool v_is_num(const Value *v) { return v && (v->kind == V_INT || v->kind == V_FLOAT); }
double v_num(const Value *v) { return v->kind == V_INT ? (double)v->i : v->f; }

const char *v_kind_name(const Value *v) {
    static const char *names[] = {"nothing", "int", "float", "bool", "string", "list", "map",
                                  "tensor", "schedule", "parameter family", "function",
                                  "builtin function", "optimizer"};
    return v ? names[v->kind] : "error";
}

const char *v_describe(Elab *E, const Value *v) {
    char sb[128];
    switch (v->kind) {
    case V_INT: return arena_printf(E->A, "int %lld", (long long)v->i);
    case V_FLOAT: return arena_printf(E->A, "float %g", v->f);
    case V_BOOL: return v->i ? "bool true" : "bool false";
    case V_STRING: return arena_printf(E->A, "string \"%s\"", v->s);
    case V_LIST: return arena_printf(E->A, "list of %d", v->n);
    case V_MAP: return arena_printf(E->A, "map of %d", v->n);
    case V_TENSOR:
        return arena_printf(E->A, "tensor %s%s", ir_dtype_name(v->t->dtype),
                            ir_shape_str(v->t->ndim, v->t->shape, sb, sizeof sb));
    case V_FAMILY: return arena_printf(E->A, "parameter family '%s'", v->s);
    default: return v_kind_name(v);
    }
}

bool v_equal(const Value *a, const Value *b) {
    if (v_is_num(a) && v_is_num(b)) return v_num(a) == v_num(b);
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case V_BOOL: return a->i == b->i;
    case V_STRING: return strcmp(a->s, b->s) == 0;
    case V_LIST:
        if (a->n != b->n) return false;
        for (int i = 0; i < a->n; i++)
            if (!v_equal(a->items[i], b->items[i])) return false;
        return true;
    default: return a == b;
    }
}

/* Maps keep key i in items[2i] and its value in items[2i+1]; a linear search is fine
 * for the few-entry tables model files hold. */
Value *v_map_get(const Value *map, const Value *key) {
    for (int i = 0; i < map->n; i++)
        if (v_equal(map->items[2 * i], key)) return map->items[2 * i + 1];
    return NULL;
}

void v_map_put(Elab *E, Value *map, Value *key, Value *val) {
    for (int i = 0; i < map->n; i++)
        if (v_equal(map->items[2 * i], key)) {
            map->items[2 * i + 1] = val;
            return;
        }
    Value **items = arena_alloc(E->A, sizeof(Value *) * 2 * (size_t)(map->n + 1));
    if (map->n) memcpy(items, map->items, sizeof(Value *) * 2 * (size_t)map->n);
    items[2 * map->n] = key;
    items[2 * map->n + 1] = val;
    map->items = items;
    map->n++;
}

/* An integer, or a float that is exactly one. */
bool v_to_int(Elab *E, const Value *v, Loc loc, const char *what, int64_t *out) {
    if (!v) return false;
    if (v->kind == V_INT) { *out = v->i; return true; }
    if (v->kind == V_FLOAT && v->f == floor(v->f) && fabs(v->f) < 9e15) { *out = (int64_t)v->f; return true; }
    diag_error(E->D, loc, "%s must be an integer known at compile time, got %s", what, v_describe(E, v));
    return false;
}
