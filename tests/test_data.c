/* test_data.c — token shards and the loader of spec S-7: the writer/reader round trip, the
 * loader's batches against a direct implementation of S-7.2 (W = 1, 2, 3, every rank, file
 * switching, skipped small files, running out), every error path, save/restore of the
 * loader state, and the golden tiny_x02 shards (6 batches of T = 256, a 7th is an error). */
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trainer/trainer.h"
#include "tests/test.h"

#define GOLDEN "tests/golden/tiny_x02"

static char tmpdir[64];
static int ndirs;

/* A fresh folder under tmpdir. */
static void new_dir(char *out, size_t len) {
    snprintf(out, len, "%s/d%d", tmpdir, ndirs++);
    mkdir(out, 0777);
}

static void join(char *out, size_t len, const char *dir, const char *name) { snprintf(out, len, "%s/%s", dir, name); }

/* Writes a file of raw bytes. */
static void write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return; }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

/* A shard with header words (magic, version, n) and `held` tokens tok[i] = f(i). */
static void write_custom(const char *path, int32_t magic, int32_t version, int32_t n, int64_t held, uint16_t base) {
    size_t len = SHARD_HEADER_BYTES + 2 * (size_t)held;
    uint8_t *b = calloc(len, 1);
    int32_t h[3] = {magic, version, n};
    memcpy(b, h, sizeof h);
    for (int64_t i = 0; i < held; i++) {
        uint16_t v = (uint16_t)(base + i);
        memcpy(b + SHARD_HEADER_BYTES + 2 * i, &v, 2);
    }
    write_raw(path, b, len);
    free(b);
}

static bool contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

#define CHECK_HAS(s, sub) do { const char *s_ = (s); if (!contains(s_, sub)) { test_failed_checks++; \
    fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, s_, sub); } } while (0)

/* ---- writer and reader ---- */

TEST(write_read_round_trip) {
    char dir[128], path[192], err[512];
    new_dir(dir, sizeof dir);
    join(path, sizeof path, dir, "x_train_000000.bin");
    enum { N = 5000 };
    uint16_t tok[N];
    for (int i = 0; i < N; i++) tok[i] = (uint16_t)(i * 7919u);
    CHECK(shard_write(path, tok, N, err, sizeof err) == 0);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == SHARD_HEADER_BYTES + 2 * N);
    /* the header bytes: magic, version, N little-endian; the other 253 words zero */
    FILE *f = fopen(path, "rb");
    int32_t h[256] = {0};
    CHECK(f && fread(h, 4, 256, f) == 256);
    if (f) fclose(f);
    CHECK(h[0] == 20240520 && h[1] == 1 && h[2] == N);
    int nonzero = 0;
    for (int i = 3; i < 256; i++) nonzero += h[i] != 0;
    CHECK(nonzero == 0);
    Shard s;
    CHECK(shard_open(&s, path, err, sizeof err) == 0);
    CHECK(s.ntokens == N && s.tokens != NULL);
    CHECK(s.tokens && memcmp(s.tokens, tok, sizeof tok) == 0);
    CHECK(shard_check(&s, 65536, err, sizeof err) == 0 && s.checked);
    shard_close(&s);
    shard_close(&s);   /* harmless twice */
    /* overwriting is atomic: no temp file is left behind */
    CHECK(shard_write(path, tok, 10, err, sizeof err) == 0);
    CHECK(shard_open(&s, path, err, sizeof err) == 0 && s.ntokens == 10);
    shard_close(&s);
    DIR *dp = opendir(dir);
    int files = 0;
    for (struct dirent *de; dp && (de = readdir(dp));) files += de->d_name[0] != '.';
    if (dp) closedir(dp);
    CHECK(files == 1);
    /* an empty shard */
    CHECK(shard_write(path, NULL, 0, err, sizeof err) == 0);
    CHECK(shard_open(&s, path, err, sizeof err) == 0 && s.ntokens == 0);
    shard_close(&s);
}

TEST(write_errors) {
    char err[512];
    uint16_t t = 1;
    CHECK(shard_write("/nonexistent-dir/x.bin", &t, 1, err, sizeof err) == -1);
    CHECK_HAS(err, "/nonexistent-dir/x.bin: cannot write");
    CHECK(shard_write("/tmp/never.bin", &t, -1, err, sizeof err) == -1);
    CHECK_HAS(err, "cannot write -1 tokens");
    CHECK(shard_write("/tmp/never.bin", &t, (int64_t)INT32_MAX + 1, err, sizeof err) == -1);
    CHECK(shard_write("/tmp/never.bin", NULL, 3, err, sizeof err) == -1);
    CHECK(access("/tmp/never.bin", F_OK) != 0);
    CHECK(shard_write("/nonexistent-dir/x.bin", &t, 1, NULL, 0) == -1);   /* err may be NULL */
}

/* ---- the loader against a direct implementation of S-7.2 ---- */

typedef struct {
    int nfiles;
    int64_t n[8];
    uint16_t *tok[8];
} Files;

/* S-7.2, written out: the batches of rank r, until the files run out. Returns the number
 * of batches; in/tg get them one after another (T each). */
static int64_t ref_loader(const Files *fs, int64_t T, int r, int W, int32_t *in, int32_t *tg, int64_t maxb) {
    int64_t G = W * T, f = 0, pos = 0, b = 0;
    for (; b < maxb; b++) {
        while (f < fs->nfiles && pos + G + 1 >= fs->n[f]) { f++; pos = 0; }
        if (f == fs->nfiles) break;
        int64_t start = pos + r * T;
        for (int64_t i = 0; i < T; i++) {
            in[b * T + i] = fs->tok[f][start + i];
            tg[b * T + i] = fs->tok[f][start + i + 1];
        }
        pos += G;
    }
    return b;
}

/* Shards "k_train_NN.bin" of the given sizes, written in reverse order (the loader sorts
 * by name). Token values encode (file, position), all below 60000. */
static void make_files(const char *dir, Files *fs, const int64_t *sizes, int n) {
    char err[512], path[192];
    fs->nfiles = n;
    for (int f = n - 1; f >= 0; f--) {
        fs->n[f] = sizes[f];
        fs->tok[f] = malloc(sizeof(uint16_t) * (size_t)(sizes[f] + 1));
        for (int64_t i = 0; i < sizes[f]; i++) fs->tok[f][i] = (uint16_t)((f * 10007 + i * 13) % 60000);
        char name[64];
        snprintf(name, sizeof name, "k_train_%02d.bin", f);
        join(path, sizeof path, dir, name);
        if (shard_write(path, fs->tok[f], sizes[f], err, sizeof err) != 0) fprintf(stderr, "%s\n", err);
    }
}

static void free_files(Files *fs) {
    for (int f = 0; f < fs->nfiles; f++) free(fs->tok[f]);
}

TEST(loader_matches_spec) {
    char dir[128], err[512];
    new_dir(dir, sizeof dir);
    /* with T = 4: G = 4, 8, 12. Sizes probe the boundaries: N = G+1 skipped, N = G+2 one batch */
    const int64_t sizes[] = {40, 5, 13, 6, 2, 100, 14, 9};
    Files fs;
    make_files(dir, &fs, sizes, 8);
    const int64_t Ts[] = {1, 4, 5};
    for (int ti = 0; ti < 3; ti++)
        for (int W = 1; W <= 3; W++) {
            int64_t T = Ts[ti], G = W * T, expect_nb = 0;
            for (int f = 0; f < 8; f++) expect_nb += sizes[f] > G + 1 ? (sizes[f] - 2) / G : 0;
            int32_t *last_tg = NULL;
            int64_t prev_nb = -1;
            for (int r = 0; r < W; r++) {
                int32_t *rin = malloc(sizeof(int32_t) * 400 * (size_t)T), *rtg = malloc(sizeof(int32_t) * 400 * (size_t)T);
                int64_t nb = ref_loader(&fs, T, r, W, rin, rtg, 400);
                CHECK(nb == expect_nb);
                Loader d;
                CHECK(loader_open(&d, dir, "train", T, r, W, 60000, err, sizeof err) == 0);
                CHECK(d.nfiles == 8 && loader_nbatches(&d) == nb);
                int32_t *in = malloc(sizeof(int32_t) * (size_t)T), *tg = malloc(sizeof(int32_t) * (size_t)T);
                int bad = 0;
                for (int64_t b = 0; b < nb; b++) {
                    if (loader_next(&d, in, tg, err, sizeof err) != 0) { bad++; break; }
                    bad += memcmp(in, rin + b * T, sizeof(int32_t) * (size_t)T) != 0;
                    bad += memcmp(tg, rtg + b * T, sizeof(int32_t) * (size_t)T) != 0;
                    for (int64_t i = 0; i + 1 < T; i++) bad += tg[i] != in[i + 1];   /* shifted by one */
                    /* neighbouring ranks overlap by one token: rank r-1's last target is our first input */
                    if (last_tg) bad += last_tg[b * T + T - 1] != in[0];
                }
                CHECK(bad == 0);
                if (bad) fprintf(stderr, "  T=%" PRId64 " W=%d rank %d\n", T, W, r);
                int64_t st[2], st2[2];
                loader_get_state(&d, st);
                CHECK(loader_next(&d, in, tg, err, sizeof err) == -1);   /* running out */
                CHECK_HAS(err, "the training shards hold too few tokens");
                char want[96];
                snprintf(want, sizeof want, "batch %" PRId64 " needs %" PRId64 " tokens", nb + 1, G + 2);
                CHECK_HAS(err, want);
                CHECK_HAS(err, dir);
                loader_get_state(&d, st2);
                CHECK(st[0] == st2[0] && st[1] == st2[1]);   /* a failed batch changes nothing */
                CHECK(loader_next(&d, in, tg, err, sizeof err) == -1);   /* and stays an error */
                CHECK(prev_nb < 0 || prev_nb == nb);
                prev_nb = nb;
                free(last_tg);
                last_tg = rtg;
                free(rin);
                free(in);
                free(tg);
                loader_close(&d);
            }
            free(last_tg);
        }
    free_files(&fs);
}

TEST(loader_file_order_and_matching) {
    char dir[128], path[192], err[512];
    new_dir(dir, sizeof dir);
    /* created out of order; lexicographic, not numeric: "a_train_10" < "a_train_9" */
    const char *names[] = {"b_train.bin", "a_train_9.bin", "a_train_10.bin"};
    for (int i = 0; i < 3; i++) {
        join(path, sizeof path, dir, names[i]);
        write_custom(path, SHARD_MAGIC, 1, 3, 3, (uint16_t)(100 * i));
    }
    /* not matched: other extensions, the val files, a folder */
    join(path, sizeof path, dir, "a_train.txt");
    write_raw(path, "x", 1);
    join(path, sizeof path, dir, "z_val.bin");
    write_custom(path, SHARD_MAGIC, 1, 3, 3, 7);
    join(path, sizeof path, dir, "c_train_dir.bin");
    mkdir(path, 0777);
    Loader d;
    CHECK(loader_open(&d, dir, "train", 1, 0, 1, 1000, err, sizeof err) == 0);
    CHECK(d.nfiles == 3 && d.ntokens == 9);
    if (d.nfiles == 3) {
        CHECK_HAS(d.files[0].path, "a_train_10.bin");
        CHECK_HAS(d.files[1].path, "a_train_9.bin");
        CHECK_HAS(d.files[2].path, "b_train.bin");
    }
    /* T = 1, W = 1: each 3-token file serves one batch (pos 0; pos 1 + 1 + 1 >= 3) */
    int32_t in, tg;
    CHECK(loader_next(&d, &in, &tg, err, sizeof err) == 0 && in == 200 && tg == 201);
    CHECK(loader_next(&d, &in, &tg, err, sizeof err) == 0 && in == 100 && tg == 101);
    CHECK(loader_next(&d, &in, &tg, err, sizeof err) == 0 && in == 0 && tg == 1);
    CHECK(loader_next(&d, &in, &tg, err, sizeof err) == -1);
    CHECK_HAS(err, "batch 4 needs 3 tokens");
    loader_close(&d);
    loader_close(&d);   /* harmless twice */
    CHECK(loader_open(&d, dir, "val", 1, 0, 1, 1000, err, sizeof err) == 0);
    CHECK(d.nfiles == 1 && loader_next(&d, &in, &tg, err, sizeof err) == 0 && in == 7);
    CHECK(loader_next(&d, &in, &tg, err, sizeof err) == -1);
    CHECK_HAS(err, "the validation shards hold too few tokens");
    loader_close(&d);
    /* a file given instead of a folder is the only shard */
    join(path, sizeof path, dir, "a_train_9.bin");
    CHECK(loader_open(&d, path, "train", 1, 0, 1, 1000, err, sizeof err) == 0);
    CHECK(d.nfiles == 1 && loader_next(&d, &in, &tg, err, sizeof err) == 0 && in == 100);
    loader_close(&d);
}

TEST(loader_ignores_trailing_bytes) {
    char dir[128], path[192], err[512];
    new_dir(dir, sizeof dir);
    join(path, sizeof path, dir, "train.bin");
    write_custom(path, SHARD_MAGIC, 1, 4, 50, 10);   /* 46 tokens' worth of extra bytes */
    Loader d;
    CHECK(loader_open(&d, dir, "train", 2, 0, 1, 20, err, sizeof err) == 0);   /* ids 14.. would fail */
    CHECK(d.ntokens == 4);
    int32_t in[2], tg[2];
    CHECK(loader_next(&d, in, tg, err, sizeof err) == 0);
    CHECK(in[0] == 10 && in[1] == 11 && tg[0] == 11 && tg[1] == 12);
    CHECK(loader_next(&d, in, tg, err, sizeof err) == -1);
    loader_close(&d);
}

/* ---- errors ---- */

/* loader_open on a folder holding just one file `name` written by write_custom. */
static int open_one(const char *name, int32_t magic, int32_t version, int32_t n, int64_t held, char *err, size_t len,
                    char *path, size_t plen) {
    char dir[128];
    new_dir(dir, sizeof dir);
    join(path, plen, dir, name);
    write_custom(path, magic, version, n, held, 0);
    Loader d;
    int rc = loader_open(&d, dir, "train", 4, 0, 1, 65536, err, len);
    loader_close(&d);
    return rc;
}

TEST(loader_errors) {
    char err[512], path[192], want[640];
    CHECK(open_one("train.bin", 20240521, 1, 10, 10, err, sizeof err, path, sizeof path) == -1);
    snprintf(want, sizeof want, "%s: wrong magic number 20240521", path);
    CHECK_HAS(err, want);
    CHECK(open_one("train.bin", SHARD_MAGIC, 2, 10, 10, err, sizeof err, path, sizeof path) == -1);
    snprintf(want, sizeof want, "%s: unsupported shard version 2 (expected 1)", path);
    CHECK_HAS(err, want);
    CHECK(open_one("train.bin", SHARD_MAGIC, 1, 100, 60, err, sizeof err, path, sizeof path) == -1);
    snprintf(want, sizeof want, "%s: truncated: header says 100 tokens, file holds 60", path);
    CHECK_STR(err, want);
    CHECK(open_one("train.bin", SHARD_MAGIC, 1, -3, 0, err, sizeof err, path, sizeof path) == -1);
    CHECK_HAS(err, "says -3 tokens");
    /* a file shorter than the header */
    char dir[128];
    new_dir(dir, sizeof dir);
    join(path, sizeof path, dir, "x_train.bin");
    write_raw(path, "\x28\xab\x34\x01", 4);
    Loader d;
    CHECK(loader_open(&d, dir, "train", 4, 0, 1, 65536, err, sizeof err) == -1);
    snprintf(want, sizeof want, "%s: truncated: 4 bytes, shorter than the 1024-byte header", path);
    CHECK_HAS(err, want);
    loader_close(&d);
    /* a bad file among good ones is found at open, before any batch */
    new_dir(dir, sizeof dir);
    join(path, sizeof path, dir, "a_train.bin");
    write_custom(path, SHARD_MAGIC, 1, 100, 100, 0);
    join(path, sizeof path, dir, "b_train.bin");
    write_custom(path, SHARD_MAGIC, 1, 100, 99, 0);
    CHECK(loader_open(&d, dir, "train", 4, 0, 1, 65536, err, sizeof err) == -1);
    CHECK_HAS(err, "b_train.bin: truncated: header says 100 tokens, file holds 99");
    loader_close(&d);
    /* no files */
    new_dir(dir, sizeof dir);
    CHECK(loader_open(&d, dir, "train", 4, 0, 1, 65536, err, sizeof err) == -1);
    snprintf(want, sizeof want, "%s: no *train*.bin files in %s", dir, dir);
    CHECK_STR(err, want);
    CHECK(loader_open(&d, dir, "val", 4, 0, 1, 65536, err, sizeof err) == -1);
    CHECK_HAS(err, "no *val*.bin files in");
    loader_close(&d);
    CHECK(loader_open(&d, "/nonexistent-gptc-data", "train", 4, 0, 1, 65536, err, sizeof err) == -1);
    CHECK_HAS(err, "/nonexistent-gptc-data: cannot open: No such file or directory");
    CHECK(loader_open(&d, "/nonexistent-gptc-data", "train", 4, 0, 1, 65536, NULL, 0) == -1);
    /* bad arguments */
    CHECK(loader_open(&d, dir, "train", 0, 0, 1, 65536, err, sizeof err) == -1);
    CHECK(loader_open(&d, dir, "train", 4, 2, 2, 65536, err, sizeof err) == -1);
    CHECK(loader_open(&d, dir, "train", 4, 0, 1, 0, err, sizeof err) == -1);
    loader_close(&d);
    /* shard_open reports the same */
    Shard s;
    CHECK(shard_open(&s, "/nonexistent-gptc-data/a.bin", err, sizeof err) == -1);
    CHECK_HAS(err, "/nonexistent-gptc-data/a.bin: cannot open");
    shard_close(&s);
}

TEST(loader_vocab_checked_on_first_use) {
    char dir[128], path[192], err[512], want[640];
    new_dir(dir, sizeof dir);
    uint16_t a[20], b[20];
    for (int i = 0; i < 20; i++) a[i] = b[i] = (uint16_t)i;
    b[13] = 300;
    join(path, sizeof path, dir, "a_train.bin");
    shard_write(path, a, 20, err, sizeof err);
    join(path, sizeof path, dir, "b_train.bin");
    shard_write(path, b, 20, err, sizeof err);
    Loader d;
    CHECK(loader_open(&d, dir, "train", 4, 0, 1, 300, err, sizeof err) == 0);   /* ids not read yet */
    int32_t in[4], tg[4];
    int ok = 0;
    for (int k = 0; k < 4; k++) ok += loader_next(&d, in, tg, err, sizeof err) == 0;   /* a: (20-2)/4 = 4 */
    CHECK(ok == 4);
    int64_t st[2], st2[2];
    loader_get_state(&d, st);
    CHECK(loader_next(&d, in, tg, err, sizeof err) == -1);   /* b is used now */
    snprintf(want, sizeof want, "%s: token id 300 at position 13 is not below the vocabulary size 300", path);
    CHECK_HAS(err, want);
    loader_get_state(&d, st2);
    CHECK(st[0] == st2[0] && st[1] == st2[1]);
    loader_close(&d);
    /* shard_check names the first offending id */
    Shard s;
    CHECK(shard_open(&s, path, err, sizeof err) == 0);
    CHECK(shard_check(&s, 301, err, sizeof err) == 0);
    CHECK(shard_check(&s, 20, err, sizeof err) == -1);
    CHECK_HAS(err, "token id 300 at position 13 ");
    shard_close(&s);
}

/* ---- state ---- */

TEST(loader_state_restore) {
    char dir[128], err[512];
    new_dir(dir, sizeof dir);
    const int64_t sizes[] = {31, 3, 50, 20};
    Files fs;
    make_files(dir, &fs, sizes, 4);
    for (int W = 1; W <= 3; W++)
        for (int r = 0; r < W; r++) {
            const int64_t T = 3;
            Loader a;
            CHECK(loader_open(&a, dir, "train", T, r, W, 60000, err, sizeof err) == 0);
            int64_t nb = loader_nbatches(&a);
            int32_t all_in[100][3], all_tg[100][3], in[3], tg[3];
            for (int64_t b = 0; b < nb; b++) CHECK(loader_next(&a, all_in[b], all_tg[b], err, sizeof err) == 0);
            /* restore after every k batches: the rest is the same */
            int bad = 0;
            for (int64_t k = 0; k <= nb; k++) {
                loader_reset(&a);
                for (int64_t b = 0; b < k; b++) loader_next(&a, in, tg, err, sizeof err);
                int64_t st[2];
                loader_get_state(&a, st);
                Loader c;
                CHECK(loader_open(&c, dir, "train", T, r, W, 60000, err, sizeof err) == 0);
                bad += loader_set_state(&c, st, err, sizeof err) != 0;
                bad += c.batches != k;
                for (int64_t b = k; b < nb; b++) {
                    bad += loader_next(&c, in, tg, err, sizeof err) != 0;
                    bad += memcmp(in, all_in[b], sizeof in) != 0 || memcmp(tg, all_tg[b], sizeof tg) != 0;
                }
                bad += loader_next(&c, in, tg, err, sizeof err) != -1;
                char want[48];
                snprintf(want, sizeof want, "batch %" PRId64 " needs", nb + 1);
                bad += !contains(err, want);
                loader_close(&c);
            }
            CHECK(bad == 0);
            /* reset: the first batch again (every validation starts there) */
            loader_reset(&a);
            CHECK(loader_next(&a, in, tg, err, sizeof err) == 0 && !memcmp(in, all_in[0], sizeof in));
            /* states that cannot come from these files */
            int64_t before[2], after[2];
            loader_get_state(&a, before);
            int64_t G = W * T;
            const int64_t bad_states[][2] = {{-1, 0}, {4, 0}, {0, 1}, {0, -G}, {0, 30 * G}, {1, G}, {2, 48 + G}};
            for (size_t i = 0; i < sizeof bad_states / sizeof *bad_states; i++) {
                CHECK(loader_set_state(&a, bad_states[i], err, sizeof err) == -1);
                CHECK_HAS(err, "cannot restore the training loader");
            }
            loader_get_state(&a, after);
            CHECK(before[0] == after[0] && before[1] == after[1]);
            loader_close(&a);
        }
    free_files(&fs);
}

/* ---- the golden shards ---- */

TEST(golden_tiny_x02_shards) {
    char err[512];
    Shard s;
    CHECK(shard_open(&s, GOLDEN "/train.bin", err, sizeof err) == 0);
    CHECK(s.ntokens == 1538);
    CHECK(shard_check(&s, 200, err, sizeof err) == 0);
    Loader d;
    CHECK(loader_open(&d, GOLDEN, "train", 256, 0, 1, 200, err, sizeof err) == 0);
    CHECK(d.nfiles == 1 && d.ntokens == 1538 && loader_nbatches(&d) == 6);
    int32_t in[256], tg[256];
    int bad = 0;
    for (int b = 0; b < 6; b++) {
        bad += loader_next(&d, in, tg, err, sizeof err) != 0;
        for (int i = 0; i < 256 && s.tokens; i++)
            bad += in[i] != s.tokens[256 * b + i] || tg[i] != s.tokens[256 * b + i + 1];
    }
    CHECK(bad == 0);
    CHECK(loader_next(&d, in, tg, err, sizeof err) == -1);
    CHECK_STR(err, GOLDEN ": the training shards hold too few tokens: batch 7 needs 258 tokens of one file (1 rank "
                   "× T=256, + 2) and " GOLDEN "/train.bin, the last file, has 2 left (1 file, 1538 tokens in all; "
                   "there is no second epoch: use fewer steps or more data)");
    loader_close(&d);
    shard_close(&s);
    /* validation: 514 tokens are 2 batches of 256, from the start at every validation */
    CHECK(loader_open(&d, GOLDEN, "val", 256, 0, 1, 200, err, sizeof err) == 0);
    CHECK(d.ntokens == 514 && loader_nbatches(&d) == 2);
    for (int v = 0; v < 2; v++) {
        loader_reset(&d);
        CHECK(loader_next(&d, in, tg, err, sizeof err) == 0);
        CHECK(loader_next(&d, in, tg, err, sizeof err) == 0);
        CHECK(loader_next(&d, in, tg, err, sizeof err) == -1);
        CHECK_HAS(err, "the validation shards hold too few tokens: batch 3");
    }
    loader_close(&d);
}

static void remove_tree(const char *path) {
    DIR *dp = opendir(path);
    if (!dp) { remove(path); return; }
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        remove_tree(p);
    }
    closedir(dp);
    rmdir(path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/gptc_data_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 2; }
    RUN(write_read_round_trip);
    RUN(write_errors);
    RUN(loader_matches_spec);
    RUN(loader_file_order_and_matching);
    RUN(loader_ignores_trailing_bytes);
    RUN(loader_errors);
    RUN(loader_vocab_checked_on_first_use);
    RUN(loader_state_restore);
    RUN(golden_tiny_x02_shards);
    remove_tree(tmpdir);
    return test_summary();
}
