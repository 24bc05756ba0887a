sim <- function(...) ScdeepSimulate(n.cells = 300, n.genes = 400, groups = c(0.4, 0.3, 0.3), class = "dgCMatrix", ...)

test_that("a count matrix gives an embedding, clusters and metrics", {
  x <- sim(seed = 1)
  res <- RunScdeep(x, method = "pca", n.clusters = 3, labels = attr(x, "groups"), verbose = FALSE)
  expect_equal(dim(res$embedding), c(300L, 50L))
  expect_identical(rownames(res$embedding), colnames(x))
  expect_s3_class(res$clusters, "factor")
  expect_equal(nlevels(res$clusters), 3L)
  expect_gt(res$metrics$ari, 0.5)
  expect_s3_class(res$model, "scdeep_model")
  # a dense base matrix gives the same result
  dense <- RunScdeep(as.matrix(x), method = "pca", n.clusters = 3, verbose = FALSE)
  expect_identical(as.integer(dense$clusters), as.integer(res$clusters))
})

test_that("cells the filter removes get NA clusters and NA embedding rows", {
  x <- sim(seed = 4)
  x[, c(5, 9)] <- 0
  x <- Matrix::drop0(x)
  res <- RunScdeep(x, method = "pca", n.clusters = 3, verbose = FALSE)
  expect_identical(unname(which(is.na(res$clusters))), c(5L, 9L))
  expect_true(all(is.na(res$embedding[c(5, 9), ])) && !anyNA(res$embedding[-c(5, 9), ]))
  emb <- EmbedScdeep(x, res$model, verbose = FALSE)
  expect_identical(which(!stats::complete.cases(emb)), c(5L, 9L))
})

test_that("the same seed gives the same labels; options reach the method", {
  x <- sim(seed = 2)
  run <- function(seed) RunScdeep(x, method = "scmae", n.clusters = 3, seed = seed, threads = 1, verbose = FALSE,
                                  train = list(epochs = 3), mask.rate = 0.3)
  a <- run(7)
  b <- run(7)
  expect_identical(a$clusters, b$clusters)
  expect_identical(a$embedding, b$embedding)
  expect_equal(a$config$params$mask_rate, 0.3)
  expect_equal(nrow(a$history), 3L)
  expect_true(all(is.finite(a$history$loss)))
  expect_false(identical(a$embedding, run(8)$embedding))
})

test_that("ScdeepEvaluate matches scikit-learn", {
  # sklearn.metrics.adjusted_rand_score([0, 0, 1, 2], [0, 0, 1, 1]) = 0.5714285714285715
  m <- ScdeepEvaluate(c(0, 0, 1, 1), c("a", "a", "b", "c"))
  expect_equal(m$ari, 0.5714285714285715, tolerance = 1e-12)
  # normalized_mutual_info_score(...) = 0.8 (arithmetic)
  expect_equal(m$nmi, 0.8, tolerance = 1e-12)
  expect_error(ScdeepEvaluate(1:3, 1:2), "argument `truth`", class = "scdeep_error_option")
  expect_error(ScdeepEvaluate(1:2, 1:2, average = "median"), "`average` = median", class = "scdeep_error_option")
})

test_that("a saved model embeds new data as in training", {
  x <- sim(seed = 3)
  res <- RunScdeep(x, method = "scmae", n.clusters = 3, verbose = FALSE, train = list(epochs = 2))
  dir <- file.path(tempfile(), "model")
  SaveScdeepModel(res$model, dir)
  expect_true(file.exists(file.path(dir, "model.safetensors")))
  m <- LoadScdeepModel(dir, method = "scmae")
  emb <- EmbedScdeep(x, m, verbose = FALSE)
  expect_equal(unname(emb), unname(res$embedding), tolerance = 1e-5, ignore_attr = TRUE)
  expect_error(LoadScdeepModel(dir, method = "pca"), class = "scdeep_error")
  # a folder of the user's is refused unless overwrite = TRUE, which keeps its other files
  mine <- file.path(tempfile(), "mine")
  dir.create(mine, recursive = TRUE)
  writeLines("keep", file.path(mine, "notes.txt"))
  expect_error(SaveScdeepModel(res$model, mine), "overwrite", class = "scdeep_error_io")
  SaveScdeepModel(res$model, mine, overwrite = TRUE)
  expect_equal(readLines(file.path(mine, "notes.txt")), "keep")
  expect_true(file.exists(file.path(mine, "model.safetensors")))
  # readRDS() gives back a model without weights: a clear error, not a crash
  f <- tempfile(fileext = ".rds")
  saveRDS(m, f)
  expect_error(EmbedScdeep(x, readRDS(f), verbose = FALSE), "SaveScdeepModel", class = "scdeep_error_option")
})

test_that("bad input is an R error naming the argument", {
  x <- sim(seed = 4)
  expect_error(RunScdeep("counts"), "argument `object`", class = "scdeep_error_option")
  expect_error(RunScdeep(x, method = "nope"), "unknown method", class = "scdeep_error_option")
  expect_error(RunScdeep(x, method = "pca", n.clusters = 3, bogus = 1), "bogus", class = "scdeep_error_option")
  expect_error(RunScdeep(x, "pca", 3, NULL, "cpu", 0, NULL, FALSE, "counts", 0.3), "must be named", class = "scdeep_error_option")
  expect_error(RunScdeep(x, method = "pca", n.clusters = 0), "n.clusters", class = "scdeep_error_option")
  expect_error(RunScdeep(x, method = "pca", labels = 1:3), "argument `labels`", class = "scdeep_error_option")
  neg <- x
  neg@x[1] <- -1
  expect_error(RunScdeep(neg, method = "pca", n.clusters = 3, verbose = FALSE), "negative value", class = "scdeep_error_data")
  expect_error(ScdeepSimulate(n.cells = 10, nonsense = 1), "nonsense", class = "scdeep_error_option")
})

test_that("ScdeepMethods lists every method with its defaults", {
  m <- ScdeepMethods()
  expect_true(all(c("scmae", "pca", "contrastive-sc", "cicl") %in% m$name))
  # every method of the core's registry runs without changes here
  x <- sim(seed = 9)
  res <- RunScdeep(x, method = "contrastive-sc", n.clusters = 3, verbose = FALSE)
  expect_equal(ncol(res$embedding), 60L)
  expect_equal(m$defaults[[which(m$name == "scmae")]]$params$mask_rate, 0.4)
  expect_match(ScdeepVersion()$libtorch, "^2\\.")
})

test_that("every error kind of the core's table raises its condition class", {
  kinds <- jsonlite::fromJSON(scdeep:::scdeep_error_kinds_json(), simplifyVector = FALSE)
  expect_setequal(vapply(kinds, `[[`, "", "kind"), c("io", "format", "data", "option", "numeric", "cancelled"))
  for (k in kinds) {
    cls <- tryCatch(scdeep:::.scdeep_stop("msg", kind = k$kind), error = function(e) class(e))
    expect_identical(cls, c(k$r_class, "scdeep_error", "error", "condition"))
  }
})
