// scdeep C++17 wrapper over the C API (c-include/scdeep.h): RAII handles and exceptions.
//
//   scdeep::Dataset ds = scdeep::Dataset::read("pbmc.h5ad", R"({"label_key": "cell_type"})");
//   scdeep::Result r = scdeep::run(ds, R"({"method": "scmae", "seed": 0})");
//   std::vector<int64_t> labels = r.labels();
//
// Every failing call throws scdeep::Error (status() and what() from scdeep_last_error()).
#ifndef SCDEEP_HPP
#define SCDEEP_HPP

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "scdeep.h"

namespace scdeep {

class Error : public std::runtime_error {
  public:
    Error(ScdeepStatus s, const std::string &msg) : std::runtime_error(msg), status_(s) {}
    ScdeepStatus status() const noexcept { return status_; }

  private:
    ScdeepStatus status_;
};

inline void check(ScdeepStatus s) {
    if (s != SCDEEP_STATUS_OK) throw Error(s, scdeep_last_error());
}

template <class T, void (*Free)(T *)>
struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};

class Dataset {
  public:
    static Dataset read(const std::string &path, const std::string &options_json = "{}") {
        ScdeepDataset *p = nullptr;
        check(scdeep_dataset_read(path.c_str(), options_json.c_str(), &p));
        return Dataset(p);
    }
    /// Row-major cells x genes counts; names and labels optional (empty = defaults / none).
    static Dataset dense(size_t n_cells, size_t n_genes, const std::vector<float> &values, const std::vector<std::string> &labels = {}) {
        if (values.size() != n_cells * n_genes) throw Error(SCDEEP_STATUS_ERR_ARGUMENT, "values: expected n_cells x n_genes entries");
        std::vector<const char *> lab;
        for (const auto &l : labels) lab.push_back(l.c_str());
        ScdeepDataset *p = nullptr;
        check(scdeep_dataset_from_dense(n_cells, n_genes, values.data(), nullptr, nullptr, labels.empty() ? nullptr : lab.data(), &p));
        return Dataset(p);
    }
    /// Each cell's batch (one per cell; empty removes them): a run corrects for them.
    void set_batches(const std::vector<std::string> &batches) {
        if (!batches.empty() && batches.size() != n_cells()) throw Error(SCDEEP_STATUS_ERR_ARGUMENT, "batches: expected one per cell");
        std::vector<const char *> b;
        for (const auto &v : batches) b.push_back(v.c_str());
        check(scdeep_dataset_set_batches(h_.get(), batches.empty() ? nullptr : b.data()));
    }
    size_t n_cells() const { return shape().first; }
    size_t n_genes() const { return shape().second; }
    const ScdeepDataset *get() const noexcept { return h_.get(); }

  private:
    explicit Dataset(ScdeepDataset *p) : h_(p) {}
    std::pair<size_t, size_t> shape() const {
        size_t c = 0, g = 0;
        check(scdeep_dataset_shape(h_.get(), &c, &g));
        return {c, g};
    }
    std::unique_ptr<ScdeepDataset, Deleter<ScdeepDataset, scdeep_dataset_free>> h_;
};

class Result {
  public:
    explicit Result(ScdeepResult *p) : h_(p) {}
    std::vector<int64_t> labels() const {
        size_t n = 0;
        const int64_t *l = nullptr;
        check(scdeep_result_labels(h_.get(), &n, &l));
        return std::vector<int64_t>(l, l + n);
    }
    /// rows x cols, row-major.
    std::vector<float> embedding(size_t *rows = nullptr, size_t *cols = nullptr) const {
        size_t r = 0, c = 0;
        const float *d = nullptr;
        check(scdeep_result_embedding(h_.get(), &r, &c, &d));
        if (rows) *rows = r;
        if (cols) *cols = c;
        return std::vector<float>(d, d + r * c);
    }
    std::string metrics_json() const { return str(scdeep_result_metrics_json); }
    std::string history_json() const { return str(scdeep_result_history_json); }
    std::string info_json() const { return str(scdeep_result_info_json); }
    void save_model(const std::string &dir) const { check(scdeep_result_save_model(h_.get(), dir.c_str())); }
    const ScdeepResult *get() const noexcept { return h_.get(); }

  private:
    std::string str(ScdeepStatus (*f)(const ScdeepResult *, const char **)) const {
        const char *s = nullptr;
        check(f(h_.get(), &s));
        return s;
    }
    std::unique_ptr<ScdeepResult, Deleter<ScdeepResult, scdeep_result_free>> h_;
};

inline Result run(const Dataset &ds, const std::string &config_json = "{}") {
    ScdeepResult *p = nullptr;
    check(scdeep_run(ds.get(), config_json.c_str(), &p));
    return Result(p);
}

class Model {
  public:
    static Model load(const std::string &dir, const std::string &method = "", const std::string &device = "auto") {
        ScdeepModel *p = nullptr;
        check(scdeep_model_load(dir.c_str(), method.empty() ? nullptr : method.c_str(), device.c_str(), &p));
        return Model(p);
    }
    Result embed(const Dataset &ds) const {
        ScdeepResult *p = nullptr;
        check(scdeep_model_embed(h_.get(), ds.get(), &p));
        return Result(p);
    }

  private:
    explicit Model(ScdeepModel *p) : h_(p) {}
    std::unique_ptr<ScdeepModel, Deleter<ScdeepModel, scdeep_model_free>> h_;
};

inline std::string version() { return scdeep_version(); }

}  // namespace scdeep

#endif
