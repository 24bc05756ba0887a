skip_if_not_installed("SingleCellExperiment")
suppressPackageStartupMessages(library(SingleCellExperiment))

test_that("SingleCellExperiment: reducedDim and colLabels are set and survive as.Seurat / as.SingleCellExperiment", {
  sce <- ScdeepSimulate(n.cells = 300, n.genes = 400, class = "SingleCellExperiment", seed = 7)
  sce <- RunScdeep(sce, method = "scmae", n.clusters = 3, label.column = "group", verbose = FALSE,
                   train = list(epochs = 5))
  expect_identical(reducedDimNames(sce), "SCMAE")
  expect_equal(dim(reducedDim(sce, "SCMAE")), c(ncol(sce), 128L))
  expect_equal(nlevels(colLabels(sce)), 3L)
  expect_true(is.numeric(S4Vectors::metadata(sce)$scdeep$SCMAE$metrics$ari))

  sce <- RunScdeep(sce, method = "pca", n.clusters = 3, cluster.name = "pca_clusters", verbose = FALSE)
  expect_setequal(reducedDimNames(sce), c("SCMAE", "PCA"))
  expect_equal(nlevels(sce$pca_clusters), 3L)

  skip_if_not_installed("Seurat")
  seu <- Seurat::as.Seurat(sce, counts = "counts", data = NULL)
  expect_true(all(c("SCMAE", "PCA") %in% Seurat::Reductions(seu)))
  expect_equal(unname(Seurat::Embeddings(seu[["SCMAE"]])), unname(reducedDim(sce, "SCMAE")), tolerance = 1e-6)
  back <- Seurat::as.SingleCellExperiment(seu)
  expect_true("SCMAE" %in% reducedDimNames(back))
  expect_equal(unname(reducedDim(back, "SCMAE")), unname(reducedDim(sce, "SCMAE")), tolerance = 1e-6)
})

test_that("SingleCellExperiment: a normalised assay or a missing assay is an error naming assay.type", {
  sce <- ScdeepSimulate(n.cells = 100, n.genes = 200, class = "SingleCellExperiment", seed = 8)
  expect_error(RunScdeep(sce, assay.type = "logcounts"), "argument `assay.type`", class = "scdeep_error_option")
  SummarizedExperiment::assay(sce, "logcounts") <- log1p(SummarizedExperiment::assay(sce, "counts"))
  expect_error(RunScdeep(sce, assay.type = "logcounts"), "normalised", class = "scdeep_error_option")
  expect_error(RunScdeep(sce, features = "nope"), "argument `features`", class = "scdeep_error_option")
})

test_that("MaskClass's imputed matrix lands in assay(sce, 'imputed') and a Seurat assay", {
  sce <- ScdeepSimulate(n.cells = 200, n.genes = 600, class = "SingleCellExperiment", seed = 9)
  sce <- RunScdeep(sce, method = "maskclass", n.clusters = 3, verbose = FALSE, train = list(epochs = 3),
                   preprocess = list(n_top_genes = 300))
  imp <- SummarizedExperiment::assay(sce, "imputed")
  expect_equal(dim(imp), dim(sce))
  covered <- SummarizedExperiment::rowData(sce)$scdeep_imputed
  expect_equal(sum(covered), 300L)
  counts <- as.matrix(SummarizedExperiment::assay(sce, "counts"))[covered, ]
  vals <- as.matrix(imp)[covered, ]
  expect_true(all(vals[counts > 0] > 0))
  expect_gt(sum(vals[counts == 0] > 0), 0.5 * sum(counts == 0))
  expect_true(all(as.matrix(imp)[!covered, ] == 0))
  expect_equal(dim(reducedDim(sce, "MASKCLASS")), c(ncol(sce), 32L))

  skip_if_not_installed("Seurat")
  seu <- ScdeepSimulate(n.cells = 200, n.genes = 600, class = "Seurat", seed = 9)
  seu <- RunScdeep(seu, method = "maskclass", n.clusters = 3, verbose = FALSE, train = list(epochs = 3),
                   preprocess = list(n_top_genes = 300))
  expect_true("scdeep_imputed" %in% SeuratObject::Assays(seu))
  expect_equal(nrow(SeuratObject::GetAssayData(seu, assay = "scdeep_imputed", slot = "data")), 300L)
})
