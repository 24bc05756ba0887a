skip_if_not_installed("Seurat")
suppressPackageStartupMessages(library(Seurat))

test_that("Seurat: RunScdeep gives the CLI's labels and works with FindNeighbors/FindClusters/RunUMAP", {
  mtx <- file.path(data_dir(), "10x_pbmc_top2000", "mtx")
  obj <- CreateSeuratObject(Read10X(mtx))
  # no method, no k, no labels: the core's default method (the consensus), k estimated
  obj <- RunScdeep(obj, seed = 1, threads = 1, verbose = FALSE, train = list(epochs = 10))
  expect_identical(obj[["consensus"]]@misc$scdeep$config$method, "consensus")
  cl <- obj[["consensus"]]@misc$scdeep$run$clustering
  expect_identical(cl$algorithm, "consensus")
  expect_identical(cl$k_estimate$rule, "plateau")
  expect_identical(nlevels(obj$consensus_clusters), as.integer(cl$k))
  # the keys of uns['scdeep'][method] in Python and the CLI (core's results::uns_entry), and the model
  expect_setequal(names(obj[["consensus"]]@misc$scdeep), c("config", "run", "versions", "timings_s", "history", "stability", "model"))
  # how stable the partition is under subsampling, overall and per cluster
  st <- obj[["consensus"]]@misc$scdeep$stability
  expect_true(st$overall > 0 && st$overall <= 1)
  expect_setequal(names(st$per_cluster), levels(obj$consensus_clusters))

  # the same call through the CLI: the same defaults, so the same labels
  out <- tempfile()
  status <- system2(scdeep_cli(), c("run", "-q", "-i", mtx, "--seed", "1", "--threads", "1",
                                    "--device", "cpu", "--epochs", "10", "--no-h5ad", "--out", out))
  expect_equal(status, 0L)
  cli <- utils::read.delim(file.path(out, "labels.tsv"), stringsAsFactors = FALSE)
  expect_equal(nrow(cli), ncol(obj))
  expect_identical(as.integer(as.character(obj$consensus_clusters)), as.integer(cli[[2]]))

  red <- obj[["consensus"]]
  expect_s4_class(red, "DimReduc")
  expect_identical(Key(red), "CONSENSUS_")
  # the kept members' embeddings side by side (pca 50, scmae 128, contrastive-sc 60, mask-sc-mlp 60)
  dims <- sum(cl$members$dims[cl$members$kept])
  expect_equal(dim(Embeddings(red)), c(ncol(obj), as.integer(dims)))
  expect_identical(rownames(Embeddings(red)), colnames(obj))
  expect_true(is.finite(Misc(red, "scdeep")$history[["loss[scmae]"]][1]))
  expect_true("RunScdeep.RNA" %in% names(obj@commands))

  obj <- FindNeighbors(obj, reduction = "consensus", dims = 1:dims, verbose = FALSE)
  obj <- FindClusters(obj, verbose = FALSE)
  expect_gt(nlevels(obj$seurat_clusters), 1L)
  obj <- RunUMAP(obj, reduction = "consensus", dims = 1:dims, verbose = FALSE)
  expect_equal(dim(Embeddings(obj[["umap"]])), c(ncol(obj), 2L))
  # ground truth gives the same labels the published ARI is about
  truth <- utils::read.delim(file.path(data_dir(), "10x_pbmc_top2000", "labels.tsv"), stringsAsFactors = FALSE)
  expect_gt(ScdeepEvaluate(obj$consensus_clusters, truth[[2]])$ari, 0.5)
})

test_that("Seurat: options, idents, model reuse and a second method", {
  # de.prob 0.3: three clearly separated groups (at the default 0.1, PCA + K-means gives ARI
  # 0.45-0.68 depending on the K-means seed, and scikit-learn varies as much)
  obj <- ScdeepSimulate(n.cells = 300, n.genes = 400, de.prob = 0.3, class = "Seurat", seed = 5)
  obj <- RunScdeep(obj, method = "pca", n.clusters = 3, label.column = "group", set.ident = TRUE,
                   reduction.name = "scdeep.pca", verbose = FALSE)
  expect_identical(Key(obj[["scdeep.pca"]]), "SCDEEPPCA_")
  expect_identical(as.character(Idents(obj)), as.character(obj$scdeep.pca_clusters))
  expect_gt(Misc(obj[["scdeep.pca"]], "scdeep")$metrics$ari, 0.5)
  m <- ScdeepModel(obj, "scdeep.pca")
  obj2 <- EmbedScdeep(obj, m, reduction.name = "again", verbose = FALSE)
  expect_equal(unname(Embeddings(obj2[["again"]])), unname(Embeddings(obj[["scdeep.pca"]])), tolerance = 1e-5)
})

test_that("Seurat: a non-count slot, missing features, a bad key or a wrong column are errors naming the argument", {
  obj <- ScdeepSimulate(n.cells = 100, n.genes = 200, class = "Seurat", seed = 6)
  expect_error(RunScdeep(obj, slot = "data"), "argument `slot`.*log-normalised", class = "scdeep_error_option")
  expect_error(RunScdeep(obj, slot = "scale.data"), "argument `slot`", class = "scdeep_error_option")
  expect_error(RunScdeep(obj, features = c("Gene1", "NOT-A-GENE")), "argument `features`.*NOT-A-GENE", class = "scdeep_error_option")
  expect_error(RunScdeep(obj, assay = "ADT"), "argument `assay`", class = "scdeep_error_option")
  expect_error(RunScdeep(obj, reduction.key = "bad key"), "argument `reduction.key`", class = "scdeep_error_option")
  expect_error(RunScdeep(obj, label.column = "celltype"), "argument `label.column`", class = "scdeep_error_option")
  expect_error(RunScdeep(list(1)), "argument `object`", class = "scdeep_error_option")
})

test_that("Seurat: a batch column is corrected for, scored, and gives the CLI's labels", {
  obj <- ScdeepSimulate(n.cells = 600, n.genes = 500, groups = c(0.5, 0.5), batches = c(300, 300),
                        de.prob = 0.2, seed = 2, batch_fac_loc = 0.15, batch_fac_scale = 0.15)
  none <- RunScdeep(obj, method = "pca", label.column = "group", batch = "batch", batch.correction = "none",
                    verbose = FALSE)
  obj <- RunScdeep(obj, method = "pca", label.column = "group", batch = "batch", verbose = FALSE)
  m0 <- none[["pca"]]@misc$scdeep$metrics
  m1 <- obj[["pca"]]@misc$scdeep$metrics
  expect_gt(m1$ilisi, m0$ilisi + 0.2)
  expect_gt(m1$ari, 0.9)
  b <- obj[["pca"]]@misc$scdeep$batch
  expect_identical(b$correction$method, "harmony")
  expect_identical(b$key, "batch")
  expect_equal(sum(unlist(b$clusters_by_batch)), ncol(obj))

  # the same cells, batches and labels through the CLI (a 10x folder and TSV files)
  dir <- tempfile()
  dir.create(file.path(dir, "mtx"), recursive = TRUE)
  counts <- SeuratObject::GetAssayData(obj, slot = "counts")
  Matrix::writeMM(counts, file.path(dir, "mtx", "matrix.mtx"))
  writeLines(colnames(counts), file.path(dir, "mtx", "barcodes.tsv"))
  writeLines(paste(rownames(counts), rownames(counts), "Gene Expression", sep = "\t"), file.path(dir, "mtx", "features.tsv"))
  utils::write.table(data.frame(cell = colnames(obj), group = obj$group), file.path(dir, "truth.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
  utils::write.table(data.frame(cell = colnames(obj), batch = obj$batch), file.path(dir, "batches.tsv"), sep = "\t", quote = FALSE, row.names = FALSE)
  status <- system2(scdeep_cli(), c("run", "-q", "-i", file.path(dir, "mtx"), "-m", "pca", "--labels", file.path(dir, "truth.tsv"),
                                    "--batches", file.path(dir, "batches.tsv"), "--no-h5ad", "--out", file.path(dir, "out")))
  expect_equal(status, 0L)
  cli <- utils::read.delim(file.path(dir, "out", "labels.tsv"), stringsAsFactors = FALSE)
  expect_identical(as.integer(as.character(obj$pca_clusters)), as.integer(cli[[2]]))

  expect_error(RunScdeep(obj, method = "pca", batch = "donor", verbose = FALSE), "batch.*no column 'donor'")
  obj$cell <- colnames(obj)
  expect_error(RunScdeep(obj, method = "pca", batch = "cell", verbose = FALSE), "every cell is a batch of its own")
})
