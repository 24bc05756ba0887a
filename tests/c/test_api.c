/* The scdeep C API end to end, built through pkg-config (see Makefile: c-test).
 *
 *   test_api <counts.h5ad> <labels-from-the-CLI.tsv> <tmpdir> [<batches.h5ad> <its-CLI-labels.tsv>]
 *
 * 1. reads the dataset, runs the default deep method (scMAE, seed 0, 1 thread, CPU) and
 *    checks the labels equal those `scdeep run` wrote with the same seed and threads;
 * 2. saves the model, loads it, embeds the data again: same embedding;
 * 3. every error path returns a status and a message;
 * 4. two threads run on two handles at once and get what sequential runs get;
 * 5. with a batch key (read options and config) or batches set on the dataset, the labels
 *    equal those of `scdeep run --batch-key batch` (same config), and bad batches are refused.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scdeep.h"

static int failures = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, " (last error: %s)\n", scdeep_last_error());   \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* expect a status and a message containing `needle` */
static void expect(ScdeepStatus got, ScdeepStatus want, const char *needle, const char *what) {
    CHECK(got == want, "%s: status %d, expected %d", what, (int)got, (int)want);
    CHECK(strstr(scdeep_last_error(), needle) != NULL, "%s: message lacks '%s'", what, needle);
}

/* no method: the core's default, as in the CLI run it is compared with (make c-test).
   A short training: the check is that both doors give the same labels, not their quality */
/* How many of `labels` (n) differ from the CLI's labels.tsv (a header, then cell<TAB>label
   in the same order); SIZE_MAX when the file cannot be read or has another length. */
static size_t differ_from_tsv(const int64_t *labels, size_t n, const char *tsv) {
    FILE *f = fopen(tsv, "r");
    if (!f) return (size_t)-1;
    char line[512];
    size_t i = 0, differ = 0;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    while (fgets(line, sizeof line, f) && i < n) {
        char *tab = strrchr(line, '\t');
        if (tab && atoll(tab + 1) != labels[i]) differ++;
        i++;
    }
    fclose(f);
    return i == n ? differ : (size_t)-1;
}

/* The batch run of make c-test: PCA, k from the labels, Harmony on the simulated batches. */
static const char *BATCH_CONFIG = "{\"method\": \"pca\", \"seed\": 0, \"threads\": 1, \"device\": \"cpu\", \"batch\": {\"key\": \"batch\"}}";

static void batches_match_cli(const char *h5ad, const char *cli_labels) {
    ScdeepDataset *ds = NULL;
    CHECK(scdeep_dataset_read(h5ad, "{\"label_key\": \"group\", \"batch_key\": \"batch\"}", &ds) == SCDEEP_STATUS_OK, "read %s", h5ad);
    ScdeepResult *res = NULL;
    CHECK(scdeep_run(ds, BATCH_CONFIG, &res) == SCDEEP_STATUS_OK, "run with batches");
    size_t n = 0;
    const int64_t *labels = NULL;
    CHECK(res && scdeep_result_labels(res, &n, &labels) == SCDEEP_STATUS_OK, "labels");
    size_t differ = res ? differ_from_tsv(labels, n, cli_labels) : (size_t)-1;
    CHECK(differ == 0, "%zu labels differ from `scdeep run --batch-key`'s (SIZE_MAX: unreadable)", differ);
    const char *metrics = NULL, *info = NULL;
    CHECK(res && scdeep_result_metrics_json(res, &metrics) == SCDEEP_STATUS_OK && strstr(metrics, "\"ilisi\"") != NULL, "batch metrics");
    CHECK(res && scdeep_result_info_json(res, &info) == SCDEEP_STATUS_OK && strstr(info, "\"harmony\"") != NULL, "Harmony in run info");
    scdeep_result_free(res);
    res = NULL;

    /* the same batches set on a dataset read without them */
    size_t n_cells = 0, n_genes = 0;
    ScdeepDataset *plain = NULL;
    CHECK(scdeep_dataset_read(h5ad, "{\"label_key\": \"group\"}", &plain) == SCDEEP_STATUS_OK, "read without batches");
    expect(scdeep_run(plain, BATCH_CONFIG, &res), SCDEEP_STATUS_ERR_ARGUMENT, "batch.key", "a batch key the dataset lacks");
    scdeep_dataset_shape(plain, &n_cells, &n_genes);
    const char **b = calloc(n_cells, sizeof *b);
    for (size_t i = 0; i < n_cells; i++) b[i] = "only";
    b[0] = "";
    expect(scdeep_dataset_set_batches(plain, b), SCDEEP_STATUS_ERR_DATA, "empty batch", "an empty batch");
    free(b);
    expect(scdeep_dataset_set_batches(NULL, NULL), SCDEEP_STATUS_ERR_NULL, "dataset", "NULL dataset");
    scdeep_dataset_free(plain);
    scdeep_dataset_free(ds);
    printf("c: a batch key through the read options and the config: labels identical to `scdeep run --batch-key`\n");
}

static const char *CONFIG = "{\"seed\": 0, \"threads\": 1, \"device\": \"cpu\", \"train\": {\"epochs\": 10}}";

static void default_method_matches_cli(const char *h5ad, const char *cli_labels, const char *tmp) {
    ScdeepDataset *ds = NULL;
    CHECK(scdeep_dataset_read(h5ad, "{\"label_key\": \"cell_type\"}", &ds) == SCDEEP_STATUS_OK, "read %s", h5ad);
    size_t n_cells = 0, n_genes = 0;
    CHECK(scdeep_dataset_shape(ds, &n_cells, &n_genes) == SCDEEP_STATUS_OK && n_cells > 0, "shape");
    ScdeepResult *res = NULL;
    CHECK(scdeep_run(ds, CONFIG, &res) == SCDEEP_STATUS_OK, "run");
    size_t n = 0;
    const int64_t *labels = NULL;
    CHECK(scdeep_result_labels(res, &n, &labels) == SCDEEP_STATUS_OK && n == n_cells, "labels: %zu for %zu cells", n, n_cells);

    /* labels.tsv from the CLI: a header, then cell<TAB>label in the same order */
    size_t differ = differ_from_tsv(labels, n, cli_labels);
    CHECK(differ == 0, "%zu of %zu labels differ from the CLI's (SIZE_MAX: unreadable)", differ, n);
    if (differ == 0) printf("c: the default method (consensus) through the C API: %zu cells, labels identical to `scdeep run`\n", n);
    const char *metrics = NULL;
    CHECK(scdeep_result_metrics_json(res, &metrics) == SCDEEP_STATUS_OK && strstr(metrics, "\"ari\"") != NULL, "metrics");
    printf("c: metrics %.120s...\n", metrics);
    const char *history = NULL;
    CHECK(scdeep_result_history_json(res, &history) == SCDEEP_STATUS_OK && strstr(history, "loss_mask") != NULL, "history");

    /* save, load, embed: the same embedding */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/c-model", tmp);
    CHECK(scdeep_result_save_model(res, dir) == SCDEEP_STATUS_OK, "save model");
    ScdeepModel *model = NULL;
    CHECK(scdeep_model_load(dir, "consensus", "cpu", &model) == SCDEEP_STATUS_OK, "load model");
    ScdeepResult *again = NULL;
    CHECK(scdeep_model_embed(model, ds, &again) == SCDEEP_STATUS_OK, "embed");
    size_t r1, c1, r2, c2;
    const float *e1, *e2;
    scdeep_result_embedding(res, &r1, &c1, &e1);
    scdeep_result_embedding(again, &r2, &c2, &e2);
    CHECK(r1 == r2 && c1 == c2 && memcmp(e1, e2, r1 * c1 * sizeof(float)) == 0, "embedding after save/load differs");
    expect(scdeep_model_load(dir, "pca", NULL, &model), SCDEEP_STATUS_ERR_ARGUMENT, "holds a `consensus` model", "load as another method");
    CHECK(model == NULL, "out pointer cleared on failure");
    /* a non-empty folder scdeep did not write is refused, unless overwrite; its other
       files are kept */
    char foreign[1024], mine[1100];
    snprintf(foreign, sizeof foreign, "%s/c-foreign-%ld", tmp, (long)getpid());
    snprintf(mine, sizeof mine, "%s/notes.txt", foreign);
    mkdir(foreign, 0755);
    FILE *nf = fopen(mine, "w");
    CHECK(nf != NULL, "create %s", mine);
    fputs("not scdeep's", nf);
    fclose(nf);
    expect(scdeep_result_save_model(res, foreign), SCDEEP_STATUS_ERR_IO, "refusing", "save into a foreign folder");
    CHECK(scdeep_result_save_model_overwrite(res, foreign, true) == SCDEEP_STATUS_OK, "save with overwrite");
    nf = fopen(mine, "r");
    CHECK(nf != NULL, "overwrite removed a file scdeep did not write");
    fclose(nf);
    scdeep_result_free(again);
    scdeep_model_free(model);
    scdeep_result_free(res);
    scdeep_dataset_free(ds);
}

static void error_paths(void) {
    ScdeepDataset *ds = NULL;
    ScdeepResult *res = NULL;
    expect(scdeep_dataset_read(NULL, NULL, &ds), SCDEEP_STATUS_ERR_NULL, "path", "NULL path");
    expect(scdeep_dataset_read("/nonexistent/x.h5ad", NULL, &ds), SCDEEP_STATUS_ERR_IO, "/nonexistent/x.h5ad", "missing file");
    expect(scdeep_dataset_read("x.h5ad", "{not json", &ds), SCDEEP_STATUS_ERR_ARGUMENT, "options_json", "bad options JSON");
    expect(scdeep_dataset_read("x.h5ad", "{\"colour\": 1}", &ds), SCDEEP_STATUS_ERR_ARGUMENT, "colour", "unknown option");

    /* CSR with wrong lengths / indices */
    int64_t indptr[3] = {0, 2, 3};
    int32_t indices[3] = {0, 1, 5};
    float data[3] = {1, 2, 3};
    expect(scdeep_dataset_from_csr(2, 3, indptr, indices, data, 4, NULL, NULL, NULL, &ds), SCDEEP_STATUS_ERR_ARGUMENT, "indptr", "nnz mismatch");
    expect(scdeep_dataset_from_csr(2, 3, indptr, indices, data, 3, NULL, NULL, NULL, &ds), SCDEEP_STATUS_ERR_ARGUMENT, "outside", "index out of range");
    expect(scdeep_dataset_from_csr(2, 3, NULL, indices, data, 3, NULL, NULL, NULL, &ds), SCDEEP_STATUS_ERR_NULL, "indptr", "NULL indptr");
    float bad[4] = {1, NAN, 0, 2};
    expect(scdeep_dataset_from_dense(2, 2, bad, NULL, NULL, NULL, &ds), SCDEEP_STATUS_ERR_DATA, "NaN", "NaN count");
    expect(scdeep_dataset_from_dense(2, 2, NULL, NULL, NULL, NULL, &ds), SCDEEP_STATUS_ERR_NULL, "values", "NULL values");

    /* a good small dataset, then bad configs */
    float vals[40 * 6];
    for (int i = 0; i < 40 * 6; i++) vals[i] = (float)((i * 7919) % 13 + (i / 6 < 20 ? (i % 6 < 3 ? 20 : 0) : (i % 6 >= 3 ? 20 : 0)));
    CHECK(scdeep_dataset_from_dense(40, 6, vals, NULL, NULL, NULL, &ds) == SCDEEP_STATUS_OK, "dense dataset");
    expect(scdeep_run(ds, "{\"method\": ", &res), SCDEEP_STATUS_ERR_ARGUMENT, "not valid JSON", "invalid JSON");
    expect(scdeep_run(ds, "{\"method\": \"magic\"}", &res), SCDEEP_STATUS_ERR_ARGUMENT, "unknown method", "unknown method");
    expect(scdeep_run(ds, "{\"method\": \"pca\", \"device\": \"cpu\", \"cluster\": {\"algorithm\": \"kmeans\"}}", &res), SCDEEP_STATUS_ERR_ARGUMENT,
           "n_clusters", "K-means without k or labels");
    /* no k, no labels, no algorithm: Leiden on the kNN graph, as in every door */
    CHECK(scdeep_run(ds, "{\"method\": \"pca\", \"device\": \"cpu\", \"preprocess\": {\"n_top_genes\": 4}}", &res) == SCDEEP_STATUS_OK,
          "run without k: %s", scdeep_last_error());
    const char *info = NULL;
    CHECK(res && scdeep_result_info_json(res, &info) == SCDEEP_STATUS_OK && strstr(info, "\"algorithm\":\"leiden\"") != NULL,
          "no k and no labels: not Leiden: %.200s", info ? info : "");
    scdeep_result_free(res);
    res = NULL;
    expect(scdeep_run(ds, "{\"method\": \"pca\", \"device\": \"cpu\", \"cluster\": {\"n_clusters\": 41}}", &res), SCDEEP_STATUS_ERR_ARGUMENT,
           "more clusters than cells", "k > cells");
    expect(scdeep_run(ds, CONFIG, NULL), SCDEEP_STATUS_ERR_NULL, "out", "NULL out");
    CHECK(scdeep_run(ds, "{\"method\": \"pca\", \"device\": \"cpu\", \"cluster\": {\"n_clusters\": 2}, \"preprocess\": {\"n_top_genes\": 4}}", &res) == SCDEEP_STATUS_OK, "pca run");
    CHECK(strcmp(scdeep_last_error(), "") == 0, "success clears the last error");
    expect(scdeep_result_labels(res, NULL, NULL), SCDEEP_STATUS_ERR_NULL, "n", "NULL getter output");
    expect(scdeep_result_save_model(res, NULL), SCDEEP_STATUS_ERR_NULL, "dir", "NULL dir");

    /* freed handles are refused, double free is harmless */
    scdeep_result_free(res);
    size_t n;
    const int64_t *labels;
    expect(scdeep_result_labels(res, &n, &labels), SCDEEP_STATUS_ERR_HANDLE, "not a live handle", "freed result");
    scdeep_result_free(res);
    scdeep_dataset_free(ds);
    expect(scdeep_run(ds, CONFIG, &res), SCDEEP_STATUS_ERR_HANDLE, "not a live handle", "freed dataset");
    expect(scdeep_dataset_shape((ScdeepDataset *)vals, &n, &n), SCDEEP_STATUS_ERR_HANDLE, "never created", "foreign pointer");
    scdeep_dataset_free(NULL);
    char *methods = NULL;
    CHECK(scdeep_methods_json(&methods) == SCDEEP_STATUS_OK && strstr(methods, "\"scmae\"") != NULL, "methods json");
    scdeep_string_free(methods);
    printf("c: error paths ok\n");
}

/* two runs at once on two handles */
struct job {
    ScdeepDataset *ds;
    ScdeepResult *res;
    ScdeepStatus status;
};

static const char *SMALL = "{\"method\": \"scmae\", \"seed\": 3, \"threads\": 1, \"device\": \"cpu\", \"train\": {\"epochs\": 3}}";

static void *run_job(void *arg) {
    struct job *j = arg;
    j->status = scdeep_run(j->ds, SMALL, &j->res);
    return NULL;
}

static void two_threads(const char *h5ad) {
    ScdeepDataset *a = NULL, *b = NULL;
    const char *opt = "{\"label_key\": \"cell_type\"}";
    CHECK(scdeep_dataset_read(h5ad, opt, &a) == SCDEEP_STATUS_OK && scdeep_dataset_read(h5ad, opt, &b) == SCDEEP_STATUS_OK, "read twice");
    struct job ja = {a, NULL, SCDEEP_STATUS_OK}, jb = {b, NULL, SCDEEP_STATUS_OK};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, run_job, &ja);
    pthread_create(&tb, NULL, run_job, &jb);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK(ja.status == SCDEEP_STATUS_OK && jb.status == SCDEEP_STATUS_OK, "concurrent runs failed");
    ScdeepResult *seq = NULL;
    CHECK(scdeep_run(a, SMALL, &seq) == SCDEEP_STATUS_OK, "sequential run");
    size_t r0, c0, r1, c1, r2, c2;
    const float *e0, *e1, *e2;
    scdeep_result_embedding(seq, &r0, &c0, &e0);
    scdeep_result_embedding(ja.res, &r1, &c1, &e1);
    scdeep_result_embedding(jb.res, &r2, &c2, &e2);
    CHECK(r0 == r1 && r0 == r2 && memcmp(e0, e1, r0 * c0 * sizeof(float)) == 0 && memcmp(e0, e2, r0 * c0 * sizeof(float)) == 0,
          "concurrent runs differ from a sequential run");
    printf("c: two concurrent runs on two handles = the sequential run\n");
    scdeep_result_free(seq);
    scdeep_result_free(ja.res);
    scdeep_result_free(jb.res);
    scdeep_dataset_free(a);
    scdeep_dataset_free(b);
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: %s counts.h5ad cli_labels.tsv tmpdir [batches.h5ad cli_batch_labels.tsv]\n", argv[0]);
        return 2;
    }
    printf("c: scdeep %s, libtorch %s\n", scdeep_version(), scdeep_libtorch_version());
    error_paths();
    two_threads(argv[1]);
    if (argc == 6) batches_match_cli(argv[4], argv[5]);
    if (strcmp(argv[2], "-") != 0) default_method_matches_cli(argv[1], argv[2], argv[3]);
    if (failures) {
        fprintf(stderr, "c: %d failure(s)\n", failures);
        return 1;
    }
    printf("c: all checks passed\n");
    return 0;
}
