/* test_mutations.c — every token of the study's model files deleted, duplicated and
 * swapped with its neighbour, and every number replaced by others: gptc must either accept
 * the file or report located errors ("file:line:col: error: …"), never crash or leak
 * (this binary runs under ASan + UBSan in the suite). */
#include <ctype.h>
#include <stdlib.h>

#include "frontend/frontend.h"
#include "tests/test.h"

typedef struct { int start, len; bool number; } Tok;

/* A rough tokenizer: names, numbers, strings, two-char operators, single characters;
 * comments and blanks are not tokens. */
static int tokenize(const char *s, Tok *toks, int max) {
    int n = 0, i = 0, len = (int)strlen(s);
    while (i < len && n < max) {
        if (isspace((unsigned char)s[i])) { i++; continue; }
        if (s[i] == '#') { while (i < len && s[i] != '\n') i++; continue; }
        int j = i + 1;
        bool number = false;
        if (isalpha((unsigned char)s[i]) || s[i] == '_') {
            while (j < len && (isalnum((unsigned char)s[j]) || s[j] == '_')) j++;
        } else if (isdigit((unsigned char)s[i])) {
            number = true;
            while (j < len && (isalnum((unsigned char)s[j]) || s[j] == '.' ||
                               ((s[j] == '-' || s[j] == '+') && (s[j - 1] == 'e' || s[j - 1] == 'E')))) j++;
        } else if (s[i] == '"') {
            while (j < len && s[j] != '"' && s[j] != '\n') j++;
            if (j < len && s[j] == '"') j++;
        } else if (j < len && strchr("=!<>/*", s[i]) && (s[j] == '=' || (s[i] == '/' && s[j] == '/') ||
                                                       (s[i] == '*' && s[j] == '*'))) {
            j++;
        }
        toks[n++] = (Tok){i, j - i, number};
        i = j;
    }
    return n;
}

static char *splice(const char *s, int at, int cut, const char *ins, int inslen) {
    int len = (int)strlen(s);
    char *r = malloc((size_t)(len - cut + inslen + 1));
    memcpy(r, s, (size_t)at);
    memcpy(r + at, ins, (size_t)inslen);
    memcpy(r + at + inslen, s + at + cut, (size_t)(len - at - cut));
    r[len - cut + inslen] = 0;
    return r;
}

static int nrun, naccepted, nbad;

/* Compile one mutant; check the outcome is a clean accept or located errors. */
static void try_mutant(const char *path, const char *text, const char *what) {
    char *msgs = NULL;
    size_t mlen;
    FILE *out = open_memstream(&msgs, &mlen);
    FeCompile c;
    FeOptions o = {.path = path, .text = text, .text_len = strlen(text)};
    int rc = fe_compile(&c, &o, out);
    fclose(out);
    nrun++;
    bool ok = (rc == 0 && c.diag.nerrors == 0) || (rc == 1 && c.diag.nerrors > 0 && strstr(msgs, "error: "));
    /* every error line names its place: "path:L:C: error:" or, with no place, "gptc: error:" */
    for (char *line = msgs; ok && line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char *e = strstr(line, ": error: ");
        char *nl = strchr(line, '\n');
        if (!e || (nl && e > nl)) continue;
        int l, col;
        char tail[16];
        bool located = strncmp(line, "gptc: error:", 12) == 0 ||
                       (sscanf(line, "%*[^:]:%d:%d%15[^ ]", &l, &col, tail) == 3 && l > 0 && col > 0);
        if (!located) ok = false;
    }
    if (rc == 0) naccepted++;
    if (!ok) {
        nbad++;
        if (nbad <= 5) fprintf(stderr, "mutant (%s) of %s: rc %d, %d errors:\n%s\n", what, path, rc, c.diag.nerrors, msgs);
    }
    fe_free(&c);
    free(msgs);
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    s[fread(s, 1, (size_t)n, f)] = 0;
    fclose(f);
    return s;
}

static void mutate_file(const char *path) {
    char *text = read_file(path);
    CHECK(text != NULL);
    if (!text) return;
    Tok *toks = malloc(sizeof(Tok) * 20000);
    int n = tokenize(text, toks, 20000);
    CHECK(n > 3);
    static const char *numbers[] = {"0", "-1", "7", "100000000", "1e300", "0.5"};
    for (int i = 0; i < n; i++) {
        Tok t = toks[i];
        char *m = splice(text, t.start, t.len, "", 0);
        try_mutant(path, m, "delete");
        free(m);
        m = splice(text, t.start, 0, text + t.start, t.len);
        char *m2 = splice(m, t.start + t.len, 0, " ", 1);
        try_mutant(path, m2, "duplicate");
        free(m);
        free(m2);
        if (i + 1 < n) {
            Tok u = toks[i + 1];
            int span = u.start + u.len - t.start;
            char *buf = malloc((size_t)span + 1);
            int k = 0;
            memcpy(buf + k, text + u.start, (size_t)u.len); k += u.len;
            memcpy(buf + k, text + t.start + t.len, (size_t)(u.start - t.start - t.len)); k += u.start - t.start - t.len;
            memcpy(buf + k, text + t.start, (size_t)t.len); k += t.len;
            m = splice(text, t.start, span, buf, k);
            try_mutant(path, m, "swap");
            free(m);
            free(buf);
        }
        if (t.number)
            for (size_t j = 0; j < sizeof numbers / sizeof numbers[0]; j++) {
                m = splice(text, t.start, t.len, numbers[j], (int)strlen(numbers[j]));
                try_mutant(path, m, numbers[j]);
                free(m);
            }
    }
    free(toks);
    free(text);
}

TEST(mutants_of_the_base_model) {
    int before = nbad;
    mutate_file("models/gpt2m.gptc");
    CHECK(nbad == before);
}

TEST(mutants_of_a_variant) {
    int before = nbad;
    mutate_file("models/gpt2m_x02.gptc");
    CHECK(nbad == before);
}

int main(void) {
    RUN(mutants_of_the_base_model);
    RUN(mutants_of_a_variant);
    printf("mutants: %d compiled, %d accepted, %d rejected with located errors, %d bad\n", nrun, naccepted,
           nrun - naccepted - nbad, nbad);
    return test_summary();
}
