/* schedule.c — --schedule NAME=VALUE[,NAME=VALUE…]: a model's schedules pinned to constants,
 * and the schedules a command runs with, as text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "ir/ir.h"

/* "NAME, NAME, …" of every schedule of p into buf */
static void schedule_names(const Program *p, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < p->nschedules && k < len; i++) {
        int n = snprintf(buf + k, len - k, "%s%s", i ? ", " : "", p->schedules[i].name);
        if (n < 0) break;
        k += (size_t)n;
    }
}

static int unknown_schedule(const char *cmd, const Program *p, const char *name) {
    if (p->nschedules == 0) return usage_error(cmd, "--schedule %s: the model declares no schedules", name);
    char names[1024];
    schedule_names(p, names, sizeof names);
    const char *near = fe_schedule_suggest(p, name);
    if (near)
        return usage_error(cmd, "--schedule: the model has no schedule '%s'; did you mean '%s'? (its schedules: %s)",
                           name, near, names);
    return usage_error(cmd, "--schedule: the model has no schedule '%s' (its schedules: %s)", name, names);
}

/* one "NAME=VALUE" of n bytes at s */
static int pin_one(const char *cmd, FeCompile *c, const char *s, size_t n) {
    char item[256];
    if (n >= sizeof item) return usage_error(cmd, "--schedule: '%.40s…' is too long", s);
    memcpy(item, s, n);
    item[n] = 0;
    char *eq = strchr(item, '=');
    if (!eq || eq == item) return usage_error(cmd, "--schedule takes NAME=VALUE[,NAME=VALUE…], got '%s'", item);
    *eq = 0;
    char *end;
    double v = strtod(eq + 1, &end);
    if (end == eq + 1 || *end || !isfinite(v))
        return usage_error(cmd, "--schedule %s: '%s' is not a finite number", item, eq + 1);
    return fe_pin_schedule(c, item, v) == 0 ? 0 : unknown_schedule(cmd, &c->prog, item);
}

int cli_pin_schedules(const char *cmd, FeCompile *c, const CliList *l) {
    for (int i = 0; i < l->n; i++)
        for (const char *s = l->v[i];;) {
            const char *comma = strchr(s, ',');
            size_t n = comma ? (size_t)(comma - s) : strlen(s);
            if (pin_one(cmd, c, s, n) != 0) return 2;
            if (!comma) break;
            s = comma + 1;
        }
    return 0;
}

void cli_schedules_text(FeCompile *c, int64_t step, bool graph_only, char *buf, size_t len) {
    const Program *p = &c->prog;
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < p->nschedules && k < len; i++) {
        const char *name = p->schedules[i].name;
        if (graph_only && !ir_leaf_named(p->graph, IR_SCALAR, name)) continue;   /* the graph reads it */
        int n = snprintf(buf + k, len - k, "%s%s=%g", k ? " " : "", name, fe_schedule_value(c, name, step));
        if (n < 0) break;
        k += (size_t)n;
    }
}
