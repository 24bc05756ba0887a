// The C++17 RAII wrapper (c-include/scdeep.hpp), built through CMake's find_package(scdeep).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "scdeep.hpp"

static int failures = 0;
#define CHECK(c, msg)                                                   \
    do {                                                                \
        if (!(c)) {                                                     \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, msg); \
            failures++;                                                 \
        }                                                               \
    } while (0)

int main(int argc, char **argv) {
    std::string tmp = argc > 1 ? argv[1] : "/tmp";
    // two groups of cells with different expressed genes
    const size_t n = 60, g = 8;
    std::vector<float> x(n * g);
    std::vector<std::string> truth;
    for (size_t i = 0; i < n; i++) {
        bool a = i < n / 2;
        truth.push_back(a ? "A" : "B");
        for (size_t j = 0; j < g; j++) x[i * g + j] = static_cast<float>((i * 31 + j * 17) % 5 + ((j < g / 2) == a ? 30 : 0));
    }
    auto ds = scdeep::Dataset::dense(n, g, x, truth);
    CHECK(ds.n_cells() == n && ds.n_genes() == g, "shape");
    auto r = scdeep::run(ds, R"({"method": "scmae", "device": "cpu", "threads": 1, "train": {"epochs": 20, "batch_size": 32}, "preprocess": {"n_top_genes": 6}})");
    size_t rows = 0, cols = 0;
    auto emb = r.embedding(&rows, &cols);
    CHECK(rows == n && cols == 128 && emb.size() == n * cols, "embedding shape");
    auto labels = r.labels();
    CHECK(labels.size() == n, "labels");
    CHECK(r.metrics_json().find("\"ari\"") != std::string::npos, "metrics");
    r.save_model(tmp + "/cpp-model");
    auto m = scdeep::Model::load(tmp + "/cpp-model", "scmae", "cpu");
    CHECK(m.embed(ds).embedding() == emb, "embedding after save/load");
    bool threw = false;
    try {
        scdeep::run(ds, R"({"method": "magic"})");
    } catch (const scdeep::Error &e) {
        threw = e.status() == SCDEEP_STATUS_ERR_ARGUMENT && std::string(e.what()).find("unknown method") != std::string::npos;
    }
    CHECK(threw, "unknown method throws scdeep::Error with the message");
    threw = false;
    try {
        scdeep::Dataset::read("/nonexistent.h5ad");
    } catch (const scdeep::Error &e) {
        threw = e.status() == SCDEEP_STATUS_ERR_IO;
    }
    CHECK(threw, "missing file throws");
    // batches on the dataset: two halves of each group; the run corrects for them
    std::vector<std::string> batches;
    for (size_t i = 0; i < n; i++) batches.push_back(i % 2 ? "b1" : "b2");
    ds.set_batches(batches);
    auto rb = scdeep::run(ds, R"({"method": "pca", "device": "cpu", "preprocess": {"n_top_genes": 6}, "params": {"n_comps": 4}})");
    CHECK(rb.info_json().find("\"harmony\"") != std::string::npos, "Harmony in the run info");
    CHECK(rb.metrics_json().find("\"ilisi\"") != std::string::npos, "batch metrics");
    threw = false;
    try {
        ds.set_batches({"one"});
    } catch (const scdeep::Error &e) {
        threw = e.status() == SCDEEP_STATUS_ERR_ARGUMENT;
    }
    CHECK(threw, "batches of another length throw");
    if (failures) return 1;
    std::printf("cpp: scdeep %s RAII wrapper ok (%zu cells x %zu dims)\n", scdeep::version().c_str(), rows, cols);
    return 0;
}
